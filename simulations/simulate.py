"""`confide simulate`: run a federation locally on Flower's simulation engine.

Before any file is written, every node's data is checked against its policy and the task
(bad input stops here with one line). Then the run directory is created, synthetic nodes get
their data and keys, the ServerApp and ClientApps run under ``flwr.simulation``, and finally
the global model is scored on the pooled held-out splits next to the baselines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml
from flwr.app import Context
from flwr.simulation import run_simulation

from confide.clients.client_app import make_client_app
from confide.clients.node_data import NodeData
from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.clients.proposal import Proposal
from confide.job import Job, parse_job
from confide.modeling.dp_training import predict_proba
from confide.modeling.errors import ConfideError
from confide.modeling.metrics import HISTOGRAM_BINS, binary_metrics, score_histograms
from confide.modeling.model_io import load_model
from confide.privacy.ledger import BudgetLedger, atomic_write_text
from confide.privacy.run_ledger import append_run, load_ledger_key, run_epsilon_from_snapshots
from confide.reports import write_report
from confide.server.server_app import MODEL_FILE, OUTCOME_FILE, make_server_app
from confide.simulations.baselines import pooled_test, run_baselines
from confide.simulations.dropout import DropoutRuntime, dropout_rate
from confide.simulations.federation import materialize_synthetic_nodes
from confide.simulations.reproducibility import reproducibility_record

__all__ = ["SimulationResult", "preflight", "prepare_run_dir", "simulate"]

METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.json"  # per-model score histograms on the pooled test set (no rows)


@dataclass(frozen=True)
class SimulationResult:
    """Where a simulation wrote its outputs and how it ended."""

    run_dir: Path
    status: str
    metrics: dict[str, Any]


def preflight(job: Job, nodes: list | None = None) -> list[NodeData]:
    """Load and check every node's data under its policy; raise on the first problem."""
    proposal = Proposal("preflight", 0, job.rounds, job.seed, job.dp, job.train)
    checked = []
    for node in nodes if nodes is not None else job.nodes:
        runtime = NodeRuntime(node, job.task, job.model_net, job.test_fraction)
        try:
            data, _ = runtime.checked_data(proposal)
        except NodeRefusal as exc:
            raise ConfideError(str(exc)) from exc
        checked.append(data)
    return checked


def prepare_run_dir(config: dict[str, Any]) -> tuple[str, Path]:
    """Pick the run id and a fresh run directory (never reuses a non-empty one)."""
    run_cfg = config["run"]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run_id = f"{stamp}-{run_cfg['name']}"
    run_dir = Path(run_cfg["dir"]) if run_cfg.get("dir") else Path(run_cfg["root"]) / run_id
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfideError(f"{run_dir}: run directory exists and is not empty (rule: run.dir)")
    return run_id, run_dir


@contextlib.contextmanager
def _flower_log_to_run_dir(run_dir: Path, verbose: bool) -> Iterator[None]:
    """Send Flower's log to ``logs/run.log``; on the console only when ``verbose``.

    Flower's own console handler is detached and propagation to the root logger (which Opacus
    configures on import) is switched off for the run, then both are restored.
    """
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "logs" / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    flwr_logger = logging.getLogger("flwr")
    detached = [] if verbose else list(flwr_logger.handlers)
    propagate = flwr_logger.propagate
    for existing in detached:
        flwr_logger.removeHandler(existing)
    flwr_logger.propagate = verbose and propagate
    flwr_logger.addHandler(handler)
    try:
        yield
    finally:
        flwr_logger.removeHandler(handler)
        for existing in detached:
            flwr_logger.addHandler(existing)
        flwr_logger.propagate = propagate
        handler.close()


def _simulation_resolver(job: Job):
    rate = dropout_rate(job.config)

    def resolve(context: Context) -> NodeRuntime:
        torch.set_num_threads(1)
        node = job.nodes[int(context.node_config["partition-id"])]
        if rate > 0:
            return DropoutRuntime(node, job.task, job.model_net, job.test_fraction, rate=rate)
        return NodeRuntime(node, job.task, job.model_net, job.test_fraction)

    return resolve


def _ledger_snapshots(job: Job, run_dir: Path, nodes: list[NodeData]) -> dict[str, Any]:
    snapshots = {}
    for spec, data in zip(job.nodes, nodes, strict=True):
        ledger = BudgetLedger(spec.default_ledger(), spec.name, data.policy.dp.lifetime_epsilon)
        snap = ledger.snapshot() if spec.default_ledger().exists() else {"runs": []}
        snapshots[spec.name] = snap
        atomic_write_text(
            run_dir / "ledgers" / f"{spec.name}.json", json.dumps(snap, indent=2) + "\n"
        )
    return snapshots


