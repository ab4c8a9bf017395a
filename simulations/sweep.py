"""`confide sweep`: many simulations from one command, one summary table and one plot.

Overrides use Hydra's override grammar and its basic sweeper's semantics: an override with a
sweep value (``dp.epsilon=0.5,1,3``, ``model=logreg,mlp``, ``x=range(2,11,4)``) is an axis, the
points are the cartesian product of the axes, every other override applies to every point. An
experiment config may declare its axes under ``sweep.params`` (like ``hydra.sweeper.params``);
an axis given on the command line replaces the config's. On the ``dp.epsilon`` axis the value
``off`` stands for the explicit ``dp=off`` group choice (the non-private reference point; it is
refused by the shipped policy and needs a research federation such as ``default_research``).

Every point runs through :func:`simulations.simulate.simulate` into its own run directory under
the sweep directory; points that share a data set share their non-private baselines (the
baseline trainer memoises identical trainings). The sweep writes ``results.json`` (machine-
readable, every point), ``summary.csv``, ``summary.md`` and ``privacy_utility.png``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from confide.config import ConfigError, compose_config, to_container
from confide.core.files import atomic_write_bytes, atomic_write_text
from confide.modeling.errors import ConfideError
from confide.privacy.errors import PrivacyError
from confide.simulations.reproducibility import reproducibility_record

__all__ = [
    "SweepPoint",
    "SweepResult",
    "expand_sweep",
    "plan_sweep",
    "plot_privacy_utility",
    "run_sweep",
    "summary_rows",
    "write_summary",
]

EPSILON_KEY = "dp.epsilon"
NO_DP = "off"
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class SweepPoint:
    """One combination of axis values and the overrides that compose it."""

    index: int
    axes: dict[str, str]
    overrides: list[str]

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.axes.items()) or "base"

    @property
    def slug(self) -> str:
        text = "_".join(f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in self.axes.items()) or "base"
        return f"{self.index:02d}-" + re.sub(r"[^A-Za-z0-9_.-]+", "", text)[:80]


@dataclass
class SweepResult:
    """Where a sweep wrote its outputs, and one record per point."""

    sweep_dir: Path
    points: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


def _parse(overrides: Sequence[str]):
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise ConfigError(f"sweep: {str(exc).splitlines()[0]} (rule: override syntax)") from exc


def _point_overrides(axes: Mapping[str, str]) -> list[str]:
    out = []
    for key, value in axes.items():
        if key == EPSILON_KEY and value.strip().lower() == NO_DP:
            out.append("dp=off")
        else:
            out.append(f"{key}={value}")
    return out


def expand_sweep(
    overrides: Sequence[str], config_params: Mapping[str, Any] | None = None
) -> tuple[list[str], list[SweepPoint]]:
    """Split ``overrides`` into fixed ones and sweep axes; return (fixed, points).

    ``config_params`` are axes declared by the config (``sweep.params``: key -> sweep string);
    an axis given in ``overrides`` replaces the config's axis for the same key.
    """
    fixed: list[str] = []
    axes: dict[str, list[str]] = {}
    for param_key, param_value in (config_params or {}).items():
        for parsed in _parse([f"{param_key}={param_value}"]):
            values = (
                list(parsed.sweep_string_iterator())
                if parsed.is_sweep_override()
                else [str(param_value)]
            )
            axes[parsed.get_key_element()] = values
    for parsed in _parse(overrides):
        key = parsed.get_key_element()
        if parsed.is_sweep_override():
            axes[key] = list(parsed.sweep_string_iterator())
        else:
            axes.pop(key, None)
            fixed.append(parsed.input_line)
    if any(not values for values in axes.values()):
        raise ConfigError("sweep: an axis has no values (rule: sweep)")
    keys = list(axes)
    points = []
    for index, combo in enumerate(itertools.product(*(axes[k] for k in keys))):
        chosen = dict(zip(keys, combo, strict=True))
        points.append(SweepPoint(index, chosen, [*fixed, *_point_overrides(chosen)]))
    return fixed, points


def _config_params(fixed: list[str], config_dirs: Sequence[Path]) -> dict[str, Any]:
    base = to_container(compose_config(fixed, config_dirs))
    params = (base.get("sweep") or {}).get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError("sweep.params must map override keys to sweep values (rule: sweep)")
    return {str(k): v for k, v in params.items()}


def plan_sweep(
    overrides: Sequence[str], config_dirs: Sequence[Path] = ()
) -> tuple[list[str], list[SweepPoint]]:
    """Fixed overrides and points, with the axes a config declares under ``sweep.params``."""
    fixed, _ = expand_sweep(overrides)
    return expand_sweep(overrides, _config_params(fixed, config_dirs))


def _point_record(point: SweepPoint, run_dir: Path | None, sweep_dir: Path) -> dict[str, Any]:
    return {
        "index": point.index,
        "label": point.label,
        "axes": point.axes,
        "overrides": point.overrides,
        "run_dir": str(run_dir.relative_to(sweep_dir)) if run_dir else None,
    }


def _key_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    nodes = metrics.get("nodes", {})
    baselines = metrics.get("baselines", {})
    dp = metrics.get("dp", {})
    return {
        "dp_enabled": dp.get("enabled"),
        "epsilon_target": dp.get("epsilon_target"),
        "epsilon_spent_max": max((n.get("epsilon", 0.0) for n in nodes.values()), default=None),
        "global": metrics.get("global"),
        "baselines": {name: b["pooled"]["roc_auc"] for name, b in baselines.items()},
        "nodes": {name: n.get("rows") for name, n in nodes.items()},
        "comparison": metrics.get("comparison"),
    }


def run_sweep(
    overrides: Sequence[str],
    config_dirs: Sequence[Path] = (),
    out_dir: Path | None = None,
    on_point: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run every point of the sweep; returns the sweep directory and the per-point records."""
    from confide.simulations.simulate import simulate

    started = datetime.now(UTC)
    clock = time.perf_counter()
    fixed, points = plan_sweep(overrides, config_dirs)
    base = to_container(compose_config(fixed, config_dirs))
    if out_dir is None:
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        out_dir = Path(base["run"]["root"]) / "sweeps" / f"{stamp}-sweep"
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfideError(f"{out_dir}: sweep directory exists and is not empty (rule: --out)")
    configs = [
        to_container(compose_config(p.overrides, config_dirs)) for p in points
    ]  # every point composes before anything runs: a bad override stops the sweep here
    out_dir.mkdir(parents=True, exist_ok=True)
    result = SweepResult(out_dir)
    for point, config in zip(points, configs, strict=True):
        run_dir = out_dir / "points" / point.slug
        config["run"] = {**config["run"], "dir": str(run_dir), "quiet": True}
        record = _point_record(point, run_dir, out_dir)
        tick = time.perf_counter()
        try:
            sim = simulate(config)
        except (ConfideError, PrivacyError) as exc:  # a refused point is a result, not a crash
            record.update(status="error", message=str(exc))
        else:
            record.update(status=sim.status, **_key_metrics(sim.metrics))
            if sim.status != "completed":
                record["message"] = sim.metrics.get("outcome", {}).get("message", "")
            record["reproducibility"] = sim.metrics.get("reproducibility")
        record["wall_s"] = round(time.perf_counter() - tick, 2)
        result.points.append(record)
        if on_point is not None:
            on_point(record)
    result.wall_s = round(time.perf_counter() - clock, 2)
    summary = {
        "sweep_dir": str(out_dir),
        "overrides": list(overrides),
        "fixed": fixed,
        "axes": {
            k: sorted({p.axes[k] for p in points}) for k in (points[0].axes if points else {})
        },
        "wall_s": result.wall_s,
        "reproducibility": reproducibility_record(base, started),
        "points": result.points,
    }
    atomic_write_text(out_dir / RESULTS_FILE, json.dumps(summary, indent=2, ensure_ascii=False))
    write_summary(result.points, out_dir)
    plot_privacy_utility(result.points, out_dir / "privacy_utility.png")
    return result


