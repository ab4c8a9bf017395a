"""What secure DP noise costs: one DP epoch with the secure source against the seeded one.

The data and settings are the DP-overhead benchmark's (the default federation's largest node,
the shipped batch size, learning rate, clipping norm and epsilon). For each model the three
epochs (no DP, DP with seeded noise, DP with secure noise) are interleaved within each
repetition, so a busy neighbour slows all of them alike. The raw generators are timed the same
way: normals per second for a large draw, and one step's draw at each model's parameter count
(what a DP step asks for), from which the secure source's share of a DP epoch is judged.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from confide.benchmarks.common import base_config, load_nodes, median, timed
from confide.job import parse_job
from confide.modeling.dp_accounting import calibrate
from confide.modeling.factory import build_model
from confide.modeling.local_training import train_local
from confide.modeling.noise import SecureNoise, SeededNoise

__all__ = ["MODELS", "TARGET_EXTRA", "run"]

MODELS = ("logreg", "mlp")
TARGET_EXTRA = 0.10  # secure noise may add at most 10% to a DP epoch
_BULK = 1_000_000  # normals per call for the raw throughput


def _sources(seed: int) -> dict[str, Any]:
    return {"seeded": SeededNoise(seed), "secure": SecureNoise()}


def _generator(n: int, repeats: int) -> dict[str, float]:
    """Median seconds of one ``gaussian(n, 1.0)`` call per source (sources built outside)."""
    times: dict[str, list[float]] = {"seeded": [], "secure": []}
    calls = max(1, 200_000 // max(n, 1))  # many calls: the secure pool refills several times
    for rep in range(repeats + 1):
        for name, source in _sources(rep).items():
            seconds, _ = timed(
                lambda source=source, calls=calls: [source.gaussian(n, 1.0) for _ in range(calls)]
            )
            if rep > 0:
                times[name].append(seconds / calls)
    return {k: median(v) for k, v in times.items()}


def _epochs(model_cfg: dict[str, Any], job, x, y, repeats: int) -> dict[str, Any]:
    """DP epochs with each source against a non-private one, interleaved (order alternating).

    The two DP epochs run the same code on the same batches' sizes; they differ only in the
    ``gaussian`` call of each step (both samplers are NumPy PCG64). So the secure source's cost
    is measured twice: directly (median of the per-repetition ratio secure / seeded epoch) and
    as steps x (secure - seeded) per-step draw time over the seeded DP epoch, which does not
    drown in the epoch-to-epoch noise of a shared machine; the target is judged on the latter.
    """
    train = replace(job.train, local_epochs=1)
    settings = {"no_dp": replace(job.dp, enabled=False), "seeded": job.dp, "secure": job.dp}
    times: dict[str, list[float]] = {k: [] for k in settings}
    steps: list[int] = []
    calibrated = calibrate(job.dp, len(y), train, job.rounds)  # once: both DP kinds start from it
    for rep in range(repeats + 1):  # the first repetition warms up and is dropped
        sources = _sources(rep)
        order = list(settings) if rep % 2 else list(reversed(settings))
        for kind in order:
            dp = settings[kind]
            model = build_model(model_cfg["name"], model_cfg["net"], x.shape[1], seed=0)
            state = copy.deepcopy(calibrated) if dp.enabled else None
            noise = sources.get(kind)
            seconds, result = timed(
                lambda model=model, dp=dp, state=state, noise=noise, rep=rep: train_local(
                    model, x, y, train, dp, state, seed=rep, noise=noise
                )
            )
            if rep > 0:
                times[kind].append(seconds)
                if kind == "secure":
                    steps.append(result.steps)
    med = {k: median(v) for k, v in times.items()}
    net = build_model(model_cfg["name"], model_cfg["net"], x.shape[1], seed=0)
    params = sum(p.numel() for p in net.parameters())
    draw = _generator(params, repeats)
    direct = median([a / b - 1.0 for a, b in zip(times["secure"], times["seeded"], strict=True)])
    from_draws = median(steps) * (draw["secure"] - draw["seeded"]) / med["seeded"]
    return {
        "parameters": params,
        "batch_size": train.batch_size,
        "steps_per_epoch_median": median(steps),
        "seconds_per_epoch_median": med,
        "seconds_per_epoch_all": times,
        "one_step_draw_s": draw,
        "secure_extra_direct": direct,
        "secure_extra_share_of_dp_epoch": from_draws,
        "dp_ratio_seeded": med["seeded"] / med["no_dp"],
        "dp_ratio_secure": med["secure"] / med["no_dp"],
        "target_met": from_draws <= TARGET_EXTRA,
    }


def run(quick: bool) -> dict[str, Any]:
    """Secure vs seeded noise: DP epoch per model, and the raw generators' throughput."""
    torch.set_num_threads(1)  # as on a simulated node
    repeats = 5 if quick else 15
    bulk = _generator(_BULK, max(2, repeats // 2))
    results: dict[str, Any] = {
        "repeats": repeats,
        "target_extra": TARGET_EXTRA,
        "generator": {
            "normals_per_call": _BULK,
            "seconds_per_call": bulk,
            "normals_per_s": {k: _BULK / v for k, v in bulk.items()},
            "secure_over_seeded_time": bulk["secure"] / bulk["seeded"],
        },
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="confide-bench-noise-") as tmp:
        _, nodes = load_nodes(parse_job(base_config()), Path(tmp))
        x, y = nodes[0].x_train, nodes[0].y_train
        results["data"] = {"node": nodes[0].name, "rows": len(y), "features": x.shape[1]}
        for model_name in MODELS:
            mjob = parse_job(base_config([f"model={model_name}"]))
            results["models"][model_name] = _epochs(mjob.config["model"], mjob, x, y, repeats)
    return results
