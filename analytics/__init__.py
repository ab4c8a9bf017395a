"""Confide's DP federated analytics: statistics, RFM, DP k-means segments, data quality.

Each node computes its own release and adds Laplace noise (OpenDP's floating-point-safe
sampler) before anything leaves it; the coordinator only sums noisy releases and reports the
expected error from the known noise scales. No torch, no Flower: plain dicts cross boundaries.
See ``docs/analytics.md``.

Modules: :mod:`.spec` (the analysis spec and its wire form), :mod:`.policy_check` (the spec
against a node's policy), :mod:`.prepare` (contribution bound and parsing, node-local),
:mod:`.mechanisms` (Laplace noise and 95% half-widths), :mod:`.node` (a node's release),
:mod:`.kmeans` (DP-Lloyd steps, updates and segment summary), :mod:`.estimates` (estimates and
errors from noisy sums), :mod:`.combine` (the coordinator's per-node and federated estimates),
:mod:`.inprocess` (the whole analysis without Flower).
"""

from __future__ import annotations

__all__: list[str] = []
