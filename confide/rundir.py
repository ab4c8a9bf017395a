"""The run directory: its file names and the ONE finaliser both engines call.

A run directory holds ``config.yaml`` (what was proposed), ``history.json`` (per round),
``outcome.json`` (how the federated part ended), ``model.pt`` (completed runs), and, written
here by :func:`finalise_run` for the simulation and the deployment engine alike:
``metrics.json``, ``curves.json`` (score histograms, no rows), ``ledgers/<node>.json``
(budget-ledger snapshots, where the coordinator holds them), ``report.html``, and one
hash-chained record in the run ledger.

What differs between the engines is only who scored the final model: a simulation scores it on
the pooled held-out splits it holds (plus baselines); a deployment coordinator holds no rows and
uses the nodes' federated evaluation of the last round (pooled score histograms). Both arrive as
an :class:`Evaluation`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confide.core.files import atomic_write_text
from confide.job import Job
from confide.privacy.run_ledger import append_run, load_ledger_key

__all__ = [
    "CONFIG_FILE",
    "CURVES_FILE",
    "HISTORY_FILE",
    "LEDGERS_DIR",
    "METRICS_FILE",
    "MODEL_FILE",
    "OUTCOME_FILE",
    "RUN_LEDGER_FILE",
    "Evaluation",
    "dp_summary",
    "federated_evaluation",
    "finalise_run",
    "last_epsilons",
    "run_ledger_path",
    "write_ledger_snapshots",
    "write_outcome",
]

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.pt"
HISTORY_FILE = "history.json"
OUTCOME_FILE = "outcome.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.json"  # per-model score histograms on the test data (no rows)
LEDGERS_DIR = "ledgers"
RUN_LEDGER_FILE = "run-ledger.jsonl"


@dataclass(frozen=True)
class Evaluation:
    """How the final global model scored.

    ``global_metrics``: on all test data; ``nodes``: per node (without ε, which comes from the
    history); ``curves``: ``{model name: {"pos": [...], "neg": [...]}}`` score histograms;
    ``extra``: further metrics.json sections (baselines, comparison), only when a run has them.
    """

    global_metrics: dict[str, Any]
    nodes: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, list[float]]]
    bins: int
    extra: dict[str, Any] = field(default_factory=dict)


def write_outcome(run_dir: Path, outcome: Mapping[str, Any]) -> None:
    """Write ``outcome.json`` atomically."""
    atomic_write_text(run_dir / OUTCOME_FILE, json.dumps(dict(outcome), indent=2))


def run_ledger_path(config: Mapping[str, Any], run_root: Path | None = None) -> Path:
    """The run ledger: ``run.ledger`` when set, else ``run-ledger.jsonl`` in the runs root."""
    run_cfg = config.get("run", {})
    if run_cfg.get("ledger"):
        return Path(run_cfg["ledger"])
    return Path(run_root if run_root is not None else run_cfg["root"]) / RUN_LEDGER_FILE


def last_epsilons(history: Mapping[str, Any], names: list[str] | None = None) -> dict[str, float]:
    """Each node's last reported ε in the history (the accountant over all its steps); 0.0
    for a node that never reported one. ``names`` fixes the nodes and their order."""
    rounds = history.get("rounds", [])
    if names is None:
        names = list(dict.fromkeys(n for r in rounds for n in r.get("train", {})))
    out = {}
    for name in names:
        eps = [r["train"].get(name, {}).get("epsilon") for r in rounds]
        eps = [e for e in eps if e is not None]
        out[name] = eps[-1] if eps else 0.0
    return out


def dp_summary(job: Job) -> dict[str, Any]:
    """The run's DP settings as metrics.json records them."""
    return {
        "enabled": job.dp.enabled,
        "epsilon_target": job.dp.epsilon if job.dp.enabled else None,
        "delta": job.dp.delta if job.dp.enabled else None,
        "accountant": job.dp.accountant,
        "noise": job.dp.noise,
    }


