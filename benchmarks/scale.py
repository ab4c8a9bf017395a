"""Scale: one node with 1,000,000 rows x 40 features, DP epochs and a non-private one.

The rows are generated at run time in a fresh process (so its peak resident memory is this
benchmark's alone): 24 skewed numeric features scaled to [0, 1] as the task encoding does, three
one-hot categoricals (6 + 5 + 5 levels) and a label from a logistic ground truth with a 20%
positive rate. The model, batch size, clipping and epsilon are the shipped defaults. Side by
side, interleaved, medians: the DP epoch with the closed-form engine (the default), with Opacus
(the fallback engine, same sampler and noise), and the non-private epoch. The Poisson sampler's
cost per step is measured alone, with Opacus's sampler (one uniform number per row) beside it.
The 50 nodes x 20 rounds run is the 50-node engine benchmark (``benchmarks.engine_overhead``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TARGET_RATIO", "generate_encoded", "run"]

TARGET_RATIO = 2.0  # a 1M-row DP epoch at most twice the non-private one

ROOT = Path(__file__).resolve().parents[1]


def generate_encoded(n_rows: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """``n_rows`` x 40 encoded customer rows (float32) and their 0/1 labels."""
    rng = np.random.default_rng(seed)
    numeric = rng.lognormal(mean=0.0, sigma=1.0, size=(n_rows, 24))
    numeric = np.log1p(numeric) / np.log1p(numeric).max(axis=0)  # log1p + declared-bound scaling
    blocks = [numeric.astype(np.float32)]
    for levels in (6, 5, 5):
        codes = rng.choice(levels, size=n_rows, p=rng.dirichlet(np.ones(levels)))
        blocks.append(np.eye(levels, dtype=np.float32)[codes])
    x = np.ascontiguousarray(np.concatenate(blocks, axis=1))
    weights = rng.normal(0.0, 1.5, size=x.shape[1])
    logit = x @ weights
    low, high = -50.0, 50.0  # intercept for a 20% positive rate
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if (1 / (1 + np.exp(-(logit + mid)))).mean() < 0.2 else (low, mid)
    logit += (low + high) / 2
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return x, y


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="utf-8") as fh:
        import os

        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _sampler_per_step(n_rows: int, sample_rate: float) -> dict[str, float]:
    """Median seconds of one step's batch draw: Confide's sampler and Opacus's."""
    import torch

    from confide.modeling.poisson_sampling import poisson_batch

    rng = np.random.default_rng(0)
    ours, theirs = [], []
    for _ in range(50):
        t = time.perf_counter()
        for _ in range(40):
            poisson_batch(n_rows, sample_rate, rng)
        ours.append((time.perf_counter() - t) / 40)
    for _ in range(20):  # Opacus's UniformWithReplacementSampler, one step
        t = time.perf_counter()
        (torch.rand(n_rows) < sample_rate).nonzero().reshape(-1).tolist()
        theirs.append(time.perf_counter() - t)
    return {"ours": float(np.median(ours)), "opacus": float(np.median(theirs))}


