"""Shared helpers: the machine description, robust timing, configs and node data for benchmarks."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from confide.clients.checked_nodes import load_checked_nodes
from confide.clients.node_data import NodeData
from confide.config import compose_config, to_container
from confide.core.files import atomic_write_text
from confide.job import Job
from confide.simulations.federation import materialize_synthetic_nodes
from confide.simulations.node_profiles import PROFILES

__all__ = [
    "RESULTS_DIR",
    "base_config",
    "federation_nodes",
    "load_nodes",
    "machine_info",
    "median",
    "timed",
    "write_json",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_POLICY = "pkg://confide.simulations/policies/synthetic_customers.yaml"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, load and the versions that matter for these timings."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores_available": cores,
        "ram_gib": _ram_gib(),
        "load_average_1m_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "opacus": _version("opacus"),
        "flwr": _version("flwr"),
        "numpy": _version("numpy"),
    }


def median(values: Sequence[float]) -> float:
    """Median of non-empty ``values`` (timings are noisy on a shared machine)."""
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call of ``fn`` and its result."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def base_config(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The shipped config with ``overrides``, resolved to plain containers."""
    return to_container(compose_config(list(overrides), []))


def federation_nodes(n_nodes: int, rows_per_node: int) -> list[dict[str, Any]]:
    """``n_nodes`` synthetic nodes cycling through the shipped profiles (non-IID: region mix,
    ages and base rates differ by profile); sizes differ slightly so no two nodes share data."""
    names = list(PROFILES)
    return [
        {
            "name": f"{names[i % len(names)]}_{i:02d}",
            "profile": names[i % len(names)],
            "rows": rows_per_node + 7 * i,
            "policy": _POLICY,
        }
        for i in range(n_nodes)
    ]


def load_nodes(job: Job, nodes_root: Path) -> tuple[Job, list[NodeData]]:
    """Generate the job's synthetic nodes under ``nodes_root`` and encode them as a run does."""
    job = materialize_synthetic_nodes(job, nodes_root)
    return job, load_checked_nodes(job)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
