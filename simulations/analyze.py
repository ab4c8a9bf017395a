"""`confide analyze`: run a DP federated analysis on Flower's simulation engine.

Before anything is written: the analysis spec is validated (one line on bad input: unknown
column, undeclared category, inverted bounds, parts that do not add up), the job's names, run
directory and run ledger are checked, and every node with a data file checks the spec against
its own policy, its budget and its data (:func:`confide.clients.analysis_node.preflight_node`).
Then the engine starts (the same start as ``confide simulate``), the run directory is created,
synthetic nodes get their data, keys and ledgers in their own folder beside the run directory
(``<run dir>.nodes/``: what is node-side stays out of the coordinator's directory), and the
coordinator (:func:`confide.server.analysis_app.run_analysis`) runs the plan. The run directory
is finished by :func:`confide.rundir.finalise_analysis`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from flwr.app import Context
from flwr.serverapp import Grid

from confide.analytics.spec import AnalysisSpec, load_analysis_spec
from confide.clients.analysis_node import AnalysisRefusal, preflight_node
from confide.clients.client_app import make_client_app
from confide.clients.node_runtime import NodeRefusal
from confide.core.errors import ConfideError
from confide.core.files import atomic_write_text
from confide.job import Job, NodeSpec, preflight_config, run_location
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.policy import load_policy
from confide.rundir import CONFIG_FILE, finalise_analysis, run_ledger_path
from confide.server.analysis_app import AnalysisOutcome, analysis_record, run_analysis
from confide.simulations.federation import materialize_synthetic_nodes
from confide.simulations.simulate import (
    engine_backend_config,
    run_coordinator,
    start_engine,
)

__all__ = [
    "AnalysisConfigError",
    "AnalysisResult",
    "analysis_spec",
    "analyze",
    "preflight_analysis",
]


class AnalysisConfigError(ConfideError):
    """The composed config selects no analysis, or names a run the analysis cannot use."""


@dataclass(frozen=True)
class AnalysisResult:
    """Where an analysis wrote its outputs, how it ended, and its analysis.json content."""

    run_dir: Path
    nodes_dir: Path
    status: str
    analysis: dict[str, Any]


def analysis_spec(config: Mapping[str, Any]) -> AnalysisSpec:
    """The composed config's analysis, validated (one line naming field and rule)."""
    raw = config.get("analysis")
    if not raw:
        raise AnalysisConfigError(
            "config analysis: no analysis selected; choose one from conf/analysis, e.g. "
            "`confide analyze analysis=customer_profile` (rule: analysis)"
        )
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return load_analysis_spec(raw, f"config analysis '{name}'" if name else "config analysis")


def preflight_analysis(spec: AnalysisSpec, nodes: list[NodeSpec]) -> None:
    """Every node's own checks (policy, budget, data), read-only; raises the first refusal."""
    wire = spec.to_wire()
    for node in nodes:
        try:
            preflight_node(node, wire)
        except AnalysisRefusal as exc:
            raise ConfideError(str(exc)) from None


def _analysis_config(config: Mapping[str, Any], spec: AnalysisSpec) -> dict[str, Any]:
    """The config with the run named ``<federation>-<analysis>`` (a run.dir is kept)."""
    out = dict(config)
    out["run"] = {**config["run"], "name": f"{config['federation']['name']}-{spec.name}"}
    return out


def _resolved_config(job: Job) -> dict[str, Any]:
    resolved = dict(job.config)
    resolved["federation"] = {
        **job.config["federation"],
        "nodes": [
            {k: (str(v) if isinstance(v, Path) else v) for k, v in n.__dict__.items() if v}
            for n in job.nodes
        ],
    }
    return resolved


def _node_resolver(job: Job) -> Callable[[Context], NodeSpec]:
    def resolve(context: Context) -> NodeSpec:
        return job.nodes[int(context.node_config["partition-id"])]

    return resolve


def _no_training(context: Context):
    raise NodeRefusal("this run is an analysis: the node takes no training step (rule: analysis)")


def _budget_ledgers(job: Job) -> tuple[dict[str, tuple[Path, dict]], dict[str, str]]:
    """Each node's budget-ledger path and snapshot, and its policy's SHA-256."""
    ledgers, policies = {}, {}
    for node in job.nodes:
        policy = load_policy(node.policy)
        policies[node.name] = policy.sha256
        ledger = BudgetLedger(node.default_ledger(), node.name, policy.dp.lifetime_epsilon)
        if ledger.exists():
            ledgers[node.name] = (node.default_ledger(), ledger.snapshot())
    return ledgers, policies


def analyze(config: Mapping[str, Any], verbose: bool = False, on_step=None) -> AnalysisResult:
    """Run the composed config's analysis on the simulation engine."""
    spec = analysis_spec(config)
    job = preflight_config(_analysis_config(config, spec))
    preflight_analysis(spec, [n for n in job.nodes if n.data is not None])
    backend = engine_backend_config(job, verbose)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run_id, run_dir = run_location(job.config, stamp)
    nodes_dir = run_dir.with_name(run_dir.name + ".nodes")
    for path in (run_dir, nodes_dir):
        if path.exists() and any(path.iterdir()):
            raise AnalysisConfigError(f"{path}: exists and is not empty (rule: run.dir)")
    start_engine(backend[1])
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        synthetic = {n.name for n in job.nodes if n.data is None}
        job = materialize_synthetic_nodes(job, nodes_dir)
        preflight_analysis(spec, [n for n in job.nodes if n.name in synthetic])  # new data
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing half-written stays behind
        shutil.rmtree(nodes_dir, ignore_errors=True)
        raise
    atomic_write_text(
        run_dir / CONFIG_FILE,
        yaml.safe_dump(_resolved_config(job), allow_unicode=True, sort_keys=False),
    )
    timeout = float(job.config["run"]["timeout_s"])

    def make_body(holder: dict[str, Any]) -> Callable[[Grid], None]:
        def body(grid: Grid) -> None:
            holder["outcome"] = run_analysis(grid, spec, run_id, timeout, on_step, len(job.nodes))

        return body

    outcome: AnalysisOutcome = run_coordinator(
        job,
        run_id,
        run_dir,
        make_body,
        make_client_app(_no_training, resolve_node=_node_resolver(job)),
        backend,
        verbose,
        "analysis",
    )
    from confide.reports.analysis import render_analysis_html

    record = analysis_record(
        spec,
        run_id,
        outcome,
        engine="simulation",
        federation=job.federation,
        nodes=[n.name for n in job.nodes],
    )
    ledgers, policies = _budget_ledgers(job)
    finalise_analysis(
        run_dir,
        config=job.config,
        run_id=run_id,
        analysis=record,
        outcome=outcome.status,
        epsilon=outcome.charged,
        policy_sha256=policies,
        ledger_path=run_ledger_path(job.config),
        write_html=render_analysis_html if outcome.status == "completed" else None,
        budget_ledgers=ledgers,
    )
    return AnalysisResult(run_dir, nodes_dir, outcome.status, record)
