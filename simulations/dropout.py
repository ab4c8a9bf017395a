"""Simulated node dropout: a node is unavailable for a round, deterministically.

Whether node ``n`` drops out of round ``r`` depends only on (run seed, ``n``, ``r``) and
``simulation.dropout_rate``, so a run is reproducible and a sweep's points see the same
dropouts. A dropped node declines the round with the reason "simulated dropout" (it is
recorded among the round's refusals); the server continues with the others when
``strategy.algorithm.min_train_nodes`` allows.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.modeling.errors import ConfideError
from confide.wire import Proposal

__all__ = ["DropoutRuntime", "dropout_rate", "drops_out"]


def dropout_rate(config: Mapping[str, Any]) -> float:
    """``simulation.dropout_rate`` of a composed config, validated (0 when absent)."""
    raw = config.get("simulation", {}).get("dropout_rate") or 0.0
    try:
        rate = float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfideError("simulation.dropout_rate must be a number (rule: dropout)") from exc
    if not 0.0 <= rate < 1.0:
        raise ConfideError("simulation.dropout_rate must be in [0, 1) (rule: dropout)")
    return rate


def drops_out(seed: int, node: str, server_round: int, rate: float) -> bool:
    """True when ``node`` is unavailable in ``server_round`` (stable across processes)."""
    if rate <= 0.0:
        return False
    entropy = [int(seed), zlib.crc32(node.encode()), int(server_round), 0xD120]
    return bool(np.random.default_rng(entropy).random() < rate)


class DropoutRuntime(NodeRuntime):
    """A :class:`NodeRuntime` that is offline (declines train and evaluate) in dropped rounds."""

    def __init__(self, *args: Any, rate: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate = rate

    def _online(self, proposal: Proposal) -> None:
        if drops_out(proposal.seed, self.node.name, proposal.server_round, self.rate):
            raise NodeRefusal(
                f"node '{self.node.name}': simulated dropout in round {proposal.server_round} "
                f"(rule: simulation.dropout_rate={self.rate:g})"
            )

    def train(
        self,
        state_dict: dict[str, torch.Tensor],
        proposal: Proposal,
        dp_state: dict[str, Any] | None,
    ):
        """Decline when dropped, else train as the node would."""
        self._online(proposal)
        return super().train(state_dict, proposal, dp_state)

    def evaluate(self, state_dict: dict[str, torch.Tensor], proposal: Proposal) -> dict[str, Any]:
        """Decline when dropped, else evaluate as the node would."""
        self._online(proposal)
        return super().evaluate(state_dict, proposal)
