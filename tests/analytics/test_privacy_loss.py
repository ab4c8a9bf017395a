"""Every release's noise is calibrated to its true sensitivity under the contribution bound.

With an exact (noise-free) sampler, a release is the true statistic plus its recorded Laplace
scale. For neighbouring data sets (one customer added or removed, with up to ``k`` rows of
extreme values), the Laplace privacy loss of each part is ``Σ_components ||Δ||₁ / scale``; it
must not exceed the part's epsilon. Control: noise scaled for k = 1 while the node keeps 5 rows
per customer gives a loss of 5·epsilon, and the check catches it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.analytics import node as node_mod
from confide.analytics.kmeans import kmeans_node_step, step_epsilon
from confide.analytics.node import release_node
from confide.analytics.prepare import prepare
from confide.analytics.spec import Unit
from tests.analytics.helpers import builtin_spec

_TOL = 1e-9  # float rounding of the sums


class ExactSampler:
    """No noise: the release carries the true statistic (tests only)."""

    name = "exact (test only)"

    def add_laplace(self, values: np.ndarray, scale: float) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).copy()


def _components(part: dict) -> list[dict]:
    return list(part["components"].values())


def _loss(a: dict, b: dict) -> float:
    total = 0.0
    for ca, cb in zip(_components(a), _components(b), strict=True):
        assert ca["scale"] == cb["scale"]
        diff = np.abs(np.asarray(ca["values"]) - np.asarray(cb["values"])).sum()
        total += diff / ca["scale"]
    return float(total)


def _part_losses(spec, rel_a: dict, rel_b: dict) -> dict[str, float]:
    out = {f"query:{q}": _loss(rel_a["queries"][q], rel_b["queries"][q]) for q in rel_a["queries"]}
    for part in ("rfm", "quality"):
        if part in rel_a:
            out[part] = _loss(rel_a[part], rel_b[part])
    return out


def _extreme_customer(spec, template: pd.Series, rows: int, high: bool) -> pd.DataFrame:
    row = template.copy()
    row[spec.unit.id_column] = "NEIGHBOUR-1"
    for name, decl in spec.columns.items():
        if decl.kind == "numeric":
            row[name] = decl.max if high else decl.min
        elif decl.kind == "categorical":
            row[name] = decl.categories[-1] if high else decl.categories[0]
    return pd.DataFrame([row] * rows)


@pytest.fixture(scope="module")
def base(default_frames) -> pd.DataFrame:
    return default_frames["ecommerce"].iloc[:1500].reset_index(drop=True)


def _check_all_parts(spec, d: pd.DataFrame, d2: pd.DataFrame) -> dict[str, float]:
    a = release_node(spec, d, "d", sampler=ExactSampler())
    b = release_node(spec, d2, "d2", sampler=ExactSampler())
    return _part_losses(spec, a, b)


@pytest.mark.parametrize("high", [True, False])
def test_adding_one_extreme_customer_costs_at_most_each_parts_epsilon(base, high):
    spec = builtin_spec()
    d2 = pd.concat([base, _extreme_customer(spec, base.iloc[0], 1, high)], ignore_index=True)
    losses = _check_all_parts(spec, base, d2)
    parts = spec.parts()
    for part, loss in losses.items():
        assert loss <= parts[part] * (1 + _TOL), (part, loss, parts[part])
    # tight: the extreme customer reaches the bound of the count, and of the sum at the maximum
    assert losses["query:customers_by_tier"] == pytest.approx(parts["query:customers_by_tier"])
    if high:
        assert losses["query:spend_by_province"] == pytest.approx(parts["query:spend_by_province"])


def test_removing_a_customer_costs_at_most_each_parts_epsilon(base):
    spec = builtin_spec()
    losses = _check_all_parts(spec, base, base.iloc[1:].reset_index(drop=True))
    for part, loss in losses.items():
        assert loss <= spec.parts()[part] * (1 + _TOL)


def _k5(spec):
    return dataclasses.replace(spec, unit=Unit(spec.unit.id_column, 5))


def _with_repeats(base: pd.DataFrame) -> pd.DataFrame:
    """A transaction-like table: every customer appears 1-3 times."""
    reps = np.arange(len(base)) % 3 + 1
    return base.loc[base.index.repeat(reps)].reset_index(drop=True)


def test_k_rows_per_customer_scale_noise_by_k_and_the_bound_holds(base):
    spec = _k5(builtin_spec())
    d = _with_repeats(base)
    d2 = pd.concat([d, _extreme_customer(spec, base.iloc[0], 7, True)], ignore_index=True)
    losses = _check_all_parts(spec, d, d2)
    for part, loss in losses.items():
        assert loss <= spec.parts()[part] * (1 + _TOL), (part, loss)
    # the 7-row customer counts with exactly 5 rows: the bound is reached, not exceeded
    assert losses["query:customers_by_tier"] == pytest.approx(
        spec.parts()["query:customers_by_tier"]
    )


def test_control_noise_scaled_for_k1_while_5_rows_are_kept_breaks_the_bound(base, monkeypatch):
    spec1 = builtin_spec()
    spec5 = _k5(spec1)
    monkeypatch.setattr(node_mod, "prepare", lambda s, f, src: prepare(spec5, f, src))
    d = _with_repeats(base)
    d2 = pd.concat([d, _extreme_customer(spec1, base.iloc[0], 7, True)], ignore_index=True)
    losses = _check_all_parts(spec1, d, d2)
    eps = spec1.parts()["query:spend_by_province"]
    assert losses["query:spend_by_province"] == pytest.approx(5 * eps)
    assert losses["query:spend_by_province"] > eps


def test_kmeans_steps_cost_at_most_their_epsilon(base):
    spec = builtin_spec()
    d2 = pd.concat([base, _extreme_customer(spec, base.iloc[0], 1, True)], ignore_index=True)
    centroids = [
        [10.0, 2.0, 500.0],
        [30.0, 10.0, 3000.0],
        [90.0, 20.0, 8000.0],
        [5.0, 50.0, 19000.0],
    ]
    total = 0.0
    for it in range(spec.segments.iterations + 2):
        c = None if it == 0 else centroids
        a = kmeans_node_step(spec, base, c, it, sampler=ExactSampler())
        b = kmeans_node_step(spec, d2, c, it, sampler=ExactSampler())
        loss = _loss(a, b)
        assert loss <= step_epsilon(spec, it) * (1 + _TOL), (it, loss)
        total += step_epsilon(spec, it)
    assert total == pytest.approx(spec.segments.epsilon, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(
    k=st.integers(1, 4),
    rows=st.integers(1, 6),
    spend=st.floats(-1e6, 1e6, allow_nan=False),
    age=st.floats(-1e3, 1e3, allow_nan=False),
    recency=st.floats(0, 400, allow_nan=False),
    level=st.sampled_from(["basic", "gold", "diamond", ""]),
    province=st.sampled_from(["北京", "陕西", "火星"]),
)
def test_property_any_added_customer_costs_at_most_each_parts_epsilon(
    default_frames, k, rows, spend, age, recency, level, province
):
    spec = _k5(builtin_spec())
    spec = dataclasses.replace(spec, unit=Unit(spec.unit.id_column, k))
    d = default_frames["ecommerce"].iloc[:300].reset_index(drop=True)
    new = pd.DataFrame([d.iloc[0]] * rows)
    new["customer_id"] = "NEIGHBOUR-2"
    new["monetary_12m"], new["age"], new["recency_days"] = spend, age, recency
    new["member_level"], new["province"] = level, province
    d2 = pd.concat([d, new], ignore_index=True)
    for part, loss in _check_all_parts(spec, d, d2).items():
        assert loss <= spec.parts()[part] * (1 + _TOL), (part, loss)
