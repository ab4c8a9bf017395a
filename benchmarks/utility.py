"""Utility: the default federation's global AUC against centralised (with and without DP) and
each node alone, with every node's epsilon, from one ``confide simulate`` run's metrics.json."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from confide.benchmarks.common import base_config
from confide.simulations.simulate import simulate

__all__ = ["run", "summarise"]


def summarise(metrics: dict[str, Any]) -> dict[str, Any]:
    """The utility figures of a run's ``metrics.json``."""
    baselines = metrics.get("baselines", {})
    local = {
        name.split(":", 1)[1]: {
            "pooled_roc_auc": b["pooled"]["roc_auc"],
            "own_test_roc_auc": (b.get("own") or {}).get("roc_auc"),
            "epsilon": b.get("epsilon"),
            "rows": b.get("rows"),
        }
        for name, b in baselines.items()
        if name.startswith("local_only:")
    }
    nodes = {
        name: {
            "rows": n["rows"],
            "epsilon": n["epsilon"],
            "global_model_own_test_roc_auc": n["global_model_on_own_test"]["roc_auc"],
            "local_only_own_test_roc_auc": local.get(name, {}).get("own_test_roc_auc"),
        }
        for name, n in metrics.get("nodes", {}).items()
    }
    return {
        "global_roc_auc": metrics["global"]["roc_auc"],
        "centralised_roc_auc": baselines.get("centralised", {}).get("pooled", {}).get("roc_auc"),
        "centralised_dp_roc_auc": baselines.get("centralised_dp", {})
        .get("pooled", {})
        .get("roc_auc"),
        "centralised_dp_epsilon": baselines.get("centralised_dp", {}).get("epsilon"),
        "local_only": local,
        "nodes": nodes,
        "epsilon_target": metrics.get("dp", {}).get("epsilon_target"),
    }


def run(quick: bool) -> dict[str, Any]:
    """One default run (the shipped config, baselines on); ``quick`` changes nothing here."""
    with tempfile.TemporaryDirectory(prefix="confide-bench-utility-") as tmp:
        cfg = base_config(["run.quiet=true"])
        cfg["run"]["dir"] = str(Path(tmp) / "run")
        start = time.perf_counter()
        sim = simulate(cfg)
        wall = time.perf_counter() - start
    out = summarise(sim.metrics)
    out.update({"status": sim.status, "wall_s": wall, "rounds": cfg["rounds"]})
    return out
