"""Confide's DP federated analytics: statistics, RFM, DP k-means segments, data quality.

Each node computes its own release and adds Laplace noise (OpenDP's floating-point-safe
sampler) before anything leaves it; the coordinator only sums noisy releases and reports the
expected error from the known noise scales. No torch, no Flower: plain dicts cross boundaries.
See ``docs/analytics.md``.
"""

from __future__ import annotations
