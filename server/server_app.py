"""The Flower ServerApp: a thin adapter that runs the configured strategy with Confide's
wrapper and writes the run's outputs (global model, per-round history, outcome)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from confide.clients.proposal import Proposal
from confide.job import Job, parse_job
from confide.modeling.factory import build_model
from confide.modeling.model_io import save_model
from confide.privacy.ledger import atomic_write_text
from confide.server.recorder import RoundRecord, RunRecorder
from confide.server.secure import start_federation
from confide.server.strategy import ConfideStrategy, FederationStopped, build_strategy

__all__ = ["RunOutcome", "app", "make_server_app", "run_federation"]

MODEL_FILE = "model.pt"
HISTORY_FILE = "history.json"
OUTCOME_FILE = "outcome.json"


@dataclass
class RunOutcome:
    """How the federated part of a run ended."""

    status: str  # "completed" | "stopped"
    rounds_completed: int
    reasons: dict[str, str] = field(default_factory=dict)
    message: str = ""

    def to_dict(self) -> dict:
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
) -> RunOutcome:
    """Run all rounds; save the global model only when the run completes."""
    random.seed(job.seed)  # Flower samples nodes with the global `random` module
    model = build_model(job.model_net, job.task.input_dim, seed=job.seed)
    recorder = RunRecorder(run_dir / HISTORY_FILE, on_round_end)
    algorithm = job.config["strategy"]["algorithm"]
    strategy = ConfideStrategy(
        build_strategy(algorithm, job.config.get("secure")),
        recorder,
        int(algorithm.get("min_train_nodes", 1)),
    )
    proposal = Proposal(run_id, 0, job.rounds, job.seed, job.dp, job.train).to_config()
    try:
        final_arrays = start_federation(
            strategy,
            grid,
            job.config,
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
            job.config["model"],
            {"run_id": run_id, "rounds": job.rounds, "task_fingerprint": job.task.fingerprint},
        )
        outcome = RunOutcome("completed", job.rounds)
    atomic_write_text(run_dir / OUTCOME_FILE, json.dumps(outcome.to_dict(), indent=2))
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


app = ServerApp()


@app.main()
def deployment_main(grid: Grid, context: Context) -> None:
    """Deployment: the job travels as JSON in the run config (``confide-job``)."""
    job = parse_job(json.loads(str(context.run_config["confide-job"])))
    run_dir = Path(str(context.run_config.get("confide-run-dir", "runs"))) / str(context.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The coordinator's record of what was proposed (shared job only: node paths stay at nodes).
    atomic_write_text(
        run_dir / "config.yaml", yaml.safe_dump(job.config, allow_unicode=True, sort_keys=False)
    )
    run_federation(grid, job, str(context.run_id), run_dir)
