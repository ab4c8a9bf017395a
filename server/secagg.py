"""Secure aggregation with Flower's SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``).

Why this module drives the rounds itself: in Flower 1.42 the SecAgg+ protocol exists only as a
*legacy* workflow. ``flwr.server.workflow.SecAggPlusWorkflow.__call__`` raises ``TypeError``
unless it gets a ``LegacyContext``; its setup stage asks ``context.strategy.configure_fit(...)``
(a legacy ``flwr.server.strategy.Strategy`` with a ``ClientManager``) for ``FitIns``, and its
unmask stage hands the unmasked sum to ``context.strategy.aggregate_fit(...)``. The
Message-API strategies (``flwr.serverapp.strategy.*``) expose only ``start()`` /
``configure_train`` / ``aggregate_train``, whose loop sends ``arrays``+``config`` messages and
aggregates plaintext ``ArrayRecord`` replies, with no hook for the four SecAgg+ stages; and
``secaggplus_mod`` reads the node's reply as a legacy ``FitRes`` (``fitres.parameters``,
``fitres.num_examples``). So a Message-API strategy cannot be combined with SecAgg+ in 1.42.

What Confide does instead, with Flower's own pieces and nothing re-implemented:

* training rounds: Flower's ``SecAggPlusWorkflow`` (subclassed only to stop early, before
  unmasking, when fewer than the minimum of nodes actually trained) with a legacy ``FedAvg``
  whose ``configure_fit`` sends Confide's proposal and whose ``aggregate_fit`` records each
  node's metrics and refusals in the run history. The aggregate it receives is already the
  unmasked weighted mean; the server never holds one node's weights. With client-level DP on,
  the legacy ``DifferentialPrivacyClientSideFixedClipping`` wraps it (nodes clip, the server
  adds noise to the secure sum).
* evaluation rounds: the Message-API :class:`~confide.server.strategy.ConfideStrategy` as
  usual (nodes report metrics, not weights).
* on the node, :mod:`confide.clients.secure_mods` routes SecAgg+ messages through
  ``secaggplus_mod`` and translates between the legacy ``FitIns``/``FitRes`` layout and the
  ClientApp's messages. A node that refuses a round sends a zero-weight masked vector (its
  reason travels in the plain ``fitres.metrics`` record), so it adds nothing to the sum.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict
from flwr.common import FitIns, FitRes, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import ServerConfig
from flwr.server.client_manager import ClientManager, SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.app_utils import start_update_client_manager_thread
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping as LegacyClientDP
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid

from confide.server.strategy import (
    ConfideStrategy,
    FederationStopped,
    check_secagg_strategy,
    stop_if_too_few,
)
from confide.settings import SecureConfigError, SecureSettings
from confide.wire import ARRAY_KEYS_KEY, PER_NODE_TRAIN_METRICS, STATUS_FAILED, STATUS_OK

__all__ = [
    "ConfideSecAggPlusWorkflow",
    "SecAggFedAvg",
    "check_secagg_strategy",
    "run_secagg_rounds",
]


def _fitres_status(res: FitRes) -> tuple[str, str, str]:
    metrics = res.metrics or {}
    return (
        str(metrics.get("node", "unknown")),
        str(metrics.get("status", STATUS_FAILED)),
        str(metrics.get("reason", "")),
    )


class SecAggFedAvg(LegacyFedAvg):
    """Legacy FedAvg that proposes Confide's job and records the round in the run history."""

    def __init__(
        self,
        confide: ConfideStrategy,
        train_config: Mapping[str, Any],
        array_keys: list[str],
        min_available_nodes: int,
    ) -> None:
        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=max(2, confide.min_train_nodes),
            min_evaluate_clients=0,
            min_available_clients=max(2, min_available_nodes, confide.min_train_nodes),
            accept_failures=True,
        )
        self.confide = confide
        self.train_config = dict(train_config)
        self.array_keys = list(array_keys)
        self.aggregated_rounds: set[int] = set()

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        pairs = super().configure_fit(server_round, parameters, client_manager)
        config = {
            **self.train_config,
            "server-round": server_round,
            ARRAY_KEYS_KEY: json.dumps(self.array_keys),
        }
        for _, fit_ins in pairs:
            fit_ins.config.update(config)
        return pairs

    def record_contributions(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]], failures: list
    ) -> int:
        """Record each node's metrics or refusal; returns how many nodes trained."""
        record = self.confide.recorder.round(server_round)
        trained = 0
        for _, res in sorted(results, key=lambda item: _fitres_status(item[1])[0]):
            node, status, reason = _fitres_status(res)
            if status == STATUS_OK:
                trained += 1
                record.train[node] = {
                    k: float(res.metrics[k]) for k in PER_NODE_TRAIN_METRICS if k in res.metrics
                }
            else:
                record.refused[node] = reason or "reply without a confide status"
        for failure in failures:
            text = f"secure aggregation: {failure}"
            if text not in record.failed:
                record.failed.append(text)
        return trained

    def aggregate_fit(self, server_round, results, failures):
        params, metrics = super().aggregate_fit(server_round, results, failures)
        if params is not None:
            self.aggregated_rounds.add(server_round)
        return params, metrics


