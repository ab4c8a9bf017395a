"""Split one data set into simulated nodes: the non-IID scenarios researchers expect.

Schemes (all seeded and vectorised; every row goes to exactly one node):

- ``iid``: a random permutation cut into ``num_nodes`` near-equal parts.
- ``column``: split by the values of a column (region, store, contract type); each value goes
  to exactly one node, values are packed onto nodes largest-first (balanced by rows).
- ``dirichlet``: label skew; for each label class, node shares ~ Dirichlet(``alpha``). Small
  ``alpha`` (0.1) gives nodes dominated by one class; large ``alpha`` (100) is close to IID.
- ``quantity``: quantity skew; node sizes ~ Dirichlet(``alpha``), rows otherwise random.
- ``feature``: feature-distribution skew; rows ranked by a numeric column are cut into
  ``num_nodes`` quantile ranges, then a fraction ``mix`` of rows is reassigned at random so
  ranges overlap (``mix=0``: disjoint ranges, ``mix=1``: IID).

Every node must receive at least ``min_rows`` rows; Dirichlet draws are repeated (seeded) until
they do, and a split that cannot satisfy it stops the job with one clear sentence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from confide.partition_spec import SCHEMES, PartitionError, PartitionSpec, parse_partition

__all__ = [
    "SCHEMES",
    "PartitionError",
    "PartitionSpec",
    "describe_partition",
    "parse_partition",
    "partition_indices",
]

_MAX_DRAWS = 1000


def _allocate(total: int, shares: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``shares`` (largest remainder)."""
    exact = shares / shares.sum() * total
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short:
        counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return counts


def _assignment_from_counts(order: np.ndarray, counts: np.ndarray, n_rows: int) -> np.ndarray:
    node_of = np.empty(n_rows, dtype=np.int64)
    node_of[order] = np.repeat(np.arange(len(counts)), counts)
    return node_of


