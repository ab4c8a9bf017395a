"""DP-SGD overhead: one local epoch with DP against one without, per model and grad-sample mode.

The data is the default federation's largest node (the retailer, encoded by the node pipeline),
the settings are the shipped ones (batch size, learning rate, clipping norm, epsilon). Modes are
interleaved within each repetition and the median is reported, so a busy neighbour slows every
mode alike. A cProfile of the default mode says what a DP epoch spends its time on.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from opacus.accountants import create_accountant
from torch.utils.data import DataLoader, TensorDataset

from confide.benchmarks.common import base_config, load_nodes, median, timed
from confide.job import parse_job
from confide.modeling.dp_accounting import RDP_ALPHAS, DPSettings, calibrate, epsilon_for_history
from confide.modeling.factory import build_model
from confide.modeling.local_training import _make_loader, train_local

__all__ = ["MODELS", "MODES", "TARGET_RATIO", "run"]

MODELS = ("logreg", "mlp")
MODES = ("hooks", "ew", "ghost")
TARGET_RATIO = 1.5

# Where an epoch's time goes: cumulative seconds of the training loop's phases, found by the
# (file, function) that implements them in torch and Opacus. Phases may nest ("per-sample
# gradient hooks" run inside "backward").
_PHASES = (
    ("batch sampling + loading", ("torch/utils/data/dataloader.py", "__next__")),
    ("forward", ("modeling/models.py", "forward")),
    ("backward (all passes)", ("fast_gradient_clipping_utils.py", "backward")),
    ("backward (all passes)", ("torch/_tensor.py", "backward")),
    ("per-sample gradient hooks (in backward)", ("opacus/grad_sample/", "capture_backprops_hook")),
    ("optimizer step (clip, noise, update)", ("opacus/optimizers/", "step")),
    ("optimizer step (clip, noise, update)", ("torch/optim/sgd.py", "step")),
    ("zero_grad", ("opacus/optimizers/", "zero_grad")),
    ("zero_grad", ("torch/optim/optimizer.py", "zero_grad")),
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


def profile_epoch(model_cfg: dict[str, Any], nodes, train, dp: DPSettings, state, epochs: int):
    """Seconds by bucket (tottime) and the top functions for ``epochs`` epochs of ``dp``."""
    x, y = nodes[0].x_train, nodes[0].y_train
    prof = cProfile.Profile()
    for epoch in range(epochs):
        model = build_model(model_cfg["name"], model_cfg["net"], x.shape[1], seed=0)
        prof.enable()
        train_local(model, x, y, train, dp, state, seed=100 + epoch)
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
    what ``train_local`` did before) and one indexing operation per batch (what it does now)."""
    rowwise = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size, shuffle=True
    )
    batched = _make_loader(x, y, batch_size, seed=0)
    times: dict[str, list[float]] = {"row_by_row": [], "batched": []}
    for _ in range(repeats):
        for name, loader in (("row_by_row", rowwise), ("batched", batched)):
            times[name].append(timed(lambda loader=loader: sum(1 for _ in loader))[0])
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


def run(quick: bool) -> dict[str, Any]:
    """Median seconds per local epoch for every model x mode, ratios to no DP, and profiles."""
    torch.set_num_threads(1)  # as on a simulated node
    repeats = 3 if quick else 7
    results: dict[str, Any] = {"repeats": repeats, "target_ratio": TARGET_RATIO, "models": {}}
    with tempfile.TemporaryDirectory(prefix="confide-bench-dp-") as tmp:
        job = parse_job(base_config())
        job, nodes = load_nodes(job, Path(tmp))
        x, y = nodes[0].x_train, nodes[0].y_train
        results["data"] = {"node": nodes[0].name, "rows": len(y), "features": x.shape[1]}
        results["loader_epoch_s"] = _loader_epochs(x, y, 256, repeats)
        for model_name in MODELS:
            mjob = parse_job(base_config([f"model={model_name}"]))
            model_cfg = mjob.config["model"]
            train = replace(mjob.train, local_epochs=1)
            configured = mjob.dp.grad_sample_mode
            settings = {"off": replace(mjob.dp, enabled=False)}
            settings |= {m: replace(mjob.dp, grad_sample_mode=m) for m in MODES}
            states = {
                m: calibrate(s, len(y), train, mjob.rounds) if s.enabled else None
                for m, s in settings.items()
            }
            times: dict[str, list[float]] = {m: [] for m in settings}
            for rep in range(repeats + 1):  # the first repetition warms up and is dropped
                for mode, dp in settings.items():
                    model = build_model(model_cfg["name"], model_cfg["net"], x.shape[1], seed=0)
                    seconds, _ = timed(
                        partial(train_local, model, x, y, train, dp, states[mode], seed=rep)
                    )
                    if rep > 0:
                        times[mode].append(seconds)
            if model_name == MODELS[0]:
                results["accounting_s"] = _accounting(states[configured], mjob.rounds, repeats)
            med = {m: median(t) for m, t in times.items()}
            ratios = {m: med[m] / med["off"] for m in MODES}
            fastest = min(MODES, key=lambda m: med[m])
            profiles = {
                "dp_" + configured: profile_epoch(
                    model_cfg, nodes, train, settings[configured], states[configured], 3
                ),
                "no_dp": profile_epoch(model_cfg, nodes, train, settings["off"], None, 3),
            }
            results["models"][model_name] = {
                "batch_size": train.batch_size,
                "learning_rate": train.learning_rate,
                "max_grad_norm": mjob.dp.max_grad_norm,
                "steps_per_epoch_expected": -(-len(y) // train.batch_size),
                "seconds_per_epoch_median": med,
                "seconds_per_epoch_all": times,
                "ratio_to_no_dp": ratios,
                "fastest_mode": fastest,
                "configured_mode": configured,
                "configured_is_fastest": configured == fastest,
                "configured_within_10pct_of_fastest": med[configured] <= 1.1 * med[fastest],
                "configured_ratio": ratios[configured],
                "target_met": ratios[configured] <= TARGET_RATIO,
                "profile": profiles,
            }
    return results