def federated_evaluation(
    history: Mapping[str, Any], pooled_histogram: tuple[list[float], list[float]] | None
) -> Evaluation:
    """The deployment's evaluation: the last round's federated metrics (computed from the
    nodes' pooled score histograms) and each node's metrics on its own held-out split."""
    rounds = history.get("rounds", [])
    last = rounds[-1] if rounds else {}
    nodes = {}
    for name, local in last.get("evaluate", {}).items():
        own = {k: v for k, v in local.items() if k != "num-examples"}
        nodes[name] = {
            "test_rows": int(local.get("num-examples", 0)),
            "global_model_on_own_test": own,
        }
    curves = {}
    bins = 0
    if pooled_histogram is not None:
        pos, neg = pooled_histogram
        curves["global"] = {"pos": list(pos), "neg": list(neg)}
        bins = len(pos)
    return Evaluation(dict(last.get("global", {})), nodes, curves, bins)


def write_ledger_snapshots(run_dir: Path, snapshots: Mapping[str, Any]) -> None:
    """Copy each node's budget-ledger snapshot to ``ledgers/<node>.json``."""
    for name, snap in snapshots.items():
        atomic_write_text(run_dir / LEDGERS_DIR / f"{name}.json", json.dumps(snap, indent=2) + "\n")


