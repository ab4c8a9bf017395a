"""A small but realistic run directory, built from real metric code on random scores.

Scores are drawn per model from a logistic model of a label (the global model sharper than a
small node alone); histograms and metrics come from ``modeling.metrics`` exactly as a run
writes them. No Flower run is needed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from confide.config import compose_config, to_container
from confide.modeling.metrics import binary_metrics, metrics_from_histograms, score_histograms

__all__ = ["NODES", "make_run", "scores_for"]

NODES = {"retailer": 3000, "ecommerce": 600}
_POLICY = Path(__file__).resolve().parents[2] / "simulations" / "policies"
_STRENGTH = {
    "global": 2.2,
    "centralised": 2.3,
    "centralised_dp": 2.25,
    "local_only:retailer": 2.1,
    "local_only:ecommerce": 1.4,
}


def scores_for(rng: np.random.Generator, n: int, strength: float, rate: float = 0.25):
    """Labels and calibrated-ish probabilities: logit = strength * signal + offset."""
    signal = rng.normal(size=n)
    offset = np.log(rate / (1 - rate))
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.6 * signal + offset)))).astype(float)
    prob = 1 / (1 + np.exp(-(strength * 0.75 * signal + offset)))
    return y, prob


def _hist(y, prob) -> dict[str, list[int]]:
    pos, neg = score_histograms(y, prob)
    return {"pos": pos, "neg": neg}


def make_run(
    root: Path,
    name: str = "run",
    *,
    epsilon: float = 3.0,
    dp_enabled: bool = True,
    status: str = "completed",
    rounds: int = 3,
    seed: int = 0,
    node_max_epsilon: float | None = None,
) -> Path:
    """Write a run directory ``root/runs/<name>`` and return its path."""
    rng = np.random.default_rng(seed)
    run_dir = root / "runs" / name
    run_dir.mkdir(parents=True)
    # one node's policy by package path, the other by a path relative to where the run started
    (root / "policies").mkdir(exist_ok=True)
    shutil.copy(_POLICY / "synthetic_customers.yaml", root / "policies" / "partner.yaml")
    planned = rounds if status == "completed" else rounds + 2  # a stopped run ends early
    config = to_container(compose_config([f"rounds={planned}"]))
    config["dp"]["enabled"] = dp_enabled
    config["dp"]["epsilon"] = epsilon
    config["federation"]["nodes"] = [
        {
            "name": "retailer",
            "profile": "retailer",
            "rows": NODES["retailer"],
            "policy": "pkg://confide.simulations/policies/synthetic_customers.yaml",
        },
        {
            "name": "ecommerce",
            "profile": "ecommerce",
            "rows": NODES["ecommerce"],
            "policy": "policies/partner.yaml",
        },
    ]
    if node_max_epsilon is not None:
        config["federation"]["nodes"][1]["max_epsilon_per_run"] = node_max_epsilon
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")

    test = {n: int(rows * 0.2) for n, rows in NODES.items()}
    n_test = sum(test.values())
    run_id = f"20260101T000000000000Z-{name}"
    history: dict[str, Any] = {"rounds": []}
    for r in range(1, rounds + 1):
        y, p = scores_for(rng, n_test, 1.5 + 0.7 * r / rounds)
        pos, neg = score_histograms(y, p)
        m = binary_metrics(y, p)
        glob = metrics_from_histograms(pos, neg, m["log_loss"] * n_test, m["brier"] * n_test)
        train = {
            node: {
                "train_loss": 0.5 - 0.02 * r,
                "epsilon": (epsilon * (0.5 + 0.5 * r / rounds) if dp_enabled else 0.0),
                "steps": float(rows // 256 * 2),
                "num-examples": float(rows * 0.8),
                "noise_multiplier": 1.1,
                "secure_noise": 0.0,  # simulation: seeded noise
            }
            for node, rows in NODES.items()
        }
        evaluate = {
            node: {**binary_metrics(*scores_for(rng, t, 2.0)), "num-examples": float(t)}
            for node, t in test.items()
        }
        history["rounds"].append(
            {
                "round": r,
                "train": train,
                "evaluate": evaluate,
                "refused": {},
                "failed": [],
                "global": {**glob, "num-examples": float(n_test)},
            }
        )
    if status != "completed":
        history["rounds"].append(
            {
                "round": rounds + 1,
                "train": {},
                "evaluate": {},
                "refused": {
                    "ecommerce": "node 'ecommerce': proposed epsilon "
                    "9 exceeds the node's maximum 3 per run "
                    "(rule: DP-EPS-RUN)"
                },
                "failed": [],
                "global": {},
            }
        )
    (run_dir / "history.json").write_text(json.dumps(history), "utf-8")

    ledgers = {}
    (run_dir / "ledgers").mkdir()
    for node in NODES:
        spent = epsilon - 0.004 if dp_enabled else 0.0
        ledgers[node] = {
            "lifetime_epsilon": 10.0,
            "lifetime_spent": 1.5 + max(epsilon, spent),
            "node": node,
            "version": 1,
            "runs": [
                {
                    "run_id": "earlier-run",
                    "reserved_epsilon": 1.5,
                    "spent_epsilon": 1.4,
                    "delta": 1e-5,
                    "steps": 10,
                },
                {
                    "run_id": run_id,
                    "reserved_epsilon": epsilon,
                    "spent_epsilon": spent,
                    "delta": 1e-5,
                    "steps": 100,
                },
            ],
        }
        (run_dir / "ledgers" / f"{node}.json").write_text(json.dumps(ledgers[node]), "utf-8")

    if status != "completed":
        outcome = {
            "status": "stopped",
            "rounds_completed": rounds,
            "reasons": history["rounds"][-1]["refused"],
            "message": f"round {rounds + 1}: only 1 node(s) trained, fewer than the minimum of 2",
        }
        metrics = {"run_id": run_id, "outcome": outcome, "ledgers": ledgers}
        (run_dir / "outcome.json").write_text(json.dumps(outcome), "utf-8")
        (run_dir / "metrics.json").write_text(json.dumps(metrics), "utf-8")
        return run_dir

    curves = {"bins": 200, "pooled_test": {}}
    pooled = {}
    for model, strength in _STRENGTH.items():
        y, p = scores_for(rng, n_test, strength)
        curves["pooled_test"][model] = _hist(y, p)
        pooled[model] = binary_metrics(y, p)
    nodes = {}
    for node, rows in NODES.items():
        y, p = scores_for(rng, test[node], 2.1)
        nodes[node] = {
            "rows": rows,
            "train_rows": int(rows * 0.8),
            "test_rows": test[node],
            "positive_rate": 0.25,
            "epsilon": epsilon - 0.004 if dp_enabled else 0.0,
            "global_model_on_own_test": binary_metrics(y, p),
        }
    baselines = {
        name: {
            "pooled": pooled[name],
            "own": (
                binary_metrics(*scores_for(rng, test[name.split(":")[1]], 1.6))
                if name.startswith("local_only:")
                else None
            ),
            "epsilon": 0.0 if name == "centralised" else epsilon - 0.006,
            "rows": sum(NODES.values()),
        }
        for name in _STRENGTH
        if name != "global"
    }
    outcome = {"status": "completed", "rounds_completed": rounds, "reasons": {}, "message": ""}
    metrics = {
        "run_id": run_id,
        "dp": {
            "enabled": dp_enabled,
            "epsilon_target": epsilon if dp_enabled else None,
            "delta": 1e-5 if dp_enabled else None,
            "accountant": "rdp",
            "noise": "seeded",
        },
        "global": pooled["global"],
        "federated_eval_last_round": history["rounds"][-1]["global"],
        "nodes": nodes,
        "baselines": baselines,
        "outcome": outcome,
    }
    (run_dir / "curves.json").write_text(json.dumps(curves), "utf-8")
    (run_dir / "outcome.json").write_text(json.dumps(outcome), "utf-8")
    (run_dir / "metrics.json").write_text(json.dumps(metrics), "utf-8")
    return run_dir
