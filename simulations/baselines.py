"""Baselines on the same data and preprocessing as the federation: centralised (pooled data,
with and without DP) and local-only (each node alone, under its DP settings).

They answer "what does federation buy?" in every run. Flower is not involved. Training is
deterministic in its inputs, so identical trainings (a sweep's points on one data set) are
memoised per process: the non-private centralised baseline is trained once per data set.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, replace

import numpy as np
from torch import nn

from confide.clients.node_data import NodeData
from confide.job import Job
from confide.modeling.dp_accounting import DPSettings, calibrate
from confide.modeling.factory import build_model
from confide.modeling.local_training import train_local
from confide.modeling.metrics import binary_metrics, score_histograms
from confide.modeling.noise import noise_source
from confide.modeling.prediction import predict_proba
from confide.modeling.survival_model import loss_for_task

__all__ = ["BaselineResult", "pooled_test", "run_baselines", "train_alone"]

_MEMO: dict[str, tuple[nn.Module, float]] = {}
_MEMO_SIZE = 32


@dataclass(frozen=True)
class BaselineResult:
    """Metrics of one baseline on the pooled test set and, for local-only, the node's own."""

    name: str
    pooled: dict[str, float]
    own: dict[str, float] | None = None
    epsilon: float = 0.0
    rows: int = 0
    histogram: tuple[list[int], list[int]] | None = None  # pooled-test scores (pos, neg)


def pooled_test(nodes: list[NodeData]) -> tuple[np.ndarray, np.ndarray]:
    """All nodes' held-out splits together (the federation-wide test set)."""
    return (
        np.concatenate([n.x_test for n in nodes]),
        np.concatenate([n.y_test for n in nodes]),
    )


def _memo_key(job: Job, x: np.ndarray, y: np.ndarray, dp: DPSettings, seed: int) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    settings = [job.model_net, asdict(job.train), job.rounds, job.seed, asdict(dp), seed]
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def train_alone(job: Job, x: np.ndarray, y: np.ndarray, dp: DPSettings, seed: int):
    """Train the job's model on one data set for the run's total epochs; returns (model, eps)."""
    key = _memo_key(job, x, y, dp, seed)
    if key in _MEMO:
        model, epsilon = _MEMO[key]
        return copy.deepcopy(model), epsilon
    model, epsilon = _train_alone(job, x, y, dp, seed)
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = (copy.deepcopy(model), epsilon)
    return model, epsilon


def _train_alone(job: Job, x: np.ndarray, y: np.ndarray, dp: DPSettings, seed: int):
    train = replace(job.train, local_epochs=job.rounds * job.train.local_epochs, proximal_mu=0.0)
    model = build_model(
        job.model_name, job.model_net.params, x.shape[1], job.seed, job.task.output_dim
    )
    state = calibrate(dp, len(y), train, rounds=1) if dp.enabled else None
    noise = noise_source(dp.noise, seed)  # the job's source: seeded unless dp.noise=secure
    result = train_local(
        model, x, y, train, dp, state, seed=seed, noise=noise, loss=loss_for_task(job.task)
    )
    epsilon = result.state.epsilon(dp.delta, dp.accountant) if result.state else 0.0
    return model, epsilon


def _evaluated(name, model, x_test, y_test, **extra) -> BaselineResult:
    prob = predict_proba(model, x_test)
    return BaselineResult(
        name, binary_metrics(y_test, prob), histogram=score_histograms(y_test, prob), **extra
    )


def run_baselines(job: Job, nodes: list[NodeData]) -> list[BaselineResult]:
    """Centralised without DP, centralised with the job's DP, and each node alone."""
    x_test, y_test = pooled_test(nodes)
    x_all = np.concatenate([n.x_train for n in nodes])
    y_all = np.concatenate([n.y_train for n in nodes])
    no_dp = replace(job.dp, enabled=False)
    model, _ = train_alone(job, x_all, y_all, no_dp, seed=job.seed)
    results = [_evaluated("centralised", model, x_test, y_test, rows=len(y_all))]
    if job.dp.enabled:
        model, eps = train_alone(job, x_all, y_all, job.dp, seed=job.seed + 1)
        results.append(
            _evaluated("centralised_dp", model, x_test, y_test, epsilon=eps, rows=len(y_all))
        )
    for index, node in enumerate(nodes):
        model, eps = train_alone(job, node.x_train, node.y_train, job.dp, seed=job.seed + 2 + index)
        own = binary_metrics(node.y_test, predict_proba(model, node.x_test))
        rows = len(node.y_train) + len(node.y_test)
        results.append(
            _evaluated(
                f"local_only:{node.name}", model, x_test, y_test, own=own, epsilon=eps, rows=rows
            )
        )
    return results
