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
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml
from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from confide.clients.checked_nodes import load_checked_nodes
from confide.clients.client_app import make_client_app
from confide.clients.node_data import NodeData
from confide.clients.node_runtime import NodeRuntime
from confide.core.files import atomic_write_text
from confide.job import Job, preflight_config, run_location
from confide.modeling.errors import ConfideError
from confide.modeling.metrics import HISTOGRAM_BINS, binary_metrics, score_histograms
from confide.modeling.model_io import load_model
from confide.modeling.prediction import predict_proba
from confide.modeling.survival_spec import SurvivalTaskSpec
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.run_ledger import run_epsilon_from_snapshots
from confide.reports import write_report
from confide.rundir import (
    HISTORY_FILE,
    MODEL_FILE,
    OUTCOME_FILE,
    Evaluation,
    finalise_run,
    run_ledger_path,
)
from confide.server.server_app import run_federation
from confide.simulations.baselines import pooled_test, run_baselines
from confide.simulations.dropout import DropoutRuntime, dropout_rate
from confide.simulations.federation import materialize_synthetic_nodes
from confide.simulations.job_handle import JobHandle
from confide.simulations.reproducibility import reproducibility_record
from confide.simulations.survival_run import survival_evaluation

__all__ = [
    "SimulationEngineError",
    "SimulationResult",
    "engine_backend_config",
    "preflight",
    "prepare_run_dir",
    "ray_address",
    "run_coordinator",
    "run_engine",
    "simulate",
    "start_engine",
]


_RAY_ADDRESS = re.compile(r"auto|(ray://)?[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}")


class SimulationEngineError(ConfideError):
    """Flower's simulation engine (Ray) could not start, or stopped before the run ended."""


@dataclass(frozen=True)
class SimulationResult:
    """Where a simulation wrote its outputs and how it ended."""

    run_dir: Path
    status: str
    metrics: dict[str, Any]


def preflight(job: Job, nodes: list | None = None) -> list[NodeData]:
    """Load and check every node's data under its policy; raise on the first problem."""
    return load_checked_nodes(job, nodes)  # the one checked-nodes loader (audit, benchmarks)


def prepare_run_dir(config: dict[str, Any]) -> tuple[str, Path]:
    """Pick the run id and a fresh run directory (never reuses a non-empty one)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run_id, run_dir = run_location(config, stamp)  # safe name, inside run.root
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfideError(f"{run_dir}: run directory exists and is not empty (rule: run.dir)")
    return run_id, run_dir


def engine_backend_config(job: Job, verbose: bool) -> tuple[str, dict[str, Any]]:
    """The backend name and Flower backend config of the ``simulation`` section, validated."""
    sim_cfg = job.config.get("simulation") or {}
    backend = sim_cfg.get("backend", "ray")
    if backend != "ray":
        raise SimulationEngineError(
            "config simulation.backend: must be ray, the one backend of Flower's simulation "
            "engine (rule: simulation engine)"
        )
    cpus = sim_cfg.get("client_cpus", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not 0 < cpus <= 1024:
        raise SimulationEngineError(
            "config simulation.client_cpus: must be a number in (0, 1024] (rule: simulation engine)"
        )
    init_args: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
    }
    address = ray_address(sim_cfg)
    if address is None:  # a private Ray instance on this machine's cores
        init_args["num_cpus"] = os.cpu_count() or 1
    else:  # join a running cluster: its nodes declare their own CPUs
        init_args["address"] = address
    return backend, {
        "client_resources": {"num_cpus": float(cpus), "num_gpus": 0.0},
        "init_args": init_args,
    }


def ray_address(sim_cfg: dict[str, Any]) -> str | None:
    """``simulation.ray_address``, validated: None (start Ray here) or the address of a running
    Ray cluster (``host:port`` of its head, ``auto``, or ``ray://host:port``)."""
    address = sim_cfg.get("ray_address")
    if address is None:
        return None
    if (
        not isinstance(address, str)
        or not 0 < len(address) <= 256
        or not _RAY_ADDRESS.fullmatch(address)
    ):
        raise SimulationEngineError(
            "config simulation.ray_address: must be null or a Ray cluster address such as "
            "127.0.0.1:6379, auto or ray://host:10001 (rule: simulation engine)"
        )
    return address


def start_engine(backend_config: dict[str, Any]) -> None:
    """Start Ray exactly as Flower's Ray backend would (it then finds Ray running), so that a
    start failure is one line before any run directory exists or any budget is reserved."""
    import ray

    if ray.is_initialized():
        return
    init_args = {"include_dashboard": False, **backend_config.get("init_args", {})}
    pythonpath = os.pathsep.join(sys.path)  # what Flower's RayBackend.init_ray passes on
    if os.environ.get("PYTHONPATH"):
        pythonpath = f"{pythonpath}{os.pathsep}{os.environ['PYTHONPATH']}"
    os.environ["PYTHONPATH"] = pythonpath
    try:
        ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **init_args)
    except Exception as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise SimulationEngineError(
            f"simulation engine: Ray failed to start ({type(exc).__name__}); nothing was run "
            "and no budget was reserved (rule: simulation engine)"
        ) from exc


