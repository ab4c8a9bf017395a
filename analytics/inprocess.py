"""The whole analysis without Flower: every node's release and the k-means plan, in one process.

Used for the must-show statistics, the benchmarks and fast tests. It calls exactly the node and
coordinator functions the Flower engine calls (:mod:`confide.analytics.node`,
:mod:`confide.analytics.combine`), so what it measures is what a federation releases. Budget
ledgers are the engine's business (``confide analyze``); nothing here touches a file.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .combine import combine_releases, kmeans_update, segments_summary
from .kmeans import kmeans_node_step
from .mechanisms import NoiseSampler, OpenDPLaplace
from .node import release_node
from .prepare import AnalysisDataError
from .spec import AnalysisSpec

__all__ = ["run_analysis_in_process", "run_segments_in_process"]


def run_segments_in_process(
    spec: AnalysisSpec,
    frames: dict[str, pd.DataFrame],
    *,
    sampler: NoiseSampler | None = None,
) -> dict[str, Any]:
    """The DP k-means plan (init, Lloyd steps, final summary) over ``frames``; the summary dict
    (:func:`segments_summary`), whose ``centroids`` the nodes use to assign their customers."""
    if spec.segments is None:
        raise AnalysisDataError(f"analysis '{spec.name}' has no segments part (rule ANALYSIS-SPEC)")
    sampler = sampler or OpenDPLaplace()
    centroids = None
    for it in range(spec.segments.iterations + 1):
        steps = {
            node: kmeans_node_step(spec, frame, centroids, it, sampler=sampler, source=node)
            for node, frame in frames.items()
        }
        centroids = kmeans_update(spec, steps, previous=centroids)
    last = spec.segments.iterations + 1
    final = {
        node: kmeans_node_step(spec, frame, centroids, last, sampler=sampler, source=node)
        for node, frame in frames.items()
    }
    return segments_summary(spec, final, centroids)  # type: ignore[arg-type]


def run_analysis_in_process(
    spec: AnalysisSpec,
    frames: dict[str, pd.DataFrame],
    *,
    sampler: NoiseSampler | None = None,
) -> dict[str, Any]:
    """The analysis over ``frames`` (node name -> that node's rows): the combined release
    (:func:`combine_releases`) plus ``segments`` when the spec has a segments part."""
    sampler = sampler or OpenDPLaplace()
    releases = {
        node: release_node(spec, frame, node, sampler=sampler) for node, frame in frames.items()
    }
    out = combine_releases(spec, releases)
    if spec.segments is not None:
        out["segments"] = run_segments_in_process(spec, frames, sampler=sampler)
    return out
