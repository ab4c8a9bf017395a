"""What a node does each round, free of Flower types: check the proposal against its own policy
and budget, train with DP-SGD, record spend in its ledger, evaluate on its held-out split.

Encoded data is cached per process, so rounds after the first neither re-read nor re-encode it.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from confide.clients.node_data import (
    NodeData,
    PreparedFrame,
    check_node_rules,
    encode_node,
    prepare_frame,
    train_rows,
)
from confide.job import NodeSpec
from confide.modeling.dp_accounting import DPSettings, DPState, calibrate
from confide.modeling.errors import ConfideError
from confide.modeling.factory import ModelSpec
from confide.modeling.local_training import train_local
from confide.modeling.metrics import binary_metrics, score_histograms
from confide.modeling.noise import noise_source
from confide.modeling.prediction import predict_proba
from confide.modeling.survival_eval import node_survival_reply
from confide.modeling.survival_model import loss_for_task
from confide.modeling.survival_spec import SurvivalTaskSpec
from confide.modeling.task_spec import TaskSpec
from confide.privacy import Keyring, PrivacyError, load_policy
from confide.privacy.budget_ledger import BudgetLedger
from confide.wire import SECURE_NOISE_METRIC, Proposal

__all__ = ["NodeRefusal", "NodeRuntime", "TrainOutcome", "round_seed"]

_CACHE: dict[tuple[Any, ...], Any] = {}


def _cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """Per-process cache with one entry per (stage, node): memory stays bounded."""
    if key not in _CACHE:
        value = build()
        for stale in [k for k in _CACHE if k[:2] == key[:2]]:
            del _CACHE[stale]
        _CACHE[key] = value
    return _CACHE[key]


class NodeRefusal(ConfideError):
    """The node declines the round; ``str(exc)`` is the reason it sends back."""


@dataclass(frozen=True)
class TrainOutcome:
    """A trained round: new weights, metrics for the server, DP state to keep locally."""

    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float]
    dp_state: dict[str, Any] | None


def round_seed(seed: int, node: str, server_round: int) -> int:
    """A per node, per round seed (stable across processes)."""
    return zlib.crc32(f"{seed}:{node}:{server_round}".encode())


def _accountant(state: DPState, dp: DPSettings) -> dict[str, Any]:
    """The accountant state a node keeps in its ledger entry for a run."""
    return {"mechanism": dp.accountant, **state.to_dict()}


def _file_stamp(path) -> tuple[str, int]:
    return (str(path), path.stat().st_mtime_ns if path.exists() else -1)


class NodeRuntime:
    """One node's side of a run.

    ``noise`` is the node's own DP noise source (``secure`` or ``seeded``): in deployment it comes
    from the SuperNode's ``--node-config`` (secure unless set) and overrides whatever the server
    proposes; ``None`` follows the proposal's ``dp-noise`` (simulation, seeded by default).
    """

    def __init__(
        self,
        node: NodeSpec,
        task: TaskSpec,
        model_net: ModelSpec,
        test_fraction: float,
        noise: str | None = None,
    ) -> None:
        self.node = node
        self.task = task
        self.model_net = model_net
        self.test_fraction = test_fraction
        self.noise = noise

    def noise_kind(self, proposal: Proposal) -> str:
        """The noise source this node uses: its own setting, else the proposal's ``dp-noise``."""
        return self.noise if self.noise is not None else proposal.dp.noise

    # -- data ---------------------------------------------------------------------------
    def _keyring(self) -> Keyring | None:
        return Keyring.load(self.node.keys) if self.node.keys is not None else None

    def _prepared(self) -> PreparedFrame:
        """Read, schema-check and transform the node's data once per process."""
        if self.node.data is None:
            raise NodeRefusal(f"node '{self.node.name}' has no data path (rule: data path)")
        return _cached(("prepared", *self._prepared_key()), self._read_and_transform)

    def _read_and_transform(self) -> PreparedFrame:
        policy = load_policy(self.node.policy)
        return prepare_frame(self.node.data, policy, self.task, self._keyring(), with_label=True)

    def checked_data(self, proposal: Proposal) -> tuple[NodeData, BudgetLedger | None]:
        """The node's encoded data, after its own policy accepted this proposal.

        Order: read and transform, then the shared rules (tiers vs task, DP, budget), and only
        then encode: a rule violation is reported as such, before any model input exists.
        """
        try:
            prepared = self._prepared()
            dp = proposal.dp
            ledger = (
                BudgetLedger(
                    self.node.default_ledger(), self.node.name, prepared.policy.dp.lifetime_epsilon
                )
                if dp.enabled
                else None
            )
            check_node_rules(
                self.node.name,
                prepared.policy,
                self.task,
                n_train_rows=train_rows(len(prepared.frame), self.test_fraction),
                dp_enabled=dp.enabled,
                epsilon=dp.epsilon if dp.enabled else None,
                delta=dp.delta if dp.enabled else None,
                lifetime_spent=ledger.spent(excluding_run=proposal.run_id) if ledger else 0.0,
            )
            key = ("encoded", *self._prepared_key(), self.test_fraction, proposal.seed)
            data = _cached(
                key,
                lambda: encode_node(
                    self.node.name,
                    prepared,
                    self.task,
                    str(self.node.data),
                    self.test_fraction,
                    proposal.seed,
                ),
            )
        except (ConfideError, PrivacyError) as exc:
            raise NodeRefusal(str(exc)) from exc
        return data, ledger

    def _prepared_key(self) -> tuple[Any, ...]:
        return (
            self.node.name,
            _file_stamp(self.node.data),
            _file_stamp(self.node.policy),
            self.task.fingerprint,
        )

    def _model(self, data: NodeData, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
        model = self.model_net.build(data.x_train.shape[1], out_dim=self.task.output_dim)
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as exc:
            raise NodeRefusal(
                f"node '{self.node.name}': the global model does not match the task's encoding "
                "(rule: model shape)"
            ) from exc
        return model

    def _max_epsilon(self, data: NodeData) -> float:
        limit = data.policy.dp.max_epsilon_per_run
        if self.node.max_epsilon_per_run is not None:
            limit = min(limit, self.node.max_epsilon_per_run)
        return limit

    # -- rounds -------------------------------------------------------------------------
    def _run_accountant(
        self, ledger: BudgetLedger, data: NodeData, proposal: Proposal
    ) -> tuple[DPState, float, float]:
        """The run's accountant state, its delta and its epsilon cap, all from the node's own
        ledger: reserved (and calibrated once) on the run's first round, continued after that.

        Whatever the server sends, a run is never recalibrated from zero once it has taken a
        step, and its epsilon may never pass min(reservation, lifetime remaining, per-run max).
        """
        name, dp, run_id = self.node.name, proposal.dp, proposal.run_id
        entry = ledger.run(run_id)
        if entry is None:
            state = calibrate(dp, len(data.y_train), proposal.train, proposal.rounds)
            ledger.reserve(run_id, dp.epsilon, dp.delta, accountant=_accountant(state, dp))
            entry = ledger.run(run_id)
            assert entry is not None  # just reserved under the ledger's lock
        saved = entry.get("accountant")
        if saved is None:
            if entry["steps"] > 0 or entry["spent_epsilon"] > 0:
                raise NodeRefusal(
                    f"node '{name}': run '{run_id}' has spent budget but the ledger holds no "
                    "accountant state for it; refusing to recalibrate from zero "
                    "(rule: accountant continuity)"
                )
            reserved = dataclasses.replace(dp, epsilon=float(entry["reserved_epsilon"]))
            state = calibrate(reserved, len(data.y_train), proposal.train, proposal.rounds)
            ledger.record(run_id, 0.0, 0, accountant=_accountant(state, dp))
            saved = _accountant(state, dp)
        if saved["mechanism"] != dp.accountant or float(entry["delta"]) != float(dp.delta):
            raise NodeRefusal(
                f"node '{name}': run '{run_id}' changed its accountant or delta after it "
                "started (rule: accountant continuity)"
            )
        cap = min(ledger.cap(run_id), self._max_epsilon(data))
        return DPState.from_dict(saved), float(entry["delta"]), cap

    def train(
        self,
        state_dict: dict[str, torch.Tensor],
        proposal: Proposal,
        dp_state: dict[str, Any] | None = None,
    ) -> TrainOutcome:
        """One round of local training; raises :class:`NodeRefusal` with the reason to send.

        ``dp_state`` (what a server or the node's context carried) is not trusted for
        accounting: the node's ledger holds the run's accountant state and is the only source.
        """
        del dp_state  # the ledger is authoritative; a carried copy may be stale or forged
        name = self.node.name
        dp = proposal.dp
        if proposal.train.batch_size < 1 or proposal.train.local_epochs < 1:
            raise NodeRefusal(f"node '{name}': malformed training proposal (rule: proposal)")
        node_max = self.node.max_epsilon_per_run
        if dp.enabled and node_max is not None and dp.epsilon > node_max:
            raise NodeRefusal(
                f"node '{name}': proposed epsilon {dp.epsilon:g} exceeds the node's maximum "
                f"{node_max:g} per run (rule: DP-EPS-RUN)"
            )
        data, ledger = self.checked_data(proposal)
        state, cap, delta = None, None, dp.delta
        if dp.enabled:
            assert ledger is not None  # checked_data opens the ledger whenever DP is on
            try:
                state, delta, cap = self._run_accountant(ledger, data, proposal)
            except PrivacyError as exc:
                raise NodeRefusal(f"node '{name}': {exc}") from exc
        model = self._model(data, state_dict)
        seed = round_seed(proposal.seed, name, proposal.server_round)
        try:
            noise = noise_source(self.noise_kind(proposal), seed)
            result = train_local(
                model,
                data.x_train,
                data.y_train,
                proposal.train,
                dp,
                state,
                seed=seed,
                max_epsilon=cap,
                noise=noise,
                loss=loss_for_task(self.task),
            )
        except ConfideError as exc:
            raise NodeRefusal(f"node '{name}': {exc}") from exc
        metrics: dict[str, float] = {
            "num-examples": float(len(data.y_train)),
            "train_loss": result.mean_loss,
            "steps": float(result.steps),
            "epsilon": 0.0,
            "delta": float(delta) if dp.enabled else 0.0,
            "noise_multiplier": 0.0,
        }
        new_state = None
        if dp.enabled and result.state is not None:
            epsilon = result.state.epsilon(delta, dp.accountant)
            try:
                ledger.record(  # type: ignore[union-attr]
                    proposal.run_id,
                    epsilon,
                    result.state.steps_taken,
                    accountant=_accountant(result.state, dp),
                )
            except PrivacyError as exc:
                raise NodeRefusal(f"node '{name}': {exc}") from exc
            metrics["epsilon"] = epsilon
            metrics["noise_multiplier"] = result.state.noise_multiplier
            metrics[SECURE_NOISE_METRIC] = 1.0 if noise.name == "secure" else 0.0
            new_state = result.state.to_dict()
        return TrainOutcome(model.state_dict(), metrics, new_state)

    def evaluate(self, state_dict: dict[str, torch.Tensor], proposal: Proposal) -> dict[str, Any]:
        """Metrics of the global model on the node's held-out split, plus pooled-metric sums."""
        data, _ = self.checked_data(proposal)
        model = self._model(data, state_dict)
        if isinstance(self.task, SurvivalTaskSpec):  # aggregates only, see survival_eval
            return node_survival_reply(model, data.x_test, data.y_test, self.task)
        prob = predict_proba(model, data.x_test)
        y = data.y_test
        clipped = np.clip(prob, 1e-7, 1 - 1e-7)
        loss_sum = float(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).sum())
        pos, neg = score_histograms(y, prob)
        local = binary_metrics(y, prob)
        return {
            "num-examples": float(len(y)),
            "loss_sum": loss_sum,
            "brier_sum": float(((prob - y) ** 2).sum()),
            "hist_pos": pos,
            "hist_neg": neg,
            **{f"local_{k}": v for k, v in local.items() if k != "n"},
        }