class ConfideSecAggPlusWorkflow(SecAggPlusWorkflow):
    """Flower's SecAgg+ workflow that stops the run, before unmasking, when fewer than the
    minimum of nodes trained (all others refused or dropped out)."""

    def __init__(self, adapter: SecAggFedAvg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.adapter = adapter

    def collect_masked_vectors_stage(self, grid, context, state) -> bool:
        ok = super().collect_masked_vectors_stage(grid, context, state)
        server_round = int(
            context.state.config_records[MAIN_CONFIGS_RECORD][WorkflowKey.CURRENT_ROUND]
        )
        trained = self.adapter.record_contributions(
            server_round, state.legacy_results, state.failures
        )
        confide = self.adapter.confide
        stop_if_too_few(confide.recorder, server_round, trained, confide.min_train_nodes)
        return ok


def _to_parameters(arrays: ArrayRecord) -> Parameters:
    return ndarrays_to_parameters(arrays.to_numpy_ndarrays())


def _from_parameters(params: Parameters, like: ArrayRecord) -> ArrayRecord:
    ndarrays = parameters_to_ndarrays(params)
    reference = like.to_numpy_ndarrays()
    return ArrayRecord(
        {
            key: Array(np.asarray(value, dtype=ref.dtype).reshape(ref.shape))
            for key, value, ref in zip(like.keys(), ndarrays, reference, strict=True)
        }
    )


def run_secagg_rounds(
    strategy: ConfideStrategy,
    grid: Grid,
    secure: SecureSettings,
    initial_arrays: ArrayRecord,
    num_rounds: int,
    timeout: float,
    train_config: ConfigRecord,
    evaluate_config: ConfigRecord,
    min_available_nodes: int = 2,
) -> ArrayRecord:
    """All rounds with SecAgg+ for training and the Message-API strategy for evaluation."""
    adapter = SecAggFedAvg(
        strategy, dict(train_config), list(initial_arrays.keys()), min_available_nodes
    )
    legacy_strategy: Any = adapter
    cdp = secure.client_dp
    if cdp.enabled:
        legacy_strategy = LegacyClientDP(
            adapter, cdp.noise_multiplier, cdp.clipping_norm, max(2, strategy.min_train_nodes)
        )
    try:
        workflow = ConfideSecAggPlusWorkflow(
            adapter, **secure.secagg.workflow_kwargs(), timeout=timeout
        )
    except (TypeError, ValueError) as exc:
        raise SecureConfigError(f"secure.secagg: {exc} (rule: secure aggregation)") from exc
    base = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
    context = LegacyContext(
        base,
        config=ServerConfig(num_rounds=num_rounds),
        strategy=legacy_strategy,
        client_manager=SimpleClientManager(),
    )
    thread, f_stop, c_done = start_update_client_manager_thread(grid, context.client_manager)
    try:
        c_done.wait()
        cfg = ConfigRecord()
        context.state.config_records[MAIN_CONFIGS_RECORD] = cfg
        arrays = initial_arrays
        for server_round in range(1, num_rounds + 1):
            cfg[WorkflowKey.CURRENT_ROUND] = server_round
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
                _to_parameters(arrays), keep_input=True
            )
            workflow(grid, context)
            if server_round not in adapter.aggregated_rounds:
                strategy.recorder.flush()
                record = strategy.recorder.round(server_round)
                reasons = dict(record.refused)
                reasons.update({f"failure {i}": f for i, f in enumerate(record.failed)})
                raise FederationStopped(
                    f"round {server_round}: secure aggregation produced no aggregate (too few "
                    "nodes completed the SecAgg+ stages, or a node failed while client-level "
                    "DP was on)",
                    reasons or {"secure aggregation": "halted"},
                )
            arrays = _from_parameters(
                compat.arrayrecord_to_parameters(
                    context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
                ),
                initial_arrays,
            )
            replies = grid.send_and_receive(
                strategy.configure_evaluate(
                    server_round, arrays, ConfigRecord(dict(evaluate_config)), grid
                ),
                timeout=timeout,
            )
            strategy.aggregate_evaluate(server_round, replies)
        return arrays
    finally:
        f_stop.set()
        thread.join()
