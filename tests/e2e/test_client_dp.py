"""Client-level DP does what it says: nodes clip their update, the server averages unweighted
and adds Gaussian noise of std ``noise_multiplier * clipping_norm / min_train_nodes``.

The first two tests run the real server strategy (as ``run_federation`` builds it) and the real
ClientApp mod chain in process, with a stub node runtime whose update is chosen by the test; the
last one runs ``secure=secagg_client_dp`` through Flower's simulation engine.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from scipy import stats

from confide.clients.client_app import make_client_app
from confide.clients.node_runtime import TrainOutcome
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.server.recorder import RunRecorder
from confide.server.strategy import ConfideStrategy, build_strategy
from confide.settings import parse_secure
from confide.simulations.simulate import simulate
from confide.wire import Proposal
from tests.epsilon_checks import assert_run_epsilon

GLOBAL = {"w": torch.tensor([0.5, -1.0, 2.0]), "b": torch.tensor([0.25])}
# node id -> its local update (trained weights minus the global weights)
UPDATES = {
    101: {"w": torch.tensor([3.0, 4.0, 0.0]), "b": torch.tensor([0.0])},  # norm 5: clipped
    102: {"w": torch.tensor([0.5, 0.0, 0.0]), "b": torch.tensor([0.5])},  # norm 0.71: kept
    103: {"w": torch.tensor([0.0, -6.0, 8.0]), "b": torch.tensor([0.0])},  # norm 10: clipped
}
ROWS = {101: 5000.0, 102: 300.0, 103: 40.0}  # very unequal: a weighted mean would differ


class _Grid:
    """What a strategy's configure_train needs of Flower's Grid: the connected node ids."""

    def get_node_ids(self) -> list[int]:
        return sorted(UPDATES)


class _Node:
    """A node runtime whose training adds a fixed update to the weights it receives."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.node = SimpleNamespace(name=f"node{node_id}")

    def train(self, state_dict, proposal, dp_state) -> TrainOutcome:
        trained = {k: v + UPDATES[self.node_id][k] for k, v in state_dict.items()}
        metrics = {
            "num-examples": ROWS[self.node_id],
            "train_loss": 0.5,
            "steps": 1.0,
            "epsilon": 0.0,
            "delta": 0.0,
            "noise_multiplier": 0.0,
        }
        return TrainOutcome(trained, metrics, None)


@pytest.fixture
def flower_task(monkeypatch):
    """The process identity Flower's Message constructor reads (set by its engines)."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 7)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


def _round(tmp_path: Path, noise_multiplier: float):
    """Build the strategy as run_federation does (``secure=client_dp``, three nodes minimum),
    send round 1 through every node's real ClientApp, and return (strategy, replies)."""
    config = to_container(
        compose_config(
            [
                "secure=client_dp",
                "strategy.algorithm.min_train_nodes=3",
                "strategy.algorithm.min_available_nodes=3",
            ]
        )
    )
    secure = parse_secure(config)
    assert secure.client_dp.clipping_norm == 2.0 and secure.client_dp.clipping == "client"
    secure = replace(secure, client_dp=replace(secure.client_dp, noise_multiplier=noise_multiplier))
    inner = build_strategy(config["strategy"], secure)
    strategy = ConfideStrategy(inner, RunRecorder(tmp_path / "history.json"), 3)
    job = parse_job(config)
    proposal = Proposal("run-cdp", 0, 1, 42, job.dp, job.train).to_config()
    messages = strategy.configure_train(
        1, ArrayRecord(GLOBAL), ConfigRecord(dict(proposal)), _Grid()
    )
    replies = []
    for msg in messages:
        node_id = msg.metadata.dst_node_id
        app = make_client_app(lambda _ctx, node_id=node_id: _Node(node_id))
        context = Context(7, node_id, {}, RecordDict(), {})
        replies.append(app(msg, context))
    assert len(replies) == 3 and not any(r.has_error() for r in replies)
    return strategy, replies


