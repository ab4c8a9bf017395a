"""Strategy construction by registry name (:mod:`confide.strategy_spec`), and the wrapper
Confide puts around it.

The wrapper (like Flower's DP wrappers, it wraps rather than copies) sorts replies by node so
aggregation is deterministic, separates nodes that refused (with their reasons) from nodes that
trained, records per-node metrics and epsilon, and stops the run with the reasons when fewer
nodes than the minimum could train.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, Strategy

from confide.modeling.errors import ConfideError
from confide.server.aggregation import aggregate_eval_metrics, aggregate_train_metrics
from confide.server.client_dp import UNIT_WEIGHT_KEY, wrap_client_dp
from confide.server.recorder import RunRecorder
from confide.server.strategy_wrapper import StrategyWrapper
from confide.settings import SecureConfigError, SecureSettings
from confide.strategy_spec import STRATEGIES, StrategyConfigError, parse_strategy
from confide.wire import PER_NODE_TRAIN_METRICS, STATUS_FAILED, STATUS_KEY, STATUS_OK

__all__ = [
    "STRATEGY_CLASSES",
    "ConfideStrategy",
    "FederationStopped",
    "build_strategy",
    "check_secagg_strategy",
    "stop_if_too_few",
]


class FederationStopped(ConfideError):
    """Too few nodes could take part; ``reasons`` maps node to its refusal."""

    def __init__(self, message: str, reasons: dict[str, str]) -> None:
        super().__init__(message)
        self.reasons = reasons


#: The Flower class of each registered strategy name (the registry itself, with each strategy's
#: allowed arguments, is Flower-free: :data:`confide.strategy_spec.STRATEGIES`).
STRATEGY_CLASSES: Mapping[str, type[Strategy]] = MappingProxyType(
    {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}
)


def build_strategy(
    strategy_cfg: Mapping[str, Any], secure: SecureSettings | None = None
) -> Strategy:
    """Build the registered Flower strategy named in ``strategy_cfg`` (``name`` plus validated
    ``algorithm`` keyword arguments) with Confide's metric aggregation; with ``secure.client_dp``
    on, wrapped in Flower's fixed-clipping DP wrapper (server.client_dp). With SecAgg+ on, a
    strategy that needs more than the weighted mean is refused."""
    secure = secure if secure is not None else SecureSettings()
    entry, kwargs = parse_strategy(strategy_cfg)
    if secure.secagg.enabled:
        check_secagg_strategy(strategy_cfg)
    extra = {"weighted_by_key": UNIT_WEIGHT_KEY} if secure.unit_weights else {}
    cls = STRATEGY_CLASSES.get(entry.name)
    if cls is None:
        raise StrategyConfigError(
            f"strategy.name: '{entry.name}' has no server implementation (rule: strategy registry)"
        )
    inner = cls(
        **kwargs,
        train_metrics_aggr_fn=aggregate_train_metrics,
        evaluate_metrics_aggr_fn=aggregate_eval_metrics,
        **extra,
    )
    return wrap_client_dp(inner, secure, int(kwargs.get("min_train_nodes", 1)))


def check_secagg_strategy(strategy_cfg: Mapping[str, Any]) -> None:
    """SecAgg+ only yields the weighted mean: refuse server optimisers that need more."""
    entry, _ = parse_strategy(strategy_cfg)
    if not entry.secagg:
        allowed = " or ".join(name for name in STRATEGIES if STRATEGIES.get(name).secagg)
        raise SecureConfigError(
            f"secure.secagg works with strategy {allowed}, not '{entry.name}': SecAgg+ "
            "reveals only the weighted mean of the nodes' weights (rule: secure aggregation)"
        )


def _status(msg: Message) -> tuple[str, str, str]:
    record = msg.content.config_records.get(STATUS_KEY)
    if record is None:
        return "unknown", STATUS_FAILED, "reply without a confide status record"
    return str(record["node"]), str(record["status"]), str(record.get("reason", ""))


def stop_if_too_few(recorder: RunRecorder, server_round: int, trained: int, minimum: int) -> None:
    """Raise :class:`FederationStopped` with every node's reason when too few nodes trained."""
    if trained >= minimum:
        return
    recorder.flush()
    record = recorder.round(server_round)
    reasons = dict(record.refused)
    reasons.update({f"failure {i}": f for i, f in enumerate(record.failed)})
    detail = "; ".join(f"{n}: {r}" for n, r in reasons.items()) or "no replies"
    raise FederationStopped(
        f"round {server_round}: only {trained} node(s) trained, fewer than the "
        f"minimum of {minimum} ({detail})",
        reasons,
    )


class ConfideStrategy(StrategyWrapper):
    """Wraps a Flower strategy: refusals, determinism, per-node history, early stop."""

    def __init__(self, inner: Strategy, recorder: RunRecorder, min_train_nodes: int) -> None:
        super().__init__(inner)
        self.recorder = recorder
        self.min_train_nodes = min_train_nodes

    def _split(self, server_round: int, replies: Iterable[Message]) -> list[tuple[str, Message]]:
        record = self.recorder.round(server_round)
        accepted: list[tuple[str, Message]] = []
        for msg in replies:
            if msg.has_error():
                record.failed.append(f"node {msg.metadata.src_node_id}: {msg.error.reason}")
                continue
            node, status, reason = _status(msg)
            if status == STATUS_OK:
                accepted.append((node, msg))
            else:
                record.refused[node] = reason
        accepted.sort(key=lambda item: item[0])
        return accepted

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        accepted = self._split(server_round, replies)
        record = self.recorder.round(server_round)
        for node, msg in accepted:
            metrics = msg.content["metrics"]
            record.train[node] = {
                k: float(metrics[k]) for k in PER_NODE_TRAIN_METRICS if k in metrics
            }
        stop_if_too_few(self.recorder, server_round, len(accepted), self.min_train_nodes)
        return self.inner.aggregate_train(server_round, [m for _, m in accepted])

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        accepted = self._split(server_round, replies)
        record = self.recorder.round(server_round)
        for node, msg in accepted:
            metrics = msg.content["metrics"]
            record.evaluate[node] = {
                k.removeprefix("local_"): float(v)
                for k, v in metrics.items()
                if k.startswith("local_") or k == "num-examples"
            }
            if "hist_pos" in metrics and "hist_neg" in metrics:
                record.add_histogram(list(metrics["hist_pos"]), list(metrics["hist_neg"]))
        result = self.inner.aggregate_evaluate(server_round, [m for _, m in accepted])
        if result is not None:
            record.global_metrics = {k: float(v) for k, v in result.items()}
        self.recorder.finish_round(server_round)
        return result
