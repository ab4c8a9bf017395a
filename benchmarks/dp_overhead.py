"""DP-SGD overhead: one local epoch with DP against one without, per model and DP engine.

The data is the default federation's largest node (the retailer, encoded by the node pipeline),
the settings are the shipped ones (batch size, learning rate, clipping norm, epsilon). The
engines side by side: Confide's closed-form engine (the default for its models) and Opacus in
each grad-sample mode (the fallback engine), both on the same Poisson batches and noise source.
Engines are interleaved within each repetition (the order rotates) and the median is reported,
wall-clock and CPU seconds, so a busy neighbour slows every engine alike. A cProfile of the
default engine says what a DP epoch spends its time on. The Poisson sampler alone is compared
with Opacus's (one uniform number per row per step) over one epoch.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from opacus.accountants import create_accountant
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch.utils.data import DataLoader, TensorDataset

from confide.benchmarks.common import base_config, load_nodes, median, timed
from confide.job import parse_job
from confide.modeling.dp_accounting import (
    RDP_ALPHAS,
    DPSettings,
    calibrate,
    epsilon_for_history,
    steps_per_epoch,
)
from confide.modeling.factory import build_model
from confide.modeling.local_training import _shuffled_batches, train_local
from confide.modeling.poisson_sampling import PoissonBatchSampler

__all__ = ["ENGINES", "MODELS", "MODES", "TARGET_RATIO", "run"]

MODELS = ("logreg", "mlp")
MODES = ("hooks", "ew", "ghost")  # Opacus's grad-sample modes (the fallback engine)
ENGINES = ("closed_form", *(f"opacus_{m}" for m in MODES))
TARGET_RATIO = 1.5

# Where an epoch's time goes: cumulative seconds of the training loop's phases, found by the
# (file, function) that implements them in Confide, torch and Opacus. Phases may nest ("per-sample
# norms + clipped sum" contains the forward and the gradient pass).
_PHASES = (
    ("Poisson batch sampling", ("modeling/poisson_sampling.py", "poisson_batch")),
    ("batch loading (shuffled, non-private)", ("torch/utils/data/dataloader.py", "__next__")),
    ("forward", ("modeling/fast_dp.py", "_forward")),
    ("forward", ("modeling/models.py", "forward")),
    ("per-sample norms + clipped sum (closed form)", ("modeling/fast_dp.py", "_clipped_sum")),
    ("DP gradient: clip, noise, scale (closed form)", ("modeling/fast_dp.py", "step")),
    ("backward (all passes)", ("torch/autograd/__init__.py", "grad")),
    ("backward (all passes)", ("fast_gradient_clipping_utils.py", "backward")),
    ("backward (all passes)", ("torch/_tensor.py", "backward")),
    ("per-sample gradient hooks (in backward)", ("opacus/grad_sample/", "capture_backprops_hook")),
    ("optimizer step (Opacus: clip, noise, update)", ("opacus/optimizers/", "step")),
    ("optimizer step (SGD update)", ("torch/optim/sgd.py", "step")),
    ("zero_grad", ("opacus/optimizers/", "zero_grad")),
    ("zero_grad", ("torch/optim/optimizer.py", "zero_grad")),
    ("accountant step", ("opacus/accountants/", "step")),
    ("make_private (per round)", ("opacus/privacy_engine.py", "make_private")),
    ("budget check (accountant)", ("modeling/dp_accounting.py", "epsilon_for_history")),
)


def _phases(stats: dict) -> dict[str, float]:
    found: dict[str, float] = {}
    for label, (path, func) in _PHASES:
        if label in found:
            continue  # the first matching implementation of a phase wins
        hits = [
            v[3]
            for (filename, _, name), v in stats.items()
            if name == func and path in filename.replace("\\", "/")
        ]
        if hits:
            found[label] = sum(hits)
    return found


def profile_epoch(
    model_cfg: dict[str, Any], nodes, train, dp: DPSettings, state, epochs: int, engine="auto"
):
    """Seconds by phase (cumulative) and the top functions for ``epochs`` epochs of ``dp``."""
    x, y = nodes[0].x_train, nodes[0].y_train
    prof = cProfile.Profile()
    for epoch in range(epochs):
        model = build_model(model_cfg["name"], model_cfg["net"], x.shape[1], seed=0)
        prof.enable()
        train_local(model, x, y, train, dp, state, seed=100 + epoch, dp_engine=engine)
        prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    raw = stats.stats  # type: ignore[attr-defined]
    rows = sorted(
        (
            (tottime / epochs, ncalls / epochs, f"{Path(filename).name}:{line}({func})")
            for (filename, line, func), (_, ncalls, tottime, _, _) in raw.items()
        ),
        reverse=True,
    )
    total = sum(v[2] for v in raw.values()) / epochs
    phases = {k: v / epochs for k, v in _phases(raw).items()}
    return {
        "seconds_per_epoch": total,
        "by_part": phases,
        "top_functions": [
            {"function": name, "seconds_per_epoch": t, "calls_per_epoch": n}
            for t, n, name in rows[:12]
        ],
    }


def _loader_epochs(x, y, batch_size: int, repeats: int) -> dict[str, float]:
    """Seconds to read one epoch of batches: row by row (torch's default for a TensorDataset,
    what ``train_local`` once did) and one indexing operation per batch (what it does now)."""
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    rowwise = DataLoader(TensorDataset(xs, ys), batch_size, shuffle=True)
    generator = torch.Generator().manual_seed(0)
    readers = {
        "row_by_row": lambda: sum(1 for _ in rowwise),
        "batched": lambda: sum(1 for _ in _shuffled_batches(xs, ys, batch_size, generator)),
    }
    times: dict[str, list[float]] = {"row_by_row": [], "batched": []}
    for _ in range(repeats):
        for name, read in readers.items():
            times[name].append(timed(read)[0])
    return {k: median(v) for k, v in times.items()}


def _accounting(state, rounds: int, repeats: int) -> dict[str, float]:
    """One epsilon evaluation at the last round of a run (``rounds`` history entries): Opacus's
    RDP accountant from scratch (what every budget check and report cost before) against
    ``epsilon_for_history`` with its per-(sigma, q) cache (what a node pays now)."""
    history = [(state.noise_multiplier, state.sample_rate, 63)] * rounds

    def opacus() -> float:
        accountant = create_accountant(mechanism="rdp")
        accountant.history = list(history)
        return accountant.get_epsilon(delta=1e-5, alphas=RDP_ALPHAS)

    epsilon_for_history(history, 1e-5, "rdp")  # the node's first call fills the cache
    return {
        "opacus_accountant": median([timed(opacus)[0] for _ in range(max(2, repeats // 2))]),
        "cached": median(
            [timed(lambda: epsilon_for_history(history, 1e-5, "rdp"))[0] for _ in range(repeats)]
        ),
        "rounds": rounds,
    }


def _sampler_epochs(rows: int, batch_size: int, repeats: int) -> dict[str, float]:
    """Seconds to draw one epoch of Poisson batches: Opacus's sampler (one uniform number per
    row per step) and Confide's (Binomial batch size, then a uniform subset of that size)."""
    steps = steps_per_epoch(rows, batch_size)
    opacus = UniformWithReplacementSampler(num_samples=rows, sample_rate=1.0 / steps, steps=steps)
    ours = PoissonBatchSampler(rows, 1.0 / steps, steps, np.random.default_rng(0))
    times: dict[str, list[float]] = {"opacus_uniform_per_row": [], "binomial_then_subset": []}
    for _ in range(repeats):
        for name, sampler in (("opacus_uniform_per_row", opacus), ("binomial_then_subset", ours)):
            times[name].append(timed(lambda sampler=sampler: sum(1 for _ in sampler))[0])
    return {k: median(v) for k, v in times.items()}


