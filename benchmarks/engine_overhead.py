"""Engine overhead: a Confide run on Flower's simulation engine against the plain FedAvg loop.

Both do the same work on the same generated data: same model, rounds, local epochs and DP, the
same node runtime (policy checks, DP-SGD, ledger, evaluation), FedAvg and pooled metrics each
round. Confide's per-round times come from ``history.json`` (``wall_s``); the plain loop times
its own rounds. Steady state is the median of rounds 2..R (round 1 also starts the engine's
workers, which read and encode their data and calibrate their noise). Baselines are off in both.

Beside them, at every size, the Flower floor (:mod:`confide.benchmarks.flower_floor`): plain
Flower on the same engine and backend config, same messages, no work at the nodes. Confide's
runs also record the peak resident memory of the driver and every Ray process it started.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from confide.benchmarks.common import base_config, federation_nodes, load_nodes, median
from confide.benchmarks.flower_floor import run_floor
from confide.job import parse_job
from confide.modeling.factory import build_model
from confide.modeling.metrics import binary_metrics
from confide.modeling.prediction import predict_proba
from confide.simulations.baselines import pooled_test
from confide.simulations.in_process import plain_fedavg
from confide.simulations.simulate import simulate

__all__ = [
    "SIZES",
    "TARGET_RATIO_10",
    "PeakTreeRss",
    "engine_config",
    "run",
    "run_confide",
    "run_plain",
]

SIZES = (2, 10, 50, 200)
TARGET_RATIO_10 = 3.0
ROWS_PER_NODE = {50: 600, 200: 200}  # 50 x ~770 and 200 x ~900 rows: modest, so runs complete


class PeakTreeRss:
    """Peak resident memory of this process and all its descendants (Ray's GCS, raylet and
    workers), sampled from ``/proc`` while the ``with`` block runs (Linux; zeros elsewhere)."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak = {"total_mib": 0.0, "driver_mib": 0.0, "ray_workers_mib": 0.0}
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __enter__(self) -> PeakTreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    @staticmethod
    def _read(path: str) -> bytes:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError:  # the process ended meanwhile
            return b""

    def sample(self) -> None:
        """Add one sample of the process tree's resident memory."""
        if not os.path.isdir("/proc"):
            return
        parents: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = self._read(f"/proc/{name}/stat")
                if stat:  # "pid (comm) state ppid ...": comm may hold spaces
                    parents[int(name)] = int(stat.rsplit(b")", 1)[1].split()[1])
        tree, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent]
            tree.update(children)
            frontier.extend(children)
        total = driver = workers = 0.0
        for pid in tree:
            statm = self._read(f"/proc/{pid}/statm").split()
            rss = int(statm[1]) * self._page / 2**20 if len(statm) > 1 else 0.0
            total += rss
            if pid == os.getpid():
                driver = rss
            elif self._read(f"/proc/{pid}/cmdline").startswith(b"ray::"):
                workers += rss
        now = {"total_mib": total, "driver_mib": driver, "ray_workers_mib": workers}
        self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}
        self.peak_processes = max(self.peak_processes, len(tree))


def engine_config(n_nodes: int, rounds: int, run_dir: Path) -> dict[str, Any]:
    """The benchmark's config for ``n_nodes``: default (2), ten_nodes (10) or generated."""
    overrides = [f"rounds={rounds}", "baselines.enabled=false", "run.quiet=true"]
    if n_nodes == 10:
        overrides.append("federation=ten_nodes")
    cfg = base_config(overrides)
    if n_nodes not in (2, 10):
        cfg["federation"] = {
            "name": f"n{n_nodes}_nodes",
            "nodes": federation_nodes(n_nodes, ROWS_PER_NODE.get(n_nodes, 600)),
        }
    cfg["run"]["dir"] = str(run_dir)
    return cfg


