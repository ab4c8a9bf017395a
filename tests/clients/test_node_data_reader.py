"""One CSV reader, one set of rules: the node loader (simulate), scoring, ``privacy apply`` and
``privacy scan`` refuse the same hostile CSVs with the same one-line message (file, row, column,
rule)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from confide.clients.node_data import encode_node, prepare_frame, read_node_csv
from confide.core.errors import ConfideError
from confide.modeling.encoding import encode_features
from confide.modeling.task_spec import parse_task_spec
from confide.privacy import apply_file, parse_policy, scan_file

MARKER = "QXZ9MARKER"

POLICY = parse_policy(
    {
        "version": 1,
        "dataset": "shop",
        "columns": {
            "customer_id": {"tier": "non_sensitive", "role": "id"},
            "age": {"tier": "general_sensitive", "role": "feature"},
            "gender": {"tier": "non_sensitive", "role": "feature"},
            "churned": {"tier": "general_sensitive", "role": "label"},
        },
        "dp": {"max_epsilon_per_run": 3.0, "lifetime_epsilon": 10.0, "max_delta": 1e-5},
    },
    "policy.yaml",
)
TASK = parse_task_spec(
    {
        "name": "churn",
        "label": {"name": "churned", "positive": 1, "negative": 0},
        "features": [
            {"name": "age", "type": "numeric", "min": 18, "max": 85},
            {"name": "gender", "type": "categorical", "categories": ["F", "M"]},
        ],
    }
)
HEADER = "customer_id,age,gender,churned\n"


def _rows(n: int = 20) -> str:
    return "".join(f"c{i},{30 + i},{'F' if i % 2 else 'M'},{i % 2}\n" for i in range(n))


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    p = tmp_path / "node.csv"
    p.write_text(header + body, encoding="utf-8")
    return p


def _all_readers(path: Path, tmp_path: Path) -> list[str]:
    """The message each of the three consumers gives for ``path`` (each must refuse)."""
    messages = []
    with pytest.raises(ConfideError) as err:
        read_node_csv(path)
    messages.append(str(err.value))
    with pytest.raises(ConfideError) as err:
        prepare_frame(path, POLICY, TASK, None, with_label=False)  # the scoring path
    messages.append(str(err.value))
    out = tmp_path / "applied.csv"
    with pytest.raises(ConfideError) as err:
        apply_file(POLICY, path, out, None, chunksize=4)
    messages.append(str(err.value))
    with pytest.raises(ConfideError) as err:
        scan_file(path, POLICY)  # confide privacy scan
    messages.append(str(err.value))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left either
    return messages


def _same_rule_everywhere(messages: list[str], *needles: str) -> None:
    for m in messages:
        assert "\n" not in m and MARKER not in m, m
        for needle in needles:
            assert needle in m, (needle, m)
    assert len(set(messages)) == 1, messages


def test_control_good_file_is_read_by_all_three(tmp_path):
    p = _csv(tmp_path, _rows())
    assert len(read_node_csv(p)) == 20
    prepared = prepare_frame(p, POLICY, TASK, None, with_label=True)
    assert encode_node("n", prepared, TASK, str(p), 0.25, 1).n_rows == 20
    assert apply_file(POLICY, p, tmp_path / "o.csv", None, chunksize=4).rows == 20
    assert len(scan_file(p, POLICY).columns) == 4


def test_short_row_is_refused_everywhere(tmp_path):
    p = _csv(tmp_path, _rows(5) + f"{MARKER},41,F\n" + _rows(3))
    msgs = _all_readers(p, tmp_path)
    _same_rule_everywhere(msgs, str(p), "row 7", "3 fields", "header has 4", "rule: CSV row width")


def test_unquoted_newline_is_a_malformed_row_not_an_empty_value(tmp_path):
    p = _csv(tmp_path, _rows(2) + f"c9,33,{MARKER}\nF,1\n" + _rows(2))
    msgs = _all_readers(p, tmp_path)
    _same_rule_everywhere(msgs, str(p), "row 4", "rule: CSV row width")
    assert all("is empty" not in m for m in msgs)


def test_duplicate_header_is_reported_as_duplicate(tmp_path):
    p = _csv(tmp_path, "c1,30,31,F,0\n", header="customer_id,age,age,gender,churned\n")
    msgs = _all_readers(p, tmp_path)
    _same_rule_everywhere(msgs, str(p), "column 'age' appears more than once in the header")
    assert all("age.1" not in m for m in msgs)


def test_ten_megabyte_cell_is_refused_everywhere(tmp_path):
    p = _csv(tmp_path, _rows(3) + f"c7,40,{MARKER}{'x' * (10 << 20)},1\n" + _rows(2))
    msgs = _all_readers(p, tmp_path)
    _same_rule_everywhere(msgs, str(p), "row 5", "column 'gender'", "rule: CSV cell size")


def test_cell_just_over_the_cap_is_refused_with_row_and_column(tmp_path):
    from confide.privacy.reader import MAX_CELL_BYTES

    p = _csv(tmp_path, _rows(2) + f"c7,40,{'y' * (MAX_CELL_BYTES + 1)},1\n")
    msgs = _all_readers(p, tmp_path)
    _same_rule_everywhere(msgs, "row 4", "column 'gender'", "rule: CSV cell size")
    ok = _csv(tmp_path, _rows(2) + f"c7,40,{'y' * MAX_CELL_BYTES},1\n")
    assert len(read_node_csv(ok)) == 3  # control: at the cap is accepted


def test_fifo_as_data_file_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "node.csv"
    os.mkfifo(fifo, 0o600)
    msgs = _all_readers(fifo, tmp_path)
    _same_rule_everywhere(msgs, "not a regular file")


@pytest.mark.parametrize("value", ["inf", "-Infinity", "nan", "+inf"])
def test_non_finite_numeric_feature_is_refused_not_clipped(tmp_path, value):
    p = _csv(tmp_path, _rows(3) + f"c9,{value},F,1\n")
    prepared = prepare_frame(p, POLICY, TASK, None, with_label=True)
    with pytest.raises(ConfideError, match=r"column 'age'.*line 5.*rule: numeric feature") as err:
        encode_features(prepared.frame, TASK, str(p))
    assert value not in str(err.value).replace("non-finite", "")


def test_whitespace_only_categorical_is_refused_under_unknown_error(tmp_path):
    p = _csv(tmp_path, _rows(3) + "c9,40,   ,1\n")
    prepared = prepare_frame(p, POLICY, TASK, None, with_label=True)
    with pytest.raises(ConfideError, match=r"column 'gender'.*line 5.*rule: declared categories"):
        encode_features(prepared.frame, TASK, str(p))


def test_unclosed_quote_is_refused_everywhere(tmp_path):
    p = _csv(tmp_path, _rows(2) + f'c8,40,F,"{MARKER}\n' + _rows(2))
    msgs = _all_readers(p, tmp_path)
    _same_rule_everywhere(msgs, str(p), "a quoted value is never closed (rule: CSV format)")


def test_control_quote_inside_an_unquoted_value_is_text(tmp_path):
    p = _csv(tmp_path, _rows(2) + 'c8,40,F"x,1\n' + 'c9,41,"M ""q""",0\n')
    frame = read_node_csv(p)
    assert frame["gender"].tolist()[-2:] == ['F"x', 'M "q"']