class _EngineWatch:
    """Builds the run's ServerApp so the driver can stop its thread when the engine dies.

    Flower runs the ServerApp on a non-daemon thread that polls for replies until
    ``run.timeout_s``; if the engine under it fails, that thread would hold the process open.
    The watch makes the grid's reply polling raise once :meth:`stop` is called.
    """

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def server_app(
        self,
        job: Job,
        run_id: str,
        run_dir: Path,
        on_round_end=None,
        body: Callable[[Grid], None] | None = None,
    ) -> ServerApp:
        """A ServerApp bound to one job (the same federation loop as ``make_server_app``);
        ``body(grid)`` replaces the federation loop (an analysis's coordinator)."""
        server = ServerApp()

        @server.main()
        def main(grid: Grid, context: Context) -> None:
            self.thread = threading.current_thread()
            if self.stopped.is_set():
                return
            torch.set_num_threads(1)
            pull = grid.pull_messages

            def guarded_pull(*args: Any, **kwargs: Any) -> Any:
                if self.stopped.is_set():
                    raise SimulationEngineError(
                        "simulation engine: stopped under the ServerApp (rule: simulation engine)"
                    )
                return pull(*args, **kwargs)

            grid.pull_messages = guarded_pull  # send_and_receive polls through this attribute
            self._wait_for_nodes(grid, len(job.nodes))
            if body is not None:
                body(grid)
                return
            run_federation(grid, job, run_id, run_dir, on_round_end)

        return server

    def _wait_for_nodes(self, grid: Grid, expected: int, timeout_s: float = 120.0) -> None:
        """Wait until every simulated node is registered with the grid.

        Flower registers the simulated nodes on the engine's thread while the ServerApp thread
        starts; a strategy whose ``min_available_nodes`` is below the federation's size would
        otherwise sample only the nodes registered so far in round 1 (a race, seen when the
        engine is already warm). Every simulated node exists from the start, so waiting is
        exact; an engine that dies meanwhile ends the wait through :meth:`stop`.
        """
        deadline = time.monotonic() + timeout_s
        while len(list(grid.get_node_ids())) < expected:
            if self.stopped.is_set() or time.monotonic() > deadline:
                raise SimulationEngineError(
                    f"simulation engine: only {len(list(grid.get_node_ids()))} of {expected} "
                    f"simulated nodes registered within {timeout_s:g} s (rule: simulation engine)"
                )
            time.sleep(0.05)

    def stop(self, wait_s: float = 15.0) -> None:
        """Make the ServerApp thread end at its next poll and wait for it."""
        self.stopped.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(wait_s)


