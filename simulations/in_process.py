"""The one in-process FedAvg loop: the work of a Confide run, without Flower.

Each round every node runs :meth:`clients.node_runtime.NodeRuntime.train` on the global weights
(its policy and budget checks, DP-SGD, ledger), the server averages the returned state dicts
weighted by training rows (in node-name order, float32, as Flower's FedAvg does), then every node
runs :meth:`NodeRuntime.evaluate` and the pooled histograms give the round's global metrics.

Used by the membership-inference audit (so it attacks the model the product trains: same
encoding, policy, DP training code and float32 averaging), and by the benchmarks as the
yardstick for the simulation engine's overhead; on tiny data a test checks that a Flower run
computes exactly this.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from confide.clients.node_runtime import NodeRuntime
from confide.job import Job
from confide.modeling.factory import build_model
from confide.modeling.metrics import metrics_from_histograms
from confide.modeling.survival_eval import is_survival_reply, pooled_survival
from confide.wire import Proposal

__all__ = ["PlainRunResult", "plain_fedavg", "weighted_average"]


@dataclass
class PlainRunResult:
    """The final global weights, per-round wall seconds and global metrics, epsilon per node."""

    state_dict: dict[str, torch.Tensor]
    round_seconds: list[float] = field(default_factory=list)
    global_metrics: list[dict[str, float]] = field(default_factory=list)
    epsilon: dict[str, float] = field(default_factory=dict)


def weighted_average(
    updates: list[tuple[dict[str, torch.Tensor], float]],
) -> dict[str, torch.Tensor]:
    """FedAvg of ``(state_dict, weight)`` pairs, accumulated in order like Flower's FedAvg."""
    total = sum(weight for _, weight in updates)
    summed: dict[str, np.ndarray] = {}
    for state, weight in updates:
        factor = weight / total
        for key, value in state.items():
            contribution = value.detach().cpu().numpy() * factor
            if key in summed:
                summed[key] += contribution
            else:
                summed[key] = contribution
    return {k: torch.from_numpy(np.asarray(v)) for k, v in summed.items()}


def _pooled(replies: list[dict[str, Any]]) -> dict[str, float]:
    if is_survival_reply(replies[0]):
        return pooled_survival(replies)
    pos = np.sum([np.asarray(r["hist_pos"], dtype=float) for r in replies], axis=0)
    neg = np.sum([np.asarray(r["hist_neg"], dtype=float) for r in replies], axis=0)
    return metrics_from_histograms(
        pos, neg, sum(r["loss_sum"] for r in replies), sum(r["brier_sum"] for r in replies)
    )


def plain_fedavg(
    job: Job,
    run_id: str,
    runtimes: Sequence[NodeRuntime] | None = None,
    evaluate: bool = True,
) -> PlainRunResult:
    """Run ``job.rounds`` rounds of FedAvg in process over ``runtimes`` (default: one
    :class:`NodeRuntime` per node of the job, concrete data paths); ``evaluate=False`` skips
    the per-round federated evaluation (no global metrics)."""
    if runtimes is None:
        runtimes = [NodeRuntime(n, job.task, job.model_net, job.test_fraction) for n in job.nodes]
    runtimes = sorted(runtimes, key=lambda rt: rt.node.name)
    model = build_model(
        job.model_name, job.model_net.params, job.task.input_dim, job.seed, job.task.output_dim
    )
    global_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    dp_states: dict[str, dict[str, Any] | None] = {rt.node.name: None for rt in runtimes}
    result = PlainRunResult(global_state)
    for server_round in range(1, job.rounds + 1):
        start = time.perf_counter()
        proposal = Proposal(run_id, server_round, job.rounds, job.seed, job.dp, job.train)
        updates = []
        for rt in runtimes:
            outcome = rt.train(global_state, proposal, dp_states[rt.node.name])
            dp_states[rt.node.name] = outcome.dp_state
            result.epsilon[rt.node.name] = outcome.metrics["epsilon"]
            updates.append((outcome.state_dict, outcome.metrics["num-examples"]))
        global_state = weighted_average(updates)
        if evaluate:
            replies = [rt.evaluate(global_state, proposal) for rt in runtimes]
            result.global_metrics.append(_pooled(replies))
        result.round_seconds.append(time.perf_counter() - start)
    result.state_dict = global_state
    return result
