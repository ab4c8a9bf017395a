"""Partition schemes: every row goes to exactly one node, seeded, and each scheme skews what it
claims to skew."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.simulations.partitioning import (
    SCHEMES,
    PartitionError,
    PartitionSpec,
    describe_partition,
    parse_partition,
    partition_indices,
)


def _inputs(n_rows: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n_rows) < 0.3).astype(int)
    regions = rng.choice(["east", "west", "north", "south", "centre", "coast"], size=n_rows)
    ages = rng.integers(18, 86, size=n_rows)
    return labels, regions, ages


def _split(spec: PartitionSpec, n_rows: int, seed: int):
    labels, regions, ages = _inputs(n_rows, seed)
    values = {"column": regions, "feature": ages}.get(spec.scheme)
    return partition_indices(spec, n_rows, seed, labels=labels, values=values)


@settings(max_examples=60, deadline=None)
@given(
    scheme=st.sampled_from(SCHEMES),
    num_nodes=st.integers(1, 6),
    n_rows=st.integers(600, 3000),
    seed=st.integers(0, 2**31),
    alpha=st.floats(0.3, 50),
)
def test_every_row_in_exactly_one_node_and_deterministic(scheme, num_nodes, n_rows, seed, alpha):
    spec = PartitionSpec(
        scheme,
        num_nodes,
        alpha=alpha,
        column="x" if scheme in {"column", "feature"} else None,
        min_rows=10,
    )
    # n_rows >= 600 rows, at most 6 nodes of min 10 rows, six region values, alpha >= 0.3:
    # every documented refusal is out of reach, so every split must succeed
    parts = _split(spec, n_rows, seed)
    assert len(parts) == num_nodes
    joined = np.concatenate(parts)
    assert len(joined) == n_rows and len(np.unique(joined)) == n_rows
    assert all(len(p) >= spec.min_rows and np.all(np.diff(p) > 0) for p in parts)
    again = _split(spec, n_rows, seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_column_scheme_keeps_each_value_on_one_node_and_balances():
    labels, regions, _ = _inputs(6000, 1)
    spec = PartitionSpec("column", 3, column="region", min_rows=10)
    parts = partition_indices(spec, 6000, 1, values=regions)
    owners = {}
    for node, part in enumerate(parts):
        for value in set(regions[part]):
            assert owners.setdefault(value, node) == node
    assert len(owners) == 6
    sizes = [len(p) for p in parts]
    assert max(sizes) < 1.3 * min(sizes)  # six equal-ish values on three nodes
    summary = describe_partition(spec, parts, labels, 1, regions)
    assert sum(len(n["values"]) for n in summary["nodes"].values()) == 6


def test_dirichlet_label_skew_grows_as_alpha_shrinks():
    labels, _, _ = _inputs(20000, 2)

    def spread(alpha):
        spec = PartitionSpec("dirichlet", 5, alpha=alpha, min_rows=50)
        rates = [labels[p].mean() for p in partition_indices(spec, 20000, 2, labels=labels)]
        return max(rates) - min(rates)

    assert spread(0.2) > 0.3
    assert spread(1000.0) < 0.03


def test_quantity_skew_varies_sizes_and_iid_does_not():
    skewed = partition_indices(PartitionSpec("quantity", 5, alpha=0.5, min_rows=20), 10000, 3)
    even = partition_indices(PartitionSpec("iid", 5), 10000, 3)
    assert max(map(len, skewed)) > 2 * min(map(len, skewed))
    assert {len(p) for p in even} == {2000}


def test_feature_skew_gives_ordered_ranges_and_mix_blends_them():
    _, _, ages = _inputs(10000, 4)
    sharp = partition_indices(
        PartitionSpec("feature", 4, column="age", mix=0.0), 10000, 4, values=ages
    )
    means = [ages[p].mean() for p in sharp]
    assert means == sorted(means) and means[-1] - means[0] > 30
    assert all(ages[a].max() <= ages[b].min() for a, b in itertools.pairwise(sharp))
    blended = partition_indices(
        PartitionSpec("feature", 4, column="age", mix=1.0), 10000, 4, values=ages
    )
    blended_means = [ages[p].mean() for p in blended]
    assert max(blended_means) - min(blended_means) < 3


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"scheme": "random", "num_nodes": 2}, "scheme must be one of"),
        ({"scheme": "iid"}, "num_nodes is required"),
        ({"scheme": "column", "num_nodes": 2}, "needs 'column'"),
        ({"scheme": "dirichlet", "num_nodes": 2, "alpha": 0}, "alpha must be > 0"),
        ({"scheme": "feature", "num_nodes": 2, "column": "age", "mix": 2}, "mix must be in"),
        ({"scheme": "iid", "num_nodes": 2, "colour": "red"}, "unknown keys"),
        ({"scheme": "iid", "num_nodes": 0}, "num_nodes must be >= 1"),
    ],
)
def test_bad_partition_blocks_are_one_line_errors(raw, match):
    with pytest.raises(PartitionError, match=match):
        parse_partition(raw)


def test_unsatisfiable_splits_say_why():
    with pytest.raises(PartitionError, match="cannot give 5 nodes at least 100"):
        partition_indices(PartitionSpec("iid", 5, min_rows=100), 400, 0)
    _, regions, _ = _inputs(1000, 5)
    with pytest.raises(PartitionError, match="6 distinct value"):
        partition_indices(
            PartitionSpec("column", 8, column="region", min_rows=1), 1000, 0, values=regions
        )
    with pytest.raises(PartitionError, match="could not give each of 10 nodes"):
        partition_indices(PartitionSpec("quantity", 10, alpha=0.05, min_rows=90), 1000, 0)