def _rounds_recorded(run_dir: Path) -> bool:
    """Whether the server recorded any round (then the run directory is evidence to keep)."""
    try:
        history = json.loads((run_dir / HISTORY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(history, dict) and history.get("rounds"))


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
    propagate, level = flwr_logger.propagate, flwr_logger.level
    # the run log holds Flower's INFO lines whatever an earlier caller in this process set
    # (Flower's CLI helpers lower the logger to WARNING), so every run log is complete
    flwr_logger.setLevel(logging.DEBUG if verbose else logging.INFO)
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
        flwr_logger.setLevel(level)
        handler.close()


def run_engine(
    job: Job,
    run_dir: Path,
    server_app: Callable[[_EngineWatch], ServerApp],
    client_app: ClientApp,
    backend: tuple[str, dict[str, Any]],
    verbose: bool,
) -> Exception | None:
    """Run a ServerApp (built by ``server_app(watch)``) and a ClientApp on the simulation
    engine, one simulated node per job node, Flower's log in ``logs/run.log``; returns the
    engine's failure (None: it ran to the end). Ray must be started (:func:`start_engine`)."""
    watch = _EngineWatch()
    with _flower_log_to_run_dir(run_dir, verbose):  # Flower's log of a failure stays in it
        try:
            run_simulation(
                server_app=server_app(watch),
                client_app=client_app,
                num_supernodes=len(job.nodes),
                backend_name=backend[0],
                backend_config=backend[1],
                verbose_logging=verbose,
            )
        except Exception as exc:
            watch.stop()
            return exc
    return None


def run_coordinator(
    job: Job,
    run_id: str,
    run_dir: Path,
    make_body: Callable[[dict[str, Any]], Callable[[Grid], None]],
    client_app: ClientApp,
    backend: tuple[str, dict[str, Any]],
    verbose: bool,
    what: str,
) -> Any:
    """Run a multi-step protocol's coordinator (``make_body(holder)``, which puts its result in
    ``holder["outcome"]``) on the simulation engine; returns that outcome. An engine failure or
    a body that ended without an outcome removes the partial run directory and raises
    :class:`SimulationEngineError` naming ``what`` did not end."""
    holder: dict[str, Any] = {}
    failure = run_engine(
        job,
        run_dir,
        lambda watch: watch.server_app(job, run_id, run_dir, body=make_body(holder)),
        client_app,
        backend,
        verbose,
    )
    if failure is not None or "outcome" not in holder:
        shutil.rmtree(run_dir, ignore_errors=True)
        name = type(failure).__name__ if failure is not None else "no outcome"
        raise SimulationEngineError(
            f"simulation engine: stopped before the {what} ended ({name}); the partial run "
            "directory was removed (rule: simulation engine)"
        ) from failure
    return holder["outcome"]


def _simulation_resolver(job: Job):
    """The node resolver of a simulation's ClientApp: what it carries per message is a
    reference to the job, not the job, which grows with the federation (:class:`JobHandle`)."""
    rate = dropout_rate(job.config)
    handle = JobHandle(job)
    handle.publish()  # Ray runs by now (start_engine); if not, the first dispatch puts it

    def resolve(context: Context) -> NodeRuntime:
        torch.set_num_threads(1)
        run_job = handle.job
        node = run_job.nodes[int(context.node_config["partition-id"])]
        args = (node, run_job.task, run_job.model_net, run_job.test_fraction)
        if rate > 0:
            return DropoutRuntime(*args, rate=rate)
        return NodeRuntime(*args)

    return resolve


def _ledger_snapshots(job: Job, nodes: list[NodeData]) -> dict[str, Any]:
    snapshots = {}
    for spec, data in zip(job.nodes, nodes, strict=True):
        ledger = BudgetLedger(spec.default_ledger(), spec.name, data.policy.dp.lifetime_epsilon)
        snapshots[spec.name] = ledger.snapshot() if spec.default_ledger().exists() else {"runs": []}
    return snapshots


def _pooled_evaluation(job: Job, run_dir: Path, nodes: list[NodeData]) -> Evaluation:
    """Score the global model on the pooled held-out splits (and each node's), with baselines."""
    if isinstance(job.task, SurvivalTaskSpec):
        return survival_evaluation(job, run_dir, nodes)
    model, _, _ = load_model(run_dir / MODEL_FILE)
    x_test, y_test = pooled_test(nodes)
    global_prob = predict_proba(model, x_test)
    curves = {
        "global": dict(zip(("pos", "neg"), score_histograms(y_test, global_prob), strict=True))
    }
    per_node = {
        node.name: {
            "rows": node.n_rows,
            "train_rows": len(node.y_train),
            "test_rows": len(node.y_test),
            "positive_rate": float(node.y_train.mean()),
            "global_model_on_own_test": binary_metrics(
                node.y_test, predict_proba(model, node.x_test)
            ),
        }
        for node in nodes
    }
    global_metrics = binary_metrics(y_test, global_prob)
    extra: dict[str, Any] = {}
    if job.config.get("baselines", {}).get("enabled", True):
        baselines = run_baselines(job, nodes)
        extra["baselines"] = {
            b.name: {"pooled": b.pooled, "own": b.own, "epsilon": b.epsilon, "rows": b.rows}
            for b in baselines
        }
        for b in baselines:
            pos, neg = b.histogram
            curves[b.name] = {"pos": pos, "neg": neg}
        central = extra["baselines"]["centralised"]["pooled"]["roc_auc"]
        extra["comparison"] = {
            "global_auc_minus_centralised_auc": global_metrics["roc_auc"] - central,
            "global_auc_minus_local_only_auc": {
                b.name.split(":", 1)[1]: global_metrics["roc_auc"] - b.pooled["roc_auc"]
                for b in baselines
                if b.name.startswith("local_only:")
            },
        }
    return Evaluation(global_metrics, per_node, curves, HISTOGRAM_BINS, extra)


def _simulate_vertical(job: Job, verbose: bool) -> SimulationResult:
    """A vertical job on the same engine start, run directory and finaliser as a horizontal
    one; the vertical pieces are :mod:`confide.simulations.vertical_run`'s."""
    from confide.simulations import vertical_run as vertical

    started = datetime.now(UTC)
    job = vertical.preflight_vertical(job)  # every policy and every CSV node, nothing written
    backend = engine_backend_config(job, verbose)
    run_id, run_dir = prepare_run_dir(job.config)
    start_engine(backend[1])
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        synthetic = [n.name for n in job.nodes if n.data is None]
        job = materialize_synthetic_nodes(job, run_dir / "nodes")
        if synthetic:  # their data exists now: the same node checks, then the overlap
            job = vertical.preflight_vertical(job, [n for n in job.nodes if n.name in synthetic])
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing half-written stays behind
        raise
    _write_resolved_config(job, run_dir)
    outcome = run_coordinator(
        job,
        run_id,
        run_dir,
        lambda holder: vertical.vertical_body(job, run_id, holder),
        vertical.vertical_client_app(job),
        backend,
        verbose,
        "vertical run",
    )
    extra = {"reproducibility": reproducibility_record(job.config, started)}
    metrics = vertical.finish_vertical(job, run_id, run_dir, outcome, extra)
    return SimulationResult(run_dir, outcome.status, metrics)


def _write_resolved_config(job: Job, run_dir: Path) -> None:
    """config.yaml: the composed config with each node's resolved settings."""
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


def simulate(
    cfg_container: dict[str, Any],
    on_round_end=None,
    verbose: bool = False,
) -> SimulationResult:
    """Run the composed config on the simulation engine; returns the run directory and metrics."""
    # Preflight, nothing written yet: names, numbers and types, the run directory's place,
    # the run ledger's integrity, every CSV node's data under its policy, then the engine.
    job = preflight_config(cfg_container)
    if job.vertical is not None:  # split learning after PSI (docs/vertical.md)
        return _simulate_vertical(job, verbose)
    dropout_rate(job.config)
    started = datetime.now(UTC)
    preflight(job, [n for n in job.nodes if n.data is not None])
    backend_name, backend_config = engine_backend_config(job, verbose)
    run_id, run_dir = prepare_run_dir(job.config)
    start_engine(backend_config)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        job = materialize_synthetic_nodes(job, run_dir / "nodes")
        nodes = preflight(job)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing half-written stays behind
        raise
    _write_resolved_config(job, run_dir)
    failure = run_engine(
        job,
        run_dir,
        lambda watch: watch.server_app(job, run_id, run_dir, on_round_end),
        make_client_app(_simulation_resolver(job)),
        (backend_name, backend_config),
        verbose,
    )
    if failure is not None:
        exc = failure
        if (run_dir / OUTCOME_FILE).exists():
            raise exc
        recorded = _rounds_recorded(run_dir)
        if not recorded:
            shutil.rmtree(run_dir, ignore_errors=True)  # only config.yaml and logs/ so far
        raise SimulationEngineError(
            f"simulation engine: stopped before the run ended ({type(exc).__name__}); "
            + (
                f"the partial run directory {run_dir} is kept for its recorded rounds"
                if recorded
                else "the partial run directory was removed"
            )
            + " (rule: simulation engine)"
        ) from exc
    outcome = json.loads((run_dir / OUTCOME_FILE).read_text(encoding="utf-8"))
    history = json.loads((run_dir / HISTORY_FILE).read_text(encoding="utf-8"))
    ledgers = _ledger_snapshots(job, nodes)
    completed = outcome["status"] == "completed"
    metrics = finalise_run(  # the one finaliser both engines use (confide.rundir)
        run_dir,
        job=job,
        run_id=run_id,
        outcome=outcome,
        history=history,
        evaluation=_pooled_evaluation(job, run_dir, nodes) if completed else None,
        epsilon=run_epsilon_from_snapshots(ledgers, run_id),
        policy_sha256={n.name: n.policy.sha256 for n in nodes},
        ledger_path=run_ledger_path(job.config),
        write_report=write_report,
        ledgers=ledgers,
        extra={"reproducibility": reproducibility_record(job.config, started)},
    )
    return SimulationResult(run_dir, outcome["status"], metrics)