def finalise_run(
    run_dir: Path,
    *,
    job: Job,
    run_id: str,
    outcome: Mapping[str, Any],
    history: Mapping[str, Any],
    evaluation: Evaluation | None,
    epsilon: Mapping[str, float],
    policy_sha256: Mapping[str, str],
    ledger_path: Path,
    write_report: Callable[[Path], Any],
    ledgers: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    ledger_key: tuple[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write metrics.json, curves.json, the ledger snapshots and report.html, then append the
    run's record to the run ledger; returns the metrics. Both engines end a run here.

    ``epsilon``: ε charged to this run per node (the run-ledger record); ``ledgers``: budget
    ledger snapshots when the coordinator holds them (simulation), else None; ``ledger_key``:
    the run ledger's MAC key (default: from ``$CONFIDE_RUN_LEDGER_KEY_FILE``, if set).
    """
    if ledgers is not None:
        write_ledger_snapshots(run_dir, ledgers)
    metrics: dict[str, Any] = {"run_id": run_id}
    if outcome["status"] != "completed" or evaluation is None:
        metrics["outcome"] = dict(outcome)
        metrics["ledgers"] = dict(ledgers) if ledgers is not None else {}
    else:
        rounds = history.get("rounds", [])
        node_eps = last_epsilons(history, list(evaluation.nodes))
        metrics["dp"] = dp_summary(job)
        metrics["global"] = evaluation.global_metrics
        metrics["federated_eval_last_round"] = rounds[-1].get("global", {}) if rounds else {}
        metrics["nodes"] = {
            name: {k: v for k, v in node.items() if k != "global_model_on_own_test"}
            | {
                "epsilon": node_eps[name],
                "global_model_on_own_test": node["global_model_on_own_test"],
            }
            for name, node in evaluation.nodes.items()
        }
        metrics.update(evaluation.extra)
        metrics["outcome"] = dict(outcome)
        if evaluation.curves:
            curves = {"bins": evaluation.bins, "pooled_test": evaluation.curves}
            atomic_write_text(run_dir / CURVES_FILE, json.dumps(curves))
    metrics.update(extra or {})
    model = run_dir / MODEL_FILE
    _write_and_record(
        run_dir,
        metrics,
        job=job,
        run_id=run_id,
        status=str(outcome["status"]),
        policy_sha256=policy_sha256,
        epsilon=epsilon,
        model_path=model if model.is_file() else None,
        ledger_path=ledger_path,
        write_report=write_report,
        ledgers=ledgers,
        ledger_key=ledger_key,
    )
    return metrics


def _write_and_record(
    run_dir: Path,
    metrics: Mapping[str, Any],
    *,
    job: Job,
    run_id: str,
    status: str,
    policy_sha256: Mapping[str, str],
    epsilon: Mapping[str, float],
    model_path: Path | None,
    ledger_path: Path,
    write_report: Callable[[Path], Any],
    ledgers: Mapping[str, Any] | None,
    ledger_key: tuple[str, bytes] | None,
) -> None:
    """The end every run shares: metrics.json, report.html (full when completed, the stop
    reasons when stopped), then the run's one hash-chained record in the run ledger."""
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(metrics, indent=2, ensure_ascii=False))
    write_report(run_dir)
    append_run(
        ledger_path,
        run_id=run_id,
        config=job.config,
        policy_sha256=dict(policy_sha256),
        epsilon=dict(epsilon),
        model_path=model_path,
        outcome=status,
        key=ledger_key if ledger_key is not None else load_ledger_key(),
        budget_ledgers={  # anchors each node's budget ledger: deletion or rewind shows later
            spec.name: (spec.default_ledger(), ledgers[spec.name])
            for spec in job.nodes
            if ledgers and spec.name in ledgers and (spec.ledger or spec.data) is not None
        },
    )


# --- analyses (``confide analyze``): the same directory and run ledger, other files ----------
# An analysis run directory holds ``config.yaml``, ``analysis.json`` (the spec, epsilon per part
# and per node, the released numbers with their expected errors, per node and federated: no
# rows, no ids, no segment assignments), ``analysis.html``, ``ledgers/<node>.json`` (where the
# coordinator holds the nodes' budget ledgers) and one run-ledger record of kind ``analysis``.

__all__ += ["ANALYSIS_FILE", "ANALYSIS_HTML", "finalise_analysis"]

ANALYSIS_FILE = "analysis.json"
ANALYSIS_HTML = "analysis.html"


def finalise_analysis(
    run_dir: Path,
    *,
    config: Mapping[str, Any],
    run_id: str,
    analysis: Mapping[str, Any],
    outcome: str,
    epsilon: Mapping[str, float],
    policy_sha256: Mapping[str, str],
    ledger_path: Path,
    write_html: Callable[[Mapping[str, Any], Path], Any] | None,
    budget_ledgers: Mapping[str, tuple[Path, Mapping[str, Any]]] | None = None,
    ledger_key: tuple[str, bytes] | None = None,
) -> None:
    """Write analysis.json, analysis.html (``write_html(analysis, path)``, if given) and the ledger
    snapshots, then append the run's record (``kind: analysis``) to the run ledger.

    ``epsilon``: what each node was charged; ``budget_ledgers``: ``{node: (budget ledger path,
    snapshot)}`` when the coordinator holds them (simulation), anchored in the record.
    """
    if budget_ledgers:
        write_ledger_snapshots(run_dir, {name: snap for name, (_, snap) in budget_ledgers.items()})
    atomic_write_text(
        run_dir / ANALYSIS_FILE, json.dumps(dict(analysis), indent=2, ensure_ascii=False)
    )
    if write_html is not None:  # a stopped analysis has no releases to show
        write_html(analysis, run_dir / ANALYSIS_HTML)
    append_run(
        ledger_path,
        run_id=run_id,
        config=config,
        policy_sha256=dict(policy_sha256),
        epsilon=dict(epsilon),
        model_path=None,
        outcome=outcome,
        key=ledger_key if ledger_key is not None else load_ledger_key(),
        budget_ledgers=budget_ledgers,
        kind="analysis",
    )


# --- vertical runs (split learning after PSI): the same directory and run ledger ------------
# A vertical run directory holds ``config.yaml``, ``outcome.json``, ``metrics.json`` (``kind:
# vertical``: the top model's aggregate test metrics, the PSI summary, per node its role,
# features, epsilon (label DP and embedding DP separately) and what crossed its boundary, the
# baselines), ``curves.json`` (score histograms of the top model and of the label node alone),
# ``ledgers/<node>.json`` (where the coordinator holds them), ``report.html`` and one
# run-ledger record. Every model stays at its node: there is no ``model.pt``.

__all__ += ["finalise_vertical", "vertical_metrics"]


def vertical_metrics(
    job: Job,
    run_id: str,
    outcome: Mapping[str, Any],
    record: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """metrics.json of a vertical run: its record, the baselines and the comparisons."""
    metrics: dict[str, Any] = {"run_id": run_id, "kind": "vertical", "dp": dp_summary(job)}
    vertical = {k: v for k, v in record.items() if k not in ("global", "curves", "label_alone")}
    metrics["vertical"] = vertical
    nodes = record.get("nodes", {})
    metrics["nodes"] = {
        name: {
            "role": node.get("role"),
            "features": node.get("features", []),
            "epsilon": (node.get("dp") or {}).get("epsilon"),
        }
        for name, node in nodes.items()
    }
    if outcome.get("status") == "completed":
        metrics["global"] = dict(record.get("global", {}))
        label = str(record.get("label_node"))
        entries: dict[str, Any] = {
            f"local_only:{label}": {
                "pooled": dict(record.get("label_alone", {})),
                "epsilon": metrics["nodes"].get(label, {}).get("epsilon"),
                "rows": record.get("train_rows"),
                "source": "protocol",
            }
        }
        for name, values in (baselines or {}).items():
            entries[name] = {"pooled": dict(values), "source": "in-process, same split"}
        metrics["baselines"] = entries
        auc = metrics["global"].get("roc_auc")

        def gap(name: str) -> float | None:
            other = (entries.get(name) or {}).get("pooled", {}).get("roc_auc")
            return None if auc is None or other is None else float(auc) - float(other)

        metrics["comparison"] = {
            "global_auc_minus_label_alone_auc": gap(f"local_only:{label}"),
            "global_auc_minus_centralised_auc": gap("centralised_no_dp"),
            "global_auc_minus_vertical_no_dp_auc": gap("vertical_no_dp"),
        }
    metrics["outcome"] = dict(outcome)
    return metrics


def finalise_vertical(
    run_dir: Path,
    *,
    job: Job,
    run_id: str,
    outcome: Mapping[str, Any],
    record: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Any]] | None,
    epsilon: Mapping[str, float],
    policy_sha256: Mapping[str, str],
    ledger_path: Path,
    write_report: Callable[[Path], Any],
    ledgers: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    ledger_key: tuple[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write metrics.json, curves.json, the ledger snapshots and report.html of a vertical run,
    then append its record to the run ledger; returns the metrics. Both engines end a vertical
    run here (``record``: the coordinator's record, :class:`confide.server.vertical_app.
    VerticalOutcome`; ``baselines``: test metrics computed in-process on the same split, when
    the driver holds the nodes' data, i.e. in simulation)."""
    if ledgers is not None:
        write_ledger_snapshots(run_dir, ledgers)
    write_outcome(run_dir, outcome)
    metrics = vertical_metrics(job, run_id, outcome, record, baselines)
    metrics.update(extra or {})
    curves = record.get("curves") or {}
    if outcome.get("status") == "completed" and curves:
        label = str(record.get("label_node"))
        named = {"local_only:" + label if k == "label_alone" else k: v for k, v in curves.items()}
        bins = len(next(iter(named.values()))["pos"])
        atomic_write_text(run_dir / CURVES_FILE, json.dumps({"bins": bins, "pooled_test": named}))
    _write_and_record(
        run_dir,
        metrics,
        job=job,
        run_id=run_id,
        status=str(outcome["status"]),
        policy_sha256=policy_sha256,
        epsilon=epsilon,
        model_path=None,  # every model of a vertical run stays at its node
        ledger_path=ledger_path,
        write_report=write_report,
        ledgers=ledgers,
        ledger_key=ledger_key,
    )
    return metrics
