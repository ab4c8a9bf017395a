"""The Flower floor: plain Flower, same engine, same messages, no work at the nodes.

A ServerApp runs Flower's own ``FedAvg`` (Message API) for ``rounds`` rounds over ``n`` simulated
nodes; a ClientApp answers every train message with the arrays it received and the same
metric keys a Confide node sends (train loss, steps, epsilon, ...) and every evaluate message
with Confide's evaluation metrics (score histograms of the same bin count, local metrics), all
zero, and a status record like Confide's. The train/evaluate configs are a Confide proposal.
It runs on the same simulation engine with the same backend config as ``confide simulate``
(:func:`confide.simulations.simulate.engine_backend_config`). What a steady round costs here is
what Flower and Ray charge for the message path alone: Confide cannot go below it.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

from confide.benchmarks.common import median
from confide.job import Job
from confide.modeling.factory import build_model
from confide.modeling.metrics import binary_metrics, score_histograms
from confide.simulations.simulate import engine_backend_config, start_engine
from confide.wire import PER_NODE_TRAIN_METRICS, STATUS_KEY, STATUS_OK, Proposal

__all__ = ["evaluate_reply_metrics", "floor_apps", "run_floor", "train_reply_metrics"]


def train_reply_metrics() -> dict[str, float]:
    """A train reply's metric keys as a Confide node sends them (values zero)."""
    return dict.fromkeys((*PER_NODE_TRAIN_METRICS, "delta"), 0.0) | {"num-examples": 1.0}


def evaluate_reply_metrics() -> dict[str, Any]:
    """An evaluate reply's metrics as a Confide node sends them: pooled sums, the score
    histograms (same bin count) and the node's local metrics (same keys), all zero."""
    y, p = np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.1, 0.8, 0.3, 0.6])
    pos, neg = score_histograms(y, p)
    local = {f"local_{k}": 0.0 for k in binary_metrics(y, p) if k != "n"}
    return {
        "num-examples": 1.0,
        "loss_sum": 0.0,
        "brier_sum": 0.0,
        "hist_pos": [0.0] * len(pos),
        "hist_neg": [0.0] * len(neg),
        **local,
    }


class _RoundClock(FedAvg):
    """FedAvg that notes when each round ends (where Confide's recorder closes a round)."""

    def __init__(self, ends: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ends = ends

    def aggregate_evaluate(self, server_round: int, replies):  # type: ignore[override]
        result = super().aggregate_evaluate(server_round, replies)
        self.ends.append(time.perf_counter())
        return result


def _aggregate_nothing(records: list[RecordDict], weighting_key: str) -> MetricRecord:
    return MetricRecord({weighting_key: float(len(records))})


def floor_apps(job: Job, n_nodes: int, ends: list[float]) -> tuple[ServerApp, ClientApp]:
    """The no-work ServerApp and ClientApp for ``job``'s model and proposal over ``n_nodes``."""
    train_metrics, eval_metrics = train_reply_metrics(), evaluate_reply_metrics()
    model = build_model(job.model_name, job.model_net.params, job.task.input_dim, seed=job.seed)
    proposal = Proposal("flower-floor", 0, job.rounds, job.seed, job.dp, job.train).to_config()
    server, client = ServerApp(), ClientApp()

    def _reply(msg: Message, records: dict[str, Any]) -> Message:
        content = RecordDict(records)
        content[STATUS_KEY] = ConfigRecord({"node": "floor", "status": STATUS_OK, "reason": ""})
        return Message(content=content, reply_to=msg)

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        records = {"arrays": msg.content["arrays"], "metrics": MetricRecord(train_metrics)}
        return _reply(msg, records)

    @client.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return _reply(msg, {"metrics": MetricRecord(eval_metrics)})

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        torch.set_num_threads(1)
        while len(list(grid.get_node_ids())) < n_nodes:  # as Confide waits for its nodes
            time.sleep(0.05)
        ends.append(time.perf_counter())
        strategy = _RoundClock(
            ends,
            min_train_nodes=n_nodes,
            min_evaluate_nodes=n_nodes,
            min_available_nodes=n_nodes,
            train_metrics_aggr_fn=_aggregate_nothing,
            evaluate_metrics_aggr_fn=_aggregate_nothing,
        )
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=job.rounds,
            timeout=float(job.config["run"]["timeout_s"]),
            train_config=ConfigRecord(dict(proposal)),
            evaluate_config=ConfigRecord(dict(proposal)),
        )

    return server, client


def run_floor(job: Job) -> dict[str, Any]:
    """Run the floor for ``job`` (its node count, rounds, model and backend config)."""
    n_nodes = len(job.nodes)
    backend_name, backend_config = engine_backend_config(job, verbose=False)
    ends: list[float] = []
    start = time.perf_counter()
    start_engine(backend_config)
    server, client = floor_apps(job, n_nodes, ends)
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=n_nodes,
        backend_name=backend_name,
        backend_config=backend_config,
    )
    total = time.perf_counter() - start
    rounds = [b - a for a, b in itertools.pairwise(ends)]
    if len(rounds) != job.rounds:
        raise RuntimeError(f"flower floor: {len(rounds)} of {job.rounds} rounds completed")
    steady = median(rounds[1:] or rounds)
    return {
        "total_s": total,
        "round_s": rounds,
        "steady_round_s": steady,
        "per_message_ms": steady / (2 * n_nodes) * 1000,
    }
