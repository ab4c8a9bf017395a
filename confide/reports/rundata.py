"""Read a run directory (config, metrics, history, curves, ledgers, outcome) for the report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from confide.job import resolve_path
from confide.modeling.errors import ConfideError

__all__ = ["ReportError", "RunData", "load_run", "node_budget", "resolve_policy_path"]


class ReportError(ConfideError):
    """A run directory cannot be reported on (missing or unreadable files)."""


@dataclass(frozen=True)
class RunData:
    """Everything the report reads from one run directory (no row-level data)."""

    run_dir: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: dict[str, Any]
    outcome: dict[str, Any]
    curves: dict[str, Any] | None = None
    ledgers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """The run id (from metrics.json, else the directory name)."""
        return str(self.metrics.get("run_id") or self.run_dir.name)

    @property
    def completed(self) -> bool:
        """True when the federated run finished all its rounds."""
        return self.outcome.get("status") == "completed"

    @property
    def rounds(self) -> list[dict[str, Any]]:
        """Per-round records from history.json, in round order."""
        return sorted(self.history.get("rounds", []), key=lambda r: r.get("round", 0))

    @property
    def node_names(self) -> list[str]:
        """Node names in federation order."""
        return [str(n["name"]) for n in self.config.get("federation", {}).get("nodes", [])]

    @property
    def dp(self) -> dict[str, Any]:
        """The run's DP settings: metrics.json ``dp`` over the config's ``dp`` group."""
        return {**self.config.get("dp", {}), **self.metrics.get("dp", {})}

    def histograms(self) -> dict[str, tuple[list[int], list[int]]]:
        """Pooled-test score histograms per model name: ``{name: (pos, neg)}``."""
        pooled = (self.curves or {}).get("pooled_test", {})
        return {name: (h["pos"], h["neg"]) for name, h in pooled.items()}


def _read_json(path: Path, required: bool) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise ReportError(
                f"{path}: missing; not a finished Confide run directory (rule: run directory)"
            ) from None
        return None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: unreadable JSON ({exc}) (rule: run directory)") from None


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory written by ``confide simulate``; ReportError when it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a directory (rule: run directory)")
    config_path = run_dir / "config.yaml"
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ReportError(
            f"{config_path}: missing; not a Confide run directory (rule: run directory)"
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise ReportError(f"{config_path}: unreadable YAML ({exc}) (rule: run directory)") from None
    outcome = _read_json(run_dir / "outcome.json", required=True)
    metrics = _read_json(run_dir / "metrics.json", required=True)
    history = _read_json(run_dir / "history.json", required=False) or {"rounds": []}
    curves = _read_json(run_dir / "curves.json", required=False)
    ledgers = {}
    ledger_dir = run_dir / "ledgers"
    if ledger_dir.is_dir():
        for path in sorted(ledger_dir.glob("*.json")):
            ledgers[path.stem] = _read_json(path, required=True)
    return RunData(run_dir, config, metrics, history, outcome, curves, ledgers)


def resolve_policy_path(raw: str, run_dir: Path) -> Path | None:
    """Find a node's policy file: as recorded, else relative to where the run was started."""
    path = resolve_path(raw, "policy")
    if path.is_absolute():
        return path if path.is_file() else None
    # relative paths were read from the folder the run was started in: <there>/<root>/<id>
    for base in (Path.cwd(), run_dir.parent.parent, run_dir.parent, run_dir):
        candidate = base / path
        if candidate.is_file():
            return candidate
    return None


def node_budget(node_cfg: dict[str, Any], policy_max: float | None) -> float | None:
    """A node's ε limit per run: its policy's, tightened by its own node setting if any."""
    limits = [v for v in (policy_max, node_cfg.get("max_epsilon_per_run")) if v is not None]
    return min(float(v) for v in limits) if limits else None
