"""A node's data checked the way training checks it, without loading torch or Flower.

Read the CSV through the one node reader, check and transform it under the node's policy, run
the shared rules (tiers against the task, DP limits, the lifetime budget left in the node's
ledger) and encode it from the task spec. ``confide simulate`` runs this before it loads the
simulation engine, so bad input costs seconds; ``confide node check`` runs it for a partner.
"""

from __future__ import annotations

from collections.abc import Iterable

from confide.clients.node_data import (
    NodeData,
    check_node_rules,
    encode_node,
    prepare_frame,
    train_rows,
)
from confide.job import Job, NodeSpec
from confide.modeling.errors import DataError
from confide.modeling.task_spec import TaskSpec
from confide.modeling.training_settings import DPSettings
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.keys import Keyring
from confide.privacy.policy import load_policy

__all__ = ["check_node_data", "preflight_data"]


def check_node_data(
    node: NodeSpec,
    task: TaskSpec,
    dp: DPSettings,
    test_fraction: float,
    seed: int,
    *,
    lifetime_spent: float | None = None,
) -> NodeData:
    """The node's encoded data after every check training runs; raises the first refusal.

    ``lifetime_spent``: the ε already spent (None: read from the node's budget ledger, which
    also validates it).
    """
    if node.data is None:
        raise DataError(f"node '{node.name}': no data path (rule: data path)")
    policy = load_policy(node.policy)
    keyring = Keyring.load(node.keys) if node.keys is not None else None
    prepared = prepare_frame(node.data, policy, task, keyring, with_label=True)
    if lifetime_spent is None:
        ledger = BudgetLedger(node.default_ledger(), node.name, policy.dp.lifetime_epsilon)
        lifetime_spent = ledger.spent() if dp.enabled else 0.0
    check_node_rules(
        node.name,
        policy,
        task,
        n_train_rows=train_rows(len(prepared.frame), test_fraction),
        dp_enabled=dp.enabled,
        epsilon=dp.epsilon if dp.enabled else None,
        delta=dp.delta if dp.enabled else None,
        lifetime_spent=lifetime_spent,
    )
    return encode_node(node.name, prepared, task, str(node.data), test_fraction, seed)


def preflight_data(job: Job, nodes: Iterable[NodeSpec] | None = None) -> list[NodeData]:
    """Check every node that has a data file (synthetic nodes get theirs at run time)."""
    chosen = job.nodes if nodes is None else nodes
    return [
        check_node_data(node, job.task, job.dp, job.test_fraction, job.seed)
        for node in chosen
        if node.data is not None
    ]
