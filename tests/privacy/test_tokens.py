import base64

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.privacy import apply_file, parse_policy
from confide.privacy.tokens import tokens_from_blobs


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=70), min_size=1, max_size=30))
def test_vectorised_base64_matches_stdlib(blobs):
    expected = ["t." + base64.urlsafe_b64encode(b).rstrip(b"=").decode() for b in blobs]
    assert tokens_from_blobs("t.", blobs).to_pylist() == expected


def test_csv_text_is_preserved_exactly(tmp_path):
    pol = parse_policy(
        {
            "version": 1,
            "dataset": "ds",
            "columns": {"a": {"tier": "non_sensitive"}, "b": {"tier": "non_sensitive"}},
            "dp": {"max_epsilon_per_run": 1, "lifetime_epsilon": 2, "max_delta": 1e-6},
        },
        "p.yaml",
    )
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text('a,b\nNA,007\n"line1\nline2","x,y"\n,null\n', encoding="utf-8")
    apply_file(pol, src, out, chunksize=1)
    back = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert back["a"].tolist() == ["NA", "line1\nline2", ""]
    assert back["b"].tolist() == ["007", "x,y", "null"]
