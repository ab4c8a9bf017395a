"""The ServerApp main of a federated analysis (``confide analyze``): a thin coordinator.

It sends each step of the analysis's plan (:func:`plan_of`) to every node as
a Flower message of type QUERY carrying plain records (the spec's wire dict, the step, the
centroids), collects the nodes' noisy releases and combines them with
:mod:`confide.analytics.combine`: first the release (queries, RFM, quality), then the DP-Lloyd
iterations (init, Lloyd, final per-segment statistics). It never sees a row, an id or a segment
assignment. A node that refuses or does not answer stops the analysis with its one-line reason.

:func:`run_analysis` is the body of the ServerApp's main under the simulation engine (started
by :mod:`confide.simulations.analyze` exactly as ``confide simulate`` starts it); under the
deployment engine the SuperNodes run the same ClientApp (:data:`confide.clients.client_app.app`),
whose query handler answers these messages from each node's own ``--node-config``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from confide.analytics import kmeans
from confide.analytics.combine import NOISE_PLACEMENT, combine_releases
from confide.analytics.spec import AnalysisSpec, load_analysis_spec
from confide.core.errors import ConfideError
from confide.core.files import atomic_write_text
from confide.job import Job, parse_job
from confide.rundir import CONFIG_FILE, write_outcome
from confide.server.queries import (
    ProtocolStopped,
    ReplyRejected,
    connected_node_ids,
    send_queries,
    shared_job,
)
from confide.wire import (
    ANALYSIS_KEY,
    AnalysisRequest,
    AnalysisStep,
    AnalysisWireError,
    analysis_plan,
    decode_analysis_reply,
)

__all__ = [
    "AnalysisDeploymentRun",
    "AnalysisOutcome",
    "AnalysisStopped",
    "analysis_record",
    "is_analysis_run",
    "plan_of",
    "run_analysis",
    "run_analysis_deployment",
]


OnStep = Callable[[AnalysisStep, int], None]


class AnalysisStopped(ProtocolStopped):
    """A node refused a step or did not answer; ``reasons`` maps node to its reason."""

    def __init__(self, step: AnalysisStep, reasons: Mapping[str, str]) -> None:
        self.step = step
        super().__init__(f"analysis stopped at step {step.step} {step.iteration}", reasons)


@dataclass
class AnalysisOutcome:
    """How an analysis ended: ``analysis`` holds the combined releases when it completed;
    ``charged`` the epsilon each node was charged by the steps it answered."""

    status: str  # "completed" | "stopped"
    analysis: dict[str, Any] | None
    charged: dict[str, float]
    reasons: dict[str, str] = field(default_factory=dict)
    message: str = ""


def plan_of(spec: AnalysisSpec) -> tuple[AnalysisStep, ...]:
    """The analysis's steps: the release, then the library's k-means steps (init, the Lloyd
    iterations, final); the same plan, and epsilon per step, every node charges."""
    release = sum(eps for part, eps in spec.parts().items() if part != "segments")
    if spec.segments is None:
        return analysis_plan(release)
    steps = range(spec.segments.iterations + 2)
    return analysis_plan(release, [kmeans.step_epsilon(spec, i) for i in steps])


def _ask(
    grid: Grid,
    node_ids: list[int],
    request: AnalysisRequest,
    step: AnalysisStep,
    timeout: float,
    done: dict[str, int],
) -> dict[str, dict[str, Any]]:
    """Send one step to every node; returns ``{node name: release}`` or raises
    :class:`AnalysisStopped` with every refusal and every missing reply. ``done`` counts the
    steps each node answered (each one charged in the node's ledger)."""
    messages = [
        Message(
            content=RecordDict({ANALYSIS_KEY: ConfigRecord(request.to_config())}),
            dst_node_id=node_id,
            message_type=MessageType.QUERY,
        )
        for node_id in node_ids
    ]

    def decode(content: RecordDict) -> dict[str, Any]:
        try:
            return decode_analysis_reply(dict(content.config_records[ANALYSIS_KEY]))
        except KeyError:
            raise ReplyRejected("no release") from None
        except AnalysisWireError as exc:
            raise ReplyRejected(str(exc)) from None

    accepted, reasons = send_queries(grid, messages, node_ids, timeout, decode)
    releases: dict[str, dict[str, Any]] = {}
    for _, name, release in accepted:
        releases[name] = release
        done[name] = done.get(name, 0) + 1
    if reasons:
        raise AnalysisStopped(step, reasons)
    return releases


def _charged(
    spec: AnalysisSpec, steps: tuple[AnalysisStep, ...], done: Mapping[str, int]
) -> dict[str, float]:
    """Each node's charge: the epsilon of the steps it answered, summed as the node sums it."""
    return {
        name: min(math.fsum(s.epsilon for s in steps[:count]), float(spec.epsilon))
        for name, count in sorted(done.items())
    }


def _connected(grid: Grid, expected: int, timeout: float) -> list[int]:
    """The grid's node ids once ``expected`` nodes are connected (deployment: SuperNodes may
    still be connecting); fewer after ``timeout`` seconds stops the analysis."""
    node_ids, missing = connected_node_ids(grid, expected, timeout)
    if missing is not None:
        raise AnalysisStopped(AnalysisStep("release", 0, 0.0), {"federation": missing})
    return node_ids


def run_analysis(
    grid: Grid,
    spec: AnalysisSpec,
    run_id: str,
    timeout: float,
    on_step: OnStep | None = None,
    expected_nodes: int = 1,
) -> AnalysisOutcome:
    """Run every step of ``spec`` on the grid's nodes (at least ``expected_nodes``) and combine
    the releases."""
    wire = spec.to_wire()
    done: dict[str, int] = {}
    steps = plan_of(spec)
    try:
        node_ids = _connected(grid, expected_nodes, timeout)
        release_step = steps[0]
        releases = _ask(
            grid, node_ids, AnalysisRequest(run_id, "release", wire), release_step, timeout, done
        )
        if on_step is not None:
            on_step(release_step, len(steps))
        analysis = combine_releases(spec, releases)
        centroids: list[list[float]] | None = None
        for step in steps[1:]:
            request = AnalysisRequest(run_id, step.step, wire, step.iteration, centroids)
            node_steps = _ask(grid, node_ids, request, step, timeout, done)
            if kmeans.step_kind(spec, step.iteration) == "final":
                assert centroids is not None  # the init step always comes first
                analysis["segments"] = kmeans.segments_summary(spec, node_steps, centroids)
            else:
                centroids = kmeans.kmeans_update(spec, node_steps, centroids)
            if on_step is not None:
                on_step(step, len(steps))
    except AnalysisStopped as exc:
        return AnalysisOutcome("stopped", None, _charged(spec, steps, done), exc.reasons, str(exc))
    except ConfideError as exc:  # a release the library refuses to combine (it names the node)
        reasons = {"coordinator": str(exc)}
        return AnalysisOutcome("stopped", None, _charged(spec, steps, done), reasons, str(exc))
    return AnalysisOutcome("completed", analysis, _charged(spec, steps, done))


def analysis_record(
    spec: AnalysisSpec,
    run_id: str,
    outcome: AnalysisOutcome,
    *,
    engine: str,
    federation: str,
    nodes: list[str],
) -> dict[str, Any]:
    """analysis.json: the combined releases (the library's record, as the in-process runner
    gives it: epsilon per part, numbers with their expected 95% errors, per node and
    federated) plus the run's facts: the spec, the step plan and what each node was charged.
    Numbers only: no rows, no ids, no segment assignments."""
    record: dict[str, Any] = {
        "epsilon": spec.epsilon,
        "delta": spec.delta,
        "parts": spec.parts(),
        "noise_placement": NOISE_PLACEMENT,
    }
    record.update(outcome.analysis or {})
    record.update(
        {
            "kind": "analysis",
            "run_id": run_id,
            "status": outcome.status,
            "engine": engine,
            "federation": federation,
            "nodes": list(nodes),
            "spec": spec.to_wire(),
            "steps": [
                {"step": s.step, "iteration": s.iteration, "epsilon": s.epsilon}
                for s in plan_of(spec)
            ],
            "charged": dict(sorted(outcome.charged.items())),
        }
    )
    if outcome.status != "completed":
        record["reasons"] = outcome.reasons
        record["message"] = outcome.message
    return record


@dataclass(frozen=True)
class AnalysisDeploymentRun:
    """A deployment analysis, as the deployment ServerApp finalises it."""

    job: Job
    spec: AnalysisSpec
    run_id: str
    run_dir: Path
    run_root: Path
    outcome: AnalysisOutcome


def is_analysis_run(context: Context) -> bool:
    """Whether the deployment's shared job (``confide-job``) selects an analysis."""
    raw = context.run_config.get("confide-job")
    return bool(raw) and bool(shared_job(context).get("analysis"))


def run_analysis_deployment(grid: Grid, context: Context) -> AnalysisDeploymentRun:
    """Deployment: the analysis travels in the shared job (``confide deploy analysis=NAME``);
    the run directory is ``<confide-run-dir>/<run id>``. Runs the plan; the caller finalises.
    Each SuperNode answers from its own ``--node-config``, policy and budget ledger."""
    job = parse_job(shared_job(context))
    spec = load_analysis_spec(job.config["analysis"], "run config 'confide-job' analysis")
    run_root = Path(str(context.run_config.get("confide-run-dir", "runs")))
    run_id = str(context.run_id)
    run_dir = run_root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(  # the coordinator's record of what was proposed (no node paths)
        run_dir / CONFIG_FILE, yaml.safe_dump(job.config, allow_unicode=True, sort_keys=False)
    )
    timeout = float(job.config["run"]["timeout_s"])
    # the job lists no nodes in deployment: wait for as many as a training run would
    expected = int((job.config["strategy"].get("algorithm") or {}).get("min_available_nodes", 1))
    outcome = run_analysis(grid, spec, run_id, timeout, expected_nodes=expected)
    write_outcome(  # what `confide deploy` prints when it follows the run
        run_dir, {"status": outcome.status, "reasons": outcome.reasons, "message": outcome.message}
    )
    return AnalysisDeploymentRun(job, spec, run_id, run_dir, run_root, outcome)