def _iid(spec: PartitionSpec, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    counts = _allocate(n_rows, np.ones(spec.num_nodes))
    return _assignment_from_counts(rng.permutation(n_rows), counts, n_rows)


def _quantity(spec: PartitionSpec, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(n_rows)
    for _ in range(_MAX_DRAWS):
        counts = _allocate(n_rows, rng.dirichlet(np.full(spec.num_nodes, spec.alpha)))
        if counts.min() >= spec.min_rows:
            return _assignment_from_counts(order, counts, n_rows)
    raise PartitionError(
        f"quantity skew with alpha={spec.alpha:g} could not give each of {spec.num_nodes} nodes "
        f"at least {spec.min_rows} rows; raise alpha or rows, or lower min_rows (rule: partition)"
    )


def _dirichlet(spec: PartitionSpec, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    codes, _ = pd.factorize(pd.Series(labels), use_na_sentinel=False)
    n_rows, k = len(codes), spec.num_nodes
    class_rows = [rng.permutation(np.flatnonzero(codes == c)) for c in range(codes.max() + 1)]
    for _ in range(_MAX_DRAWS):
        shares = rng.dirichlet(np.full(k, spec.alpha), size=len(class_rows))
        counts = np.stack([_allocate(len(r), s) for r, s in zip(class_rows, shares, strict=True)])
        if counts.sum(axis=0).min() >= spec.min_rows:
            node_of = np.empty(n_rows, dtype=np.int64)
            for rows, row_counts in zip(class_rows, counts, strict=True):
                node_of[rows] = np.repeat(np.arange(k), row_counts)
            return node_of
    raise PartitionError(
        f"label skew with alpha={spec.alpha:g} could not give each of {k} nodes at least "
        f"{spec.min_rows} rows; raise alpha or rows, or lower min_rows (rule: partition)"
    )


def _column(spec: PartitionSpec, values: np.ndarray) -> np.ndarray:
    codes, uniques = pd.factorize(pd.Series(values), use_na_sentinel=False, sort=True)
    if len(uniques) < spec.num_nodes:
        raise PartitionError(
            f"column '{spec.column}' has {len(uniques)} distinct value(s), fewer than "
            f"num_nodes={spec.num_nodes} (rule: partition)"
        )
    sizes = np.bincount(codes, minlength=len(uniques))
    loads = np.zeros(spec.num_nodes, dtype=np.int64)
    node_of_value = np.empty(len(uniques), dtype=np.int64)
    for value in np.argsort(-sizes, kind="stable"):  # largest value first onto the lightest node
        target = int(np.argmin(loads))
        node_of_value[value] = target
        loads[target] += sizes[value]
    return node_of_value[codes]


def _feature(spec: PartitionSpec, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    numeric = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(numeric).all():
        raise PartitionError(
            f"column '{spec.column}' has no numeric values for a feature-skew split "
            "(rule: partition)"
        )
    n_rows = len(numeric)
    jitter = rng.random(n_rows)  # random order among ties (and among missing values, last)
    order = np.lexsort((jitter, np.nan_to_num(numeric, nan=np.inf)))
    node_of = _assignment_from_counts(order, _allocate(n_rows, np.ones(spec.num_nodes)), n_rows)
    mixed = rng.random(n_rows) < spec.mix
    node_of[mixed] = rng.integers(0, spec.num_nodes, size=int(mixed.sum()))
    return node_of


def partition_indices(
    spec: PartitionSpec,
    n_rows: int,
    seed: int,
    *,
    labels: np.ndarray | None = None,
    values: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Row indices (sorted) of each node. ``labels`` for ``dirichlet``, ``values`` (the
    column's values) for ``column`` and ``feature``. Deterministic in ``seed``."""
    if n_rows < spec.num_nodes * spec.min_rows:
        raise PartitionError(
            f"{n_rows} rows cannot give {spec.num_nodes} nodes at least {spec.min_rows} rows each "
            "(rule: partition)"
        )
    rng = np.random.default_rng([int(seed), 0x5EED_9A27])
    if spec.scheme == "iid":
        node_of = _iid(spec, n_rows, rng)
    elif spec.scheme == "quantity":
        node_of = _quantity(spec, n_rows, rng)
    elif spec.scheme == "dirichlet":
        if labels is None or len(labels) != n_rows:
            raise PartitionError("label skew needs the label of every row (rule: partition)")
        node_of = _dirichlet(spec, np.asarray(labels), rng)
    else:
        if values is None or len(values) != n_rows:
            raise PartitionError(
                f"scheme '{spec.scheme}' needs the values of column '{spec.column}' "
                "(rule: partition)"
            )
        values = np.asarray(values)
        node_of = _column(spec, values) if spec.scheme == "column" else _feature(spec, values, rng)
    order = np.argsort(node_of, kind="stable")
    parts = np.split(order, np.cumsum(np.bincount(node_of, minlength=spec.num_nodes))[:-1])
    small = [i for i, part in enumerate(parts) if len(part) < spec.min_rows]
    if small:
        raise PartitionError(
            f"scheme '{spec.scheme}' gives node {spec.node_names()[small[0]]} "
            f"{len(parts[small[0]])} row(s), fewer than min_rows={spec.min_rows} "
            "(rule: partition)"
        )
    return parts


def describe_partition(
    spec: PartitionSpec,
    parts: list[np.ndarray],
    labels: np.ndarray | None = None,
    positive: Any = None,
    values: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-node rows, positive rate and (``column`` scheme) the values each node holds."""
    nodes: dict[str, Any] = {}
    for name, part in zip(spec.node_names(), parts, strict=True):
        entry: dict[str, Any] = {"rows": len(part)}
        if labels is not None and positive is not None:
            entry["positive_rate"] = float(
                np.mean(np.asarray(labels)[part].astype(str) == str(positive))
            )
        if values is not None and spec.scheme == "column":
            entry["values"] = sorted({str(v) for v in np.asarray(values)[part]})
        nodes[name] = entry
    return {
        "scheme": spec.scheme,
        "num_nodes": spec.num_nodes,
        "alpha": spec.alpha if spec.scheme in {"dirichlet", "quantity"} else None,
        "column": spec.column,
        "mix": spec.mix if spec.scheme == "feature" else None,
        "nodes": nodes,
    }