def _both_clocks(fn) -> tuple[float, float]:
    """Wall and CPU seconds of one call (CPU time is what a busy neighbour cannot inflate)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _epoch(model_cfg, x, y, train, dp, state, seed: int, engine: str):
    model = build_model(model_cfg["name"], model_cfg["net"], x.shape[1], seed=0)
    if engine == "off":
        return lambda: train_local(model, x, y, train, dp, None, seed=seed)
    if engine == "closed_form":
        return lambda: train_local(model, x, y, train, dp, state, seed=seed)
    mode_dp = replace(dp, grad_sample_mode=engine.removeprefix("opacus_"))
    return lambda: train_local(model, x, y, train, mode_dp, state, seed=seed, dp_engine="opacus")


def _model_results(model_name: str, x, y, repeats: int, nodes) -> dict[str, Any]:
    mjob = parse_job(base_config([f"model={model_name}"]))
    model_cfg = mjob.config["model"]
    train = replace(mjob.train, local_epochs=1)
    state = calibrate(mjob.dp, len(y), train, mjob.rounds)
    off = replace(mjob.dp, enabled=False)
    names = ("off", *ENGINES)
    wall: dict[str, list[float]] = {m: [] for m in names}
    cpu: dict[str, list[float]] = {m: [] for m in names}
    for rep in range(repeats + 1):  # the first repetition warms up and is dropped
        order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate the order
        for engine in order:
            dp = off if engine == "off" else mjob.dp
            w, c = _both_clocks(_epoch(model_cfg, x, y, train, dp, state, rep, engine))
            if rep > 0:
                wall[engine].append(w)
                cpu[engine].append(c)
    med = {m: median(t) for m, t in wall.items()}
    med_cpu = {m: median(t) for m, t in cpu.items()}
    ratios = {m: med[m] / med["off"] for m in ENGINES}
    cpu_ratios = {m: med_cpu[m] / med_cpu["off"] for m in ENGINES}
    fastest_opacus = min(MODES, key=lambda m: med[f"opacus_{m}"])
    fallback = mjob.dp.grad_sample_mode
    return {
        "state": state,
        "batch_size": train.batch_size,
        "learning_rate": train.learning_rate,
        "max_grad_norm": mjob.dp.max_grad_norm,
        "noise_multiplier": state.noise_multiplier,
        "steps_per_epoch_expected": steps_per_epoch(len(y), train.batch_size),
        "seconds_per_epoch_median": med,
        "cpu_seconds_per_epoch_median": med_cpu,
        "seconds_per_epoch_all": wall,
        "ratio_to_no_dp": ratios,
        "cpu_ratio_to_no_dp": cpu_ratios,
        "default_engine": "closed_form",
        "configured_ratio": ratios["closed_form"],
        "configured_cpu_ratio": cpu_ratios["closed_form"],
        "target_met": ratios["closed_form"] <= TARGET_RATIO,
        "fastest_opacus_mode": fastest_opacus,
        "fallback_mode": fallback,
        "fallback_within_10pct_of_fastest_opacus": (
            med[f"opacus_{fallback}"] <= 1.1 * med[f"opacus_{fastest_opacus}"]
        ),
        "closed_form_speedup_over_fastest_opacus": (
            med[f"opacus_{fastest_opacus}"] / med["closed_form"]
        ),
        "profile": {
            "dp_closed_form": profile_epoch(model_cfg, nodes, train, mjob.dp, state, 3),
            f"dp_opacus_{fallback}": profile_epoch(
                model_cfg, nodes, train, mjob.dp, state, 3, engine="opacus"
            ),
            "no_dp": profile_epoch(model_cfg, nodes, train, off, None, 3),
        },
    }


def run(quick: bool) -> dict[str, Any]:
    """Median seconds per local epoch for every model x engine, ratios to no DP, and profiles."""
    torch.set_num_threads(1)  # as on a simulated node
    repeats = 3 if quick else 7
    results: dict[str, Any] = {"repeats": repeats, "target_ratio": TARGET_RATIO, "models": {}}
    with tempfile.TemporaryDirectory(prefix="confide-bench-dp-") as tmp:
        job = parse_job(base_config())
        job, nodes = load_nodes(job, Path(tmp))
        x, y = nodes[0].x_train, nodes[0].y_train
        results["data"] = {"node": nodes[0].name, "rows": len(y), "features": x.shape[1]}
        results["loader_epoch_s"] = _loader_epochs(x, y, 256, repeats)
        results["sampler_epoch_s"] = _sampler_epochs(len(y), job.train.batch_size, repeats)
        for model_name in MODELS:
            model_results = _model_results(model_name, x, y, repeats, nodes)
            state = model_results.pop("state")
            if model_name == MODELS[0]:
                results["accounting_s"] = _accounting(state, job.rounds, repeats)
            results["models"][model_name] = model_results
    return results