def _eps_label(record: Mapping[str, Any]) -> str:
    axis = record.get("axes", {}).get(EPSILON_KEY)
    if record.get("dp_enabled") is False or (axis or "").strip().lower() == NO_DP:
        return "no DP"
    eps = record.get("epsilon_target")
    if isinstance(eps, int | float):
        return f"{eps:g}"
    return str(axis) if axis is not None else "n/a"


def _auc(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) and math.isfinite(value) else ""


def summary_rows(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per point (the CSV columns)."""
    local_names = sorted(
        {n for p in points for n in p.get("baselines", {}) if n.startswith("local_only:")}
    )
    rows = []
    for p in points:
        baselines = p.get("baselines", {})
        glob = p.get("global") or {}
        central = baselines.get("centralised")
        row: dict[str, Any] = {
            "point": p["index"],
            "setting": p["label"],
            "status": p.get("status"),
            "epsilon": _eps_label(p),
            "epsilon_spent_max": p.get("epsilon_spent_max"),
            "federated_auc": glob.get("roc_auc"),
            "federated_pr_auc": glob.get("pr_auc"),
            "federated_log_loss": glob.get("log_loss"),
            "centralised_auc": central,
            "centralised_dp_auc": baselines.get("centralised_dp"),
            "federated_minus_centralised": (
                glob["roc_auc"] - central if central is not None and "roc_auc" in glob else None
            ),
        }
        for name in local_names:
            row[name] = baselines.get(name)
        row["wall_s"] = p.get("wall_s")
        row["run_dir"] = p.get("run_dir")
        row["message"] = p.get("message", "")
        rows.append(row)
    return rows


def write_summary(points: Sequence[Mapping[str, Any]], out_dir: Path) -> None:
    """``summary.csv`` (every column) and ``summary.md`` (the table to read)."""
    rows = summary_rows(points)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(out_dir / "summary.csv", buffer.getvalue())
    local_cols = [k for k in (rows[0] if rows else {}) if k.startswith("local_only:")]
    header = [
        "setting",
        "ε",
        "ε spent (max node)",
        "federated AUC",
        "centralised AUC (no DP)",
        "centralised DP AUC",
        *[f"local-only {c.split(':', 1)[1]}" for c in local_cols],
        "fed − central",
        "wall s",
        "status",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        spent = r["epsilon_spent_max"]
        diff = r["federated_minus_centralised"]
        cells = [
            r["setting"],
            r["epsilon"],
            f"{spent:.3f}" if isinstance(spent, int | float) and r["epsilon"] != "no DP" else "–",
            _auc(r["federated_auc"]),
            _auc(r["centralised_auc"]),
            _auc(r["centralised_dp_auc"]) or "–",
            *[_auc(r[c]) for c in local_cols],
            f"{diff:+.4f}" if isinstance(diff, int | float) else "",
            f"{r['wall_s']:.0f}" if isinstance(r["wall_s"], int | float) else "",
            r["status"] if r["status"] == "completed" else f"{r['status']}: {r['message']}",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    atomic_write_text(out_dir / "summary.md", "\n".join(lines) + "\n")


def _series_key(record: Mapping[str, Any]) -> str:
    others = {k: v for k, v in record["axes"].items() if k != EPSILON_KEY}
    return " ".join(f"{k}={v}" for k, v in others.items())


def _plot_point(record: Mapping[str, Any]) -> dict[str, Any]:
    """A completed sweep point as a point of the reports' privacy-utility plot."""
    baselines = record.get("baselines") or {}
    return {
        "label": record.get("label"),
        "epsilon": float(record["epsilon_target"]) if record.get("dp_enabled") else None,
        "global": record["global"]["roc_auc"],
        "centralised": baselines.get("centralised"),
        "centralised_dp": baselines.get("centralised_dp"),
        "local_only": {
            name.split(":", 1)[1]: auc
            for name, auc in baselines.items()
            if name.startswith("local_only:")
        },
        "series": _series_key(record),
    }


def plot_privacy_utility(points: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Write the privacy-utility plot of the completed points (the same plot as
    ``confide compare``, one federated curve per combination of the other swept settings);
    None when no point completed."""
    from confide.reports.plots import privacy_utility_png

    done = [_plot_point(p) for p in points if p.get("status") == "completed" and p.get("global")]
    if not done:
        return None
    atomic_write_bytes(path, privacy_utility_png(done))
    return path