def _child(n_rows: int, repeats: int) -> dict[str, Any]:
    """In a fresh process: generate, then time DP epochs (both engines) and non-private ones."""
    import torch

    from confide.benchmarks.common import base_config
    from confide.job import parse_job
    from confide.modeling.dp_accounting import calibrate, epsilon_for_history
    from confide.modeling.factory import build_model
    from confide.modeling.local_training import train_local

    torch.set_num_threads(1)
    job = parse_job(base_config())
    rss_baseline = _rss_mib()
    start = time.perf_counter()
    x, y = generate_encoded(n_rows)
    generate_s = time.perf_counter() - start
    train = replace(job.train, local_epochs=1)
    state = calibrate(job.dp, len(y), train, job.rounds)
    epsilon_for_history([(state.noise_multiplier, state.sample_rate, 1)], 1e-5, "rdp")
    off = replace(job.dp, enabled=False)
    warm = calibrate(job.dp, 2000, train, job.rounds)  # warm both engines up on a small slice
    for engine in ("auto", "opacus"):
        model = build_model(job.model_name, job.model_net.params, x.shape[1])
        train_local(model, x[:2000], y[:2000], train, job.dp, warm, 0, dp_engine=engine)
    rss_before = _rss_mib()
    peak, done = [rss_before], threading.Event()

    def poll() -> None:  # resident memory during the whole timed part, every 5 ms
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.005)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    runs = {
        "closed_form": lambda seed: train_local(
            build_model(job.model_name, job.model_net.params, x.shape[1], seed=0),
            x,
            y,
            train,
            job.dp,
            state,
            seed=seed,
        ),
        "opacus": lambda seed: train_local(
            build_model(job.model_name, job.model_net.params, x.shape[1], seed=0),
            x,
            y,
            train,
            job.dp,
            state,
            seed=seed,
            dp_engine="opacus",
        ),
        "off": lambda seed: train_local(
            build_model(job.model_name, job.model_net.params, x.shape[1], seed=0),
            x,
            y,
            train,
            off,
            None,
            seed=seed,
        ),
    }
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    steps = 0
    for rep in range(repeats):
        for name, fn in runs.items():
            w, c = time.perf_counter(), time.process_time()
            result = fn(rep + 1)
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
            if name == "closed_form":
                steps = result.steps
    done.set()
    watcher.join()
    peak_process = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = {k: float(np.median(v)) for k, v in wall.items()}
    med_cpu = {k: float(np.median(v)) for k, v in cpu.items()}
    sampler = _sampler_per_step(n_rows, state.sample_rate)
    data_mib = (x.nbytes + y.nbytes) / 2**20
    return {
        "rows": n_rows,
        "features": int(x.shape[1]),
        "positive_rate": float(y.mean()),
        "model": job.model_name,
        "engine": "closed_form",
        "fallback_grad_sample_mode": job.dp.grad_sample_mode,
        "batch_size": train.batch_size,
        "steps_per_epoch": steps,
        "repeats": repeats,
        "generate_s": generate_s,
        "dp_epoch_s": med["closed_form"],
        "opacus_dp_epoch_s": med["opacus"],
        "no_dp_epoch_s": med["off"],
        "dp_ratio": med["closed_form"] / med["off"],
        "opacus_dp_ratio": med["opacus"] / med["off"],
        "dp_cpu_ratio": med_cpu["closed_form"] / med_cpu["off"],
        "opacus_dp_cpu_ratio": med_cpu["opacus"] / med_cpu["off"],
        "epoch_s_all": wall,
        "data_mib": data_mib,
        "rss_before_data_mib": rss_baseline,
        "rss_before_training_mib": rss_before,
        "training_peak_rss_mib": peak[0],  # DP epochs (both engines) and non-private ones
        "training_peak_above_pre_training_mib": peak[0] - rss_before,
        "process_peak_rss_mib": peak_process,  # includes generating the data
        "peak_above_baseline_mib": peak[0] - rss_baseline,
        "peak_above_baseline_over_data": (peak[0] - rss_baseline) / data_mib,
        "poisson_sampler_s_per_step": sampler["ours"],
        "poisson_sampler_share_of_dp_epoch": sampler["ours"] * steps / med["closed_form"],
        "opacus_sampler_s_per_step": sampler["opacus"],
        "opacus_sampler_epoch_s": sampler["opacus"] * steps,
        "target_ratio": TARGET_RATIO,
        "target_met": med["closed_form"] / med["off"] <= TARGET_RATIO,
    }


def run(quick: bool) -> dict[str, Any]:
    """The one-node scale benchmark in a subprocess (1,000,000 rows; 100,000 with ``quick``)."""
    rows, repeats = (100_000, 2) if quick else (1_000_000, 3)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "confide.benchmarks.scale",
            "--rows",
            str(rows),
            "--repeats",
            str(repeats),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scale benchmark failed:\n{proc.stderr[-4000:]}")
    return {"one_node": json.loads(proc.stdout.strip().splitlines()[-1])}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one large node: DP epoch time, peak memory")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(_child(args.rows, args.repeats)))