def _manual_clip_and_average(clip: float) -> dict[str, torch.Tensor]:
    clipped = []
    for update in UPDATES.values():
        norm = math.sqrt(sum(float((t**2).sum()) for t in update.values()))
        scale = min(1.0, clip / norm)
        clipped.append({k: t * scale for k, t in update.items()})
    return {k: GLOBAL[k] + sum(c[k] for c in clipped) / len(clipped) for k in GLOBAL}


def test_zero_noise_aggregate_is_the_manual_clip_and_unweighted_average(tmp_path, flower_task):
    strategy, replies = _round(tmp_path, noise_multiplier=0.0)
    arrays, _ = strategy.aggregate_train(1, replies)
    got = arrays.to_torch_state_dict()
    expected = _manual_clip_and_average(2.0)
    for key in GLOBAL:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6)
    # controls: without clipping, or weighted by rows, the aggregate would be far from this one
    unclipped = _manual_clip_and_average(1e9)
    assert float((unclipped["w"] - got["w"]).abs().max()) > 1.0
    weighted = GLOBAL["w"] + sum(UPDATES[n]["w"] * ROWS[n] for n in UPDATES) / sum(ROWS.values())
    assert float((weighted - got["w"]).abs().max()) > 0.5


def test_noise_spread_matches_the_configured_scale(tmp_path, flower_task):
    """Chi-square test of the noise against std = 0.5 * 2.0 / 3 (noise multiplier, clipping
    norm, minimum training nodes). Two-sided, false-alarm rate 1e-6; the same statistic
    rejects a scale 10% off either way (checked below), so the test has power."""
    sigma, clip, nodes = 0.5, 2.0, 3
    std = sigma * clip / nodes
    strategy, replies = _round(tmp_path, noise_multiplier=sigma)
    mean = _manual_clip_and_average(clip)
    np.random.seed(20261130)  # Flower draws the noise from NumPy's global generator
    draws = []
    for _ in range(500):
        arrays, _ = strategy.aggregate_train(1, replies)
        got = arrays.to_torch_state_dict()
        draws.append(np.concatenate([(got[k] - mean[k]).numpy().ravel() for k in GLOBAL]))
    noise = np.concatenate(draws).astype(np.float64)
    n = noise.size  # 500 aggregates x 4 parameters
    alpha = 1e-6
    low, high = stats.chi2.ppf(alpha / 2, n), stats.chi2.ppf(1 - alpha / 2, n)

    def statistic(scale: float) -> float:
        return float(((noise / scale) ** 2).sum())

    assert low <= statistic(std) <= high
    assert abs(noise.mean()) <= stats.norm.ppf(1 - alpha / 2) * std / math.sqrt(n)
    assert not low <= statistic(1.1 * std) <= high  # power: a 10% error is detected
    assert not low <= statistic(0.9 * std) <= high


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_secagg_with_client_dp_runs_through_flower(tmp_path):
    overrides = [
        f"run.root={tmp_path / 'runs'}",
        "secure=secagg_client_dp",
        "federation.nodes.0.rows=500",
        "federation.nodes.1.rows=300",
        "rounds=1",
        "train.local_epochs=1",
        "baselines.enabled=false",
        "run.quiet=true",
    ]
    result = simulate(to_container(compose_config(overrides)))
    assert result.status == "completed"
    history = json.loads((result.run_dir / "history.json").read_text("utf-8"))
    (record,) = history["rounds"]
    assert set(record["train"]) == {"retailer", "ecommerce"} and not record["refused"]
    log = (result.run_dir / "logs" / "run.log").read_text("utf-8")
    assert "central DP noise with 0.5000 stdev added" in log  # 0.5 x 2.0 / 2 nodes
    for name, stats_ in record["train"].items():  # sample-level DP still at its target
        assert_run_epsilon(
            stats_["epsilon"],
            target=3.0,
            delta=1e-5,
            train_rows=result.metrics["nodes"][name]["train_rows"],
            batch_size=256,
            local_epochs=1,
            rounds=1,
        )
