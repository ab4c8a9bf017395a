"""The round loop: runs every round of a federation and returns the final global arrays.

Without SecAgg+ the rounds are the Message-API strategy's own ``start``; with ``secure.secagg``
on they run through Flower's ``SecAggPlusWorkflow`` (:func:`confide.server.secagg.
run_secagg_rounds`, which explains why it drives the rounds itself). Client-level DP is a
strategy wrapper (:mod:`confide.server.client_dp`) and needs nothing here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid

from confide.server.secagg import check_secagg_strategy, run_secagg_rounds
from confide.server.strategy import ConfideStrategy
from confide.settings import SecureSettings

__all__ = ["run_rounds"]


def run_rounds(
    strategy: ConfideStrategy,
    grid: Grid,
    strategy_cfg: Mapping[str, Any],
    secure: SecureSettings,
    initial_arrays: ArrayRecord,
    num_rounds: int,
    timeout: float,
    train_config: ConfigRecord,
    evaluate_config: ConfigRecord,
) -> ArrayRecord:
    """Run every round and return the final global arrays (``strategy_cfg`` is the job's
    ``strategy`` section: registry name and algorithm arguments)."""
    if not secure.secagg.enabled:
        result = strategy.start(
            grid=grid,
            initial_arrays=initial_arrays,
            num_rounds=num_rounds,
            timeout=timeout,
            train_config=train_config,
            evaluate_config=evaluate_config,
        )
        return result.arrays
    check_secagg_strategy(strategy_cfg)
    return run_secagg_rounds(
        strategy,
        grid,
        secure,
        initial_arrays,
        num_rounds,
        timeout,
        train_config,
        evaluate_config,
        int((strategy_cfg.get("algorithm") or {}).get("min_available_nodes", 2)),
    )
