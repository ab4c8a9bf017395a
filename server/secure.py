"""Options on top of each node's sample-level DP: client-level DP and secure aggregation.

Config group ``secure`` (``conf/secure``): ``secure.client_dp`` and ``secure.secagg``.

* Client-level DP wraps the configured Message-API strategy in Flower's own
  ``DifferentialPrivacyClientSideFixedClipping`` (nodes clip with ``fixedclipping_mod``) or
  ``DifferentialPrivacyServerSideFixedClipping`` (the server clips). The Gaussian noise of those
  wrappers assumes an unweighted mean, so :class:`UniformWeights` weights every node equally.
* SecAgg+ runs through :mod:`server.secagg` (see there why it cannot use the Message-API
  strategy's own loop in Flower 1.42).

:func:`start_federation` is the single entry the ServerApp calls to run all rounds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)

from confide.modeling.errors import ConfideError
from confide.server.strategy import StrategyWrapper

__all__ = [
    "UNIT_WEIGHT_KEY",
    "SecureConfigError",
    "UniformWeights",
    "client_dp_enabled",
    "secagg_enabled",
    "start_federation",
    "wrap_client_dp",
]

UNIT_WEIGHT_KEY = "client-dp-unit-weight"
_AGGREGATORS_WITH_SECAGG = ("FedAvg", "FedProx")


class SecureConfigError(ConfideError):
    """The ``secure`` config asks for something that cannot be done safely."""


def _section(secure_cfg: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    return dict((secure_cfg or {}).get(key) or {})


def client_dp_enabled(secure_cfg: Mapping[str, Any] | None) -> bool:
    """Whether client-level DP (Flower's fixed-clipping wrappers) is on."""
    return bool(_section(secure_cfg, "client_dp").get("enabled", False))


def secagg_enabled(secure_cfg: Mapping[str, Any] | None) -> bool:
    """Whether SecAgg+ is on."""
    return bool(_section(secure_cfg, "secagg").get("enabled", False))


def client_dp_settings(secure_cfg: Mapping[str, Any] | None) -> tuple[str, float, float]:
    """``(clipping, noise_multiplier, clipping_norm)``, validated."""
    cdp = _section(secure_cfg, "client_dp")
    clipping = str(cdp.get("clipping", "client"))
    try:
        noise, norm = float(cdp["noise_multiplier"]), float(cdp["clipping_norm"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SecureConfigError(
            "secure.client_dp needs numeric noise_multiplier and clipping_norm (rule: client DP)"
        ) from exc
    if clipping not in {"client", "server"}:
        raise SecureConfigError(
            "secure.client_dp.clipping must be client or server (rule: client DP)"
        )
    if noise <= 0 or norm <= 0:
        raise SecureConfigError(
            "secure.client_dp.noise_multiplier and clipping_norm must be > 0 (rule: client DP)"
        )
    if clipping == "server" and secagg_enabled(secure_cfg):
        raise SecureConfigError(
            "secure.client_dp.clipping=server cannot work with SecAgg+: the server never sees "
            "one node's update to clip it; use clipping=client (rule: client DP)"
        )
    return clipping, noise, norm


class UniformWeights(StrategyWrapper):
    """Gives every reply the same weight (``UNIT_WEIGHT_KEY`` = 1) before the inner strategy
    aggregates: the client-level DP noise is calibrated for an unweighted mean."""

    @staticmethod
    def _unit(replies: Iterable[Message]) -> list[Message]:
        out = list(replies)
        for msg in out:
            if not msg.has_error():
                for record in msg.content.metric_records.values():
                    record[UNIT_WEIGHT_KEY] = 1.0
        return out

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.inner.aggregate_train(server_round, self._unit(replies))

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, self._unit(replies))


def wrap_client_dp(
    inner: Strategy, secure_cfg: Mapping[str, Any] | None, num_sampled_nodes: int
) -> Strategy:
    """Wrap ``inner`` in Flower's fixed-clipping DP wrapper when ``secure.client_dp`` is on.

    ``num_sampled_nodes`` is the minimum number of training nodes: the noise standard deviation
    is ``noise_multiplier * clipping_norm / num_sampled_nodes``, so using the minimum never
    under-noises a round in which more nodes take part. With SecAgg+ on, the legacy wrapper in
    :mod:`server.secagg` adds the noise instead and ``inner`` is returned unchanged."""
    if not client_dp_enabled(secure_cfg):
        return inner
    clipping, noise, norm = client_dp_settings(secure_cfg)
    if secagg_enabled(secure_cfg):
        return inner
    wrapper = (
        DifferentialPrivacyClientSideFixedClipping
        if clipping == "client"
        else DifferentialPrivacyServerSideFixedClipping
    )
    return wrapper(UniformWeights(inner), noise, norm, max(1, int(num_sampled_nodes)))


def check_secagg_strategy(algorithm_cfg: Mapping[str, Any]) -> None:
    """SecAgg+ only yields the weighted mean: refuse server optimisers that need more."""
    target = str(algorithm_cfg.get("_target_", ""))
    if target.rsplit(".", 1)[-1] not in _AGGREGATORS_WITH_SECAGG:
        raise SecureConfigError(
            f"secure.secagg works with strategy fedavg or fedprox, not '{target}': SecAgg+ "
            "reveals only the weighted mean of the nodes' weights (rule: secure aggregation)"
        )


def start_federation(
    strategy: Any,
    grid: Grid,
    job_config: Mapping[str, Any],
    initial_arrays: ArrayRecord,
    num_rounds: int,
    timeout: float,
    train_config: ConfigRecord,
    evaluate_config: ConfigRecord,
) -> ArrayRecord:
    """Run every round and return the final global arrays.

    Without SecAgg+ this is the Message-API strategy's own ``start``; with it, the rounds run
    through Flower's ``SecAggPlusWorkflow`` (:func:`server.secagg.run_secagg_rounds`)."""
    secure_cfg = job_config.get("secure") or {}
    if not secagg_enabled(secure_cfg):
        result = strategy.start(
            grid=grid,
            initial_arrays=initial_arrays,
            num_rounds=num_rounds,
            timeout=timeout,
            train_config=train_config,
            evaluate_config=evaluate_config,
        )
        return result.arrays
    from confide.server.secagg import run_secagg_rounds

    check_secagg_strategy(job_config["strategy"]["algorithm"])
    return run_secagg_rounds(
        strategy,
        grid,
        secure_cfg,
        initial_arrays,
        num_rounds,
        timeout,
        train_config,
        evaluate_config,
        int(job_config["strategy"]["algorithm"].get("min_available_nodes", 2)),
    )
