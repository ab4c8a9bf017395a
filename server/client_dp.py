"""Client-level DP on top of each node's sample-level DP-SGD (``secure.client_dp``).

The configured Message-API strategy is wrapped in Flower's own
``DifferentialPrivacyClientSideFixedClipping`` (nodes clip with ``fixedclipping_mod``) or
``DifferentialPrivacyServerSideFixedClipping`` (the server clips). The Gaussian noise of those
wrappers assumes an unweighted mean, so :class:`UniformWeights` weights every node equally.
With SecAgg+ on, :mod:`confide.server.secagg` adds the noise with Flower's legacy wrapper.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)

from confide.server.strategy_wrapper import StrategyWrapper
from confide.settings import SecureSettings

__all__ = ["UNIT_WEIGHT_KEY", "UniformWeights", "wrap_client_dp"]

UNIT_WEIGHT_KEY = "client-dp-unit-weight"


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


def wrap_client_dp(inner: Strategy, secure: SecureSettings, num_sampled_nodes: int) -> Strategy:
    """Wrap ``inner`` in Flower's fixed-clipping DP wrapper when ``secure.client_dp`` is on.

    ``num_sampled_nodes`` is the minimum number of training nodes: the noise standard deviation
    is ``noise_multiplier * clipping_norm / num_sampled_nodes``, so using the minimum never
    under-noises a round in which more nodes take part. With SecAgg+ on, the legacy wrapper in
    :mod:`confide.server.secagg` adds the noise instead and ``inner`` is returned unchanged."""
    cdp = secure.client_dp
    if not cdp.enabled or secure.secagg.enabled:
        return inner
    wrapper = (
        DifferentialPrivacyClientSideFixedClipping
        if cdp.clipping == "client"
        else DifferentialPrivacyServerSideFixedClipping
    )
    return wrapper(
        UniformWeights(inner), cdp.noise_multiplier, cdp.clipping_norm, max(1, num_sampled_nodes)
    )
