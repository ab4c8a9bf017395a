"""The Flower ServerApp: a thin adapter that runs the configured strategy with Confide's
wrapper and writes the federated part of the run's outputs (global model, per-round history,
outcome). The run directory is finished by :func:`confide.rundir.finalise_run` for both engines:
``confide simulate`` calls it after the simulation; the deployment ServerApp
(:mod:`confide.deployment_app`, which composes :func:`run_deployment` with the finaliser and
the report) calls it at the end of its main function."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from confide.core.files import atomic_write_text
from confide.job import Job, parse_job
from confide.modeling.factory import build_model
from confide.modeling.model_io import save_model
from confide.rundir import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, write_outcome
from confide.server.recorder import RoundRecord, RunRecorder
from confide.server.round_loop import run_rounds
from confide.server.strategy import ConfideStrategy, FederationStopped, build_strategy
from confide.wire import Proposal

__all__ = [
    "DeploymentRun",
    "RunOutcome",
    "make_server_app",
    "run_deployment",
    "run_federation",
]


@dataclass
class RunOutcome:
    """How the federated part of a run ended."""

    status: str  # "completed" | "stopped"
    rounds_completed: int
    reasons: dict[str, str] = field(default_factory=dict)
    message: str = ""

    def to_dict(self) -> dict:
        """outcome.json's content."""
        return {
            "status": self.status,
            "rounds_completed": self.rounds_completed,
            "reasons": self.reasons,
            "message": self.message,
        }


def run_federation(
    grid: Grid,
    job: Job,
    run_id: str,
    run_dir: Path,
    on_round_end: Callable[[RoundRecord], None] | None = None,
    recorder: RunRecorder | None = None,
) -> RunOutcome:
    """Run all rounds; save the global model only when the run completes; write outcome.json."""
    random.seed(job.seed)  # Flower samples nodes with the global `random` module
    model = build_model(
        job.model_name, job.model_net.params, job.task.input_dim, job.seed, job.task.output_dim
    )
    if recorder is None:
        recorder = RunRecorder(run_dir / HISTORY_FILE, on_round_end)
    algorithm = job.config["strategy"]["algorithm"]
    strategy = ConfideStrategy(
        build_strategy(job.config["strategy"], job.secure),
        recorder,
        int(algorithm.get("min_train_nodes", 1)),
    )
    proposal = Proposal(run_id, 0, job.rounds, job.seed, job.dp, job.train).to_config()
    try:
        final_arrays = run_rounds(
            strategy,
            grid,
            job.config["strategy"],
            job.secure,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=job.rounds,
            timeout=float(job.config["run"]["timeout_s"]),
            train_config=ConfigRecord(dict(proposal)),
            evaluate_config=ConfigRecord(dict(proposal)),
        )
    except FederationStopped as exc:
        outcome = RunOutcome("stopped", len(recorder.rounds) - 1, exc.reasons, str(exc))
    else:
        save_model(
            run_dir / MODEL_FILE,
            final_arrays.to_torch_state_dict(),
            job.config["task"],
            job.model_net,
            {"run_id": run_id, "rounds": job.rounds, "task_fingerprint": job.task.fingerprint},
        )
        outcome = RunOutcome("completed", job.rounds)
    write_outcome(run_dir, outcome.to_dict())
    return outcome


def make_server_app(
    job: Job,
    run_id: str,
    run_dir: Path,
    on_round_end: Callable[[RoundRecord], None] | None = None,
) -> ServerApp:
    """A ServerApp bound to one job (simulation: the driver holds the config)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        torch.set_num_threads(1)
        run_federation(grid, job, run_id, run_dir, on_round_end)

    return server


@dataclass(frozen=True)
class DeploymentRun:
    """A deployment run's federated part, as the finaliser needs it."""

    job: Job
    run_id: str
    run_dir: Path
    run_root: Path
    outcome: RunOutcome
    recorder: RunRecorder
    started: datetime


def run_deployment(grid: Grid, context: Context) -> DeploymentRun:
    """Deployment: the job travels as JSON in the run config (``confide-job``); the run
    directory is ``<confide-run-dir>/<run id>``. Runs the federation; the caller finalises."""
    torch.set_num_threads(1)
    started = datetime.now(UTC)
    job = parse_job(json.loads(str(context.run_config["confide-job"])))
    run_root = Path(str(context.run_config.get("confide-run-dir", "runs")))
    run_id = str(context.run_id)
    run_dir = run_root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    # The coordinator's record of what was proposed (shared job only: node paths stay at nodes).
    atomic_write_text(
        run_dir / CONFIG_FILE, yaml.safe_dump(job.config, allow_unicode=True, sort_keys=False)
    )
    recorder = RunRecorder(run_dir / HISTORY_FILE)
    outcome = run_federation(grid, job, run_id, run_dir, recorder=recorder)
    return DeploymentRun(job, run_id, run_dir, run_root, outcome, recorder, started)