def _final_metrics(
    job: Job, run_dir: Path, run_id: str, nodes: list[NodeData], history: dict[str, Any]
) -> dict[str, Any]:
    model, _, _ = load_model(run_dir / MODEL_FILE)
    x_test, y_test = pooled_test(nodes)
    global_prob = predict_proba(model, x_test)
    curves: dict[str, Any] = {
        "bins": HISTOGRAM_BINS,
        "pooled_test": {
            "global": dict(zip(("pos", "neg"), score_histograms(y_test, global_prob), strict=True))
        },
    }
    rounds = history.get("rounds", [])
    last = rounds[-1] if rounds else {}
    per_node = {}
    for node in nodes:
        eps = [r["train"].get(node.name, {}).get("epsilon") for r in rounds]
        eps = [e for e in eps if e is not None]
        per_node[node.name] = {
            "rows": node.n_rows,
            "train_rows": len(node.y_train),
            "test_rows": len(node.y_test),
            "positive_rate": float(node.y_train.mean()),
            "epsilon": eps[-1] if eps else 0.0,
            "global_model_on_own_test": binary_metrics(
                node.y_test, predict_proba(model, node.x_test)
            ),
        }
    metrics: dict[str, Any] = {
        "run_id": run_id,
        "dp": {
            "enabled": job.dp.enabled,
            "epsilon_target": job.dp.epsilon if job.dp.enabled else None,
            "delta": job.dp.delta if job.dp.enabled else None,
            "accountant": job.dp.accountant,
            "secure_mode": job.dp.secure_mode,
        },
        "global": binary_metrics(y_test, global_prob),
        "federated_eval_last_round": last.get("global", {}),
        "nodes": per_node,
    }
    if job.config.get("baselines", {}).get("enabled", True):
        baselines = run_baselines(job, nodes)
        metrics["baselines"] = {
            b.name: {"pooled": b.pooled, "own": b.own, "epsilon": b.epsilon, "rows": b.rows}
            for b in baselines
        }
        for b in baselines:
            pos, neg = b.histogram
            curves["pooled_test"][b.name] = {"pos": pos, "neg": neg}
        central = metrics["baselines"]["centralised"]["pooled"]["roc_auc"]
        metrics["comparison"] = {
            "global_auc_minus_centralised_auc": metrics["global"]["roc_auc"] - central,
            "global_auc_minus_local_only_auc": {
                b.name.split(":", 1)[1]: metrics["global"]["roc_auc"] - b.pooled["roc_auc"]
                for b in baselines
                if b.name.startswith("local_only:")
            },
        }
    atomic_write_text(run_dir / CURVES_FILE, json.dumps(curves))
    return metrics


def simulate(
    cfg_container: dict[str, Any],
    on_round_end=None,
    verbose: bool = False,
) -> SimulationResult:
    """Run the composed config on the simulation engine; returns the run directory and metrics."""
    job = parse_job(cfg_container)
    dropout_rate(job.config)
    started = datetime.now(UTC)
    preflight(job, [n for n in job.nodes if n.data is not None])  # nothing written yet
    run_id, run_dir = prepare_run_dir(job.config)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        job = materialize_synthetic_nodes(job, run_dir / "nodes")
        nodes = preflight(job)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing half-written stays behind
        raise
    resolved = dict(job.config)
    resolved["federation"] = {
        **job.config["federation"],
        "nodes": [
            {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in n.__dict__.items()
                if v is not None
            }
            for n in job.nodes
        ],
    }
    atomic_write_text(
        run_dir / "config.yaml", yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False)
    )
    sim_cfg = job.config.get("simulation", {})
    backend_config = {
        "client_resources": {"num_cpus": float(sim_cfg.get("client_cpus", 1)), "num_gpus": 0.0},
        "init_args": {
            "num_cpus": os.cpu_count() or 1,
            "include_dashboard": False,
            "log_to_driver": verbose,
            "logging_level": logging.INFO if verbose else logging.ERROR,
        },
    }
    with _flower_log_to_run_dir(run_dir, verbose):
        run_simulation(
            server_app=make_server_app(job, run_id, run_dir, on_round_end),
            client_app=make_client_app(_simulation_resolver(job)),
            num_supernodes=len(job.nodes),
            backend_name=str(sim_cfg.get("backend", "ray")),
            backend_config=backend_config,
            verbose_logging=verbose,
        )
    outcome = json.loads((run_dir / OUTCOME_FILE).read_text(encoding="utf-8"))
    history = json.loads((run_dir / "history.json").read_text(encoding="utf-8"))
    ledgers = _ledger_snapshots(job, run_dir, nodes)
    if outcome["status"] != "completed":
        metrics = {"run_id": run_id, "outcome": outcome, "ledgers": ledgers}
    else:
        metrics = _final_metrics(job, run_dir, run_id, nodes, history)
        metrics["outcome"] = outcome
    metrics["reproducibility"] = reproducibility_record(job.config, started)
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(metrics, indent=2, ensure_ascii=False))
    write_report(run_dir)  # report.html: full when completed, the stop reasons when stopped
    append_run(  # the run ledger: one hash-chained record per run, completed or stopped
        job.config["run"].get("ledger") or Path(job.config["run"]["root"]) / "run-ledger.jsonl",
        run_id=run_id,
        config=job.config,
        policy_sha256={n.name: n.policy.sha256 for n in nodes},
        epsilon=run_epsilon_from_snapshots(ledgers, run_id),
        model_path=run_dir / MODEL_FILE,
        outcome=outcome["status"],
        key=load_ledger_key(),
    )
    return SimulationResult(run_dir, outcome["status"], metrics)
