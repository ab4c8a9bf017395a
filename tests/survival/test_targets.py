"""A node's survival targets: each bad value fails in one line naming file, column and rule
(never the value), a feature that is a function of the duration is refused unless declared
(then the node logs a warning), and a refused node writes and spends nothing."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import pytest

from confide.modeling.errors import DataError
from confide.modeling.survival_data import SURVIVAL_LOGGER, duration_leaks, encode_survival_targets
from confide.modeling.tasks import parse_task
from tests.survival.test_spec import shipped

SPEC = parse_task(shipped())
SOURCE = "node.csv"


def frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Text columns as the CSV reader gives them: every numeric feature independent of the
    duration, so the leak check passes."""
    rng = np.random.default_rng(seed)
    data = {}
    for feat in SPEC.features:
        if hasattr(feat, "categories"):
            data[feat.name] = rng.choice(list(feat.categories), n)
        else:
            data[feat.name] = np.round(rng.uniform(feat.min, feat.max, n), 2)
    data["retention_months"] = rng.integers(0, 37, n)
    data["churn_event"] = rng.integers(0, 2, n)
    return pd.DataFrame(data).astype(str)


def test_control_good_rows_encode_to_duration_and_event():
    rows = frame()
    y = encode_survival_targets(rows, SPEC, SOURCE)
    assert y.dtype == np.float32 and y.shape == (200, 2)
    np.testing.assert_array_equal(y[:, 0], rows["retention_months"].astype(float))
    np.testing.assert_array_equal(y[:, 1], rows["churn_event"].astype(float))


BAD = {
    "negative duration": ("retention_months", "-3", "negative"),
    "empty duration": ("retention_months", "", "empty"),
    "non-numeric duration": ("retention_months", "seven", "non-numeric"),
    "infinite duration": ("retention_months", "inf", "non-numeric"),
    "duration beyond max": ("retention_months", "40", "outside the declared"),
    "undeclared event value": ("churn_event", "2", "other than the declared"),
    "empty event": ("churn_event", " ", "empty"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_target_fails_in_one_line_without_the_value(case):
    column, value, phrase = BAD[case]
    rows = frame()
    rows.loc[17, column] = value
    with pytest.raises(DataError) as info:
        encode_survival_targets(rows, SPEC, SOURCE)
    message = str(info.value)
    assert "\n" not in message and message.startswith(SOURCE)
    assert f"'{column}'" in message and phrase in message and "rule: SURV-" in message
    assert "line 19" in message  # row 17 + header + 1-based
    if value.strip():
        assert f" {value}" not in message.replace("'", " ")


def _with_leak(rows: pd.DataFrame, kind: str) -> pd.DataFrame:
    rows = rows.copy()
    duration = rows["retention_months"].astype(float)
    if kind == "copy":
        rows["monetary_12m"] = (duration * 1000 + 5).astype(str)
    else:  # cumulative spend ~ tenure x monthly charge (points plays the monthly charge)
        rows["monetary_12m"] = (duration * rows["points"].astype(float)).round(2).astype(str)
    return rows


@pytest.mark.parametrize(
    ("kind", "relation"), [("copy", "duration"), ("product", "duration x points")]
)
def test_a_feature_that_is_a_function_of_the_duration_is_refused(kind, relation):
    rows = _with_leak(frame(), kind)
    assert duration_leaks(rows, SPEC, rows["retention_months"].astype(float).to_numpy()) == [
        ("monetary_12m", relation)
    ]
    with pytest.raises(DataError, match=r"'monetary_12m' is a deterministic function of") as info:
        encode_survival_targets(rows, SPEC, SOURCE)
    assert "rule: SURV-LEAK" in str(info.value) and "\n" not in str(info.value)


def test_a_declared_duration_derived_feature_is_a_warning(caplog):
    raw = copy.deepcopy(shipped())
    raw["duration_derived"] = ["monetary_12m"]
    spec = parse_task(raw)
    rows = _with_leak(frame(), "product")
    with caplog.at_level(logging.WARNING, logger=SURVIVAL_LOGGER):
        encode_survival_targets(rows, spec, SOURCE)
    assert [r.getMessage() for r in caplog.records] == [
        "node.csv: feature 'monetary_12m' is declared duration_derived and tracks "
        "duration x points (rule: SURV-LEAK)"
    ]


def test_control_a_noisy_relation_is_no_leak():
    rows = frame(n=2000)
    duration = rows["retention_months"].astype(float)
    noise = np.random.default_rng(1).normal(0, 8, len(rows))
    rows["monetary_12m"] = (duration + noise).round(2).astype(str)  # correlated, not determined
    assert duration_leaks(rows, SPEC, duration.to_numpy()) == []