def run_plain(cfg: dict[str, Any], work: Path, run_id: str) -> dict[str, Any]:
    """The plain loop end to end: generate and encode the nodes, train, final evaluation."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    job, nodes = load_nodes(parse_job(cfg), work / "nodes")
    result = plain_fedavg(job, run_id)
    model = build_model(job.model_name, job.model_net.params, job.task.input_dim)
    model.load_state_dict(result.state_dict)
    x_test, y_test = pooled_test(nodes)
    final = binary_metrics(y_test, predict_proba(model, x_test))
    for node in nodes:
        binary_metrics(node.y_test, predict_proba(model, node.x_test))
    total = time.perf_counter() - start
    return {
        "rows": sum(node.n_rows for node in nodes),
        "total_s": total,
        "round_s": result.round_seconds,
        "steady_round_s": median(result.round_seconds[1:] or result.round_seconds),
        "global_roc_auc": final["roc_auc"],
        "max_epsilon": max(result.epsilon.values()),
    }


def run_confide(cfg: dict[str, Any]) -> dict[str, Any]:
    """A Confide simulation end to end (engine start-up and final metrics included)."""
    start = time.perf_counter()
    with PeakTreeRss() as memory:
        sim = simulate(cfg)
    total = time.perf_counter() - start
    history = json.loads((sim.run_dir / "history.json").read_text(encoding="utf-8"))
    rounds = [float(r["wall_s"]) for r in history["rounds"] if r.get("wall_s") is not None]
    return {
        "status": sim.status,
        "total_s": total,
        "round_s": rounds,
        "steady_round_s": median(rounds[1:] or rounds),
        "outside_rounds_s": total - sum(rounds),
        "peak_rss_mib": memory.peak,
        "peak_processes": memory.peak_processes,
        "global_roc_auc": sim.metrics.get("global", {}).get("roc_auc"),
        "max_epsilon": max(
            (n.get("epsilon", 0.0) for n in sim.metrics.get("nodes", {}).values()), default=0.0
        ),
    }


def run(quick: bool, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    """Confide vs plain vs the Flower floor at ``sizes`` (2, 10, 50 and 200 nodes); the 50-node
    run is also the 50 x 20 scale run, the 200-node run reports memory and time per round."""
    # a node's first message on a worker prepares its data there: rounds 2..3 still see some
    # (two workers), so the steady median needs a few rounds after them
    rounds = {2: 3, 10: 4, 50: 4, 200: 4} if quick else {2: 5, 10: 5, 50: 20, 200: 6}
    plain_repeats = {n: 1 for n in SIZES} if quick else {2: 2, 10: 2, 50: 1, 200: 1}
    out: dict[str, Any] = {"target_ratio_10_nodes": TARGET_RATIO_10, "sizes": {}}
    for n_nodes in sizes:
        with tempfile.TemporaryDirectory(prefix=f"confide-bench-engine-{n_nodes}-") as tmp:
            work = Path(tmp)
            plains = []
            for rep in range(plain_repeats[n_nodes]):
                cfg = engine_config(n_nodes, rounds[n_nodes], work / f"unused-{rep}")
                plains.append(run_plain(cfg, work / f"plain-{rep}", f"bench-plain-{rep}"))
                if rep == 0:  # Confide and the floor between the plain runs: drift hits all
                    confide = run_confide(engine_config(n_nodes, rounds[n_nodes], work / "run"))
                    floor = run_floor(parse_job(cfg))
        plain_steady = median([p["steady_round_s"] for p in plains])
        plain_total = median([p["total_s"] for p in plains])
        messages = 2 * n_nodes  # a train and an evaluate message per node per round
        entry = {
            "nodes": n_nodes,
            "rounds": rounds[n_nodes],
            "rows": plains[0]["rows"],
            "plain": plains,
            "confide": confide,
            "floor": floor,
            "ratio_total": confide["total_s"] / plain_total,
            "ratio_steady_round": confide["steady_round_s"] / plain_steady,
            "floor_ratio_steady_round": floor["steady_round_s"] / plain_steady,
            "confide_over_floor_ms_per_message": (
                (confide["steady_round_s"] - floor["steady_round_s"]) / messages * 1000
            ),
            "same_auc_within_0_01": bool(
                np.isclose(confide["global_roc_auc"] or 0, plains[0]["global_roc_auc"], atol=0.01)
            ),
        }
        if n_nodes == 10:
            entry["target_met"] = entry["ratio_steady_round"] <= TARGET_RATIO_10
        out["sizes"][str(n_nodes)] = entry
    return out
