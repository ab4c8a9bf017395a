"""Load every node's checked data: the one loader that preflight, the membership-inference
audit and the benchmarks use.

Each node's data is read, transformed and checked under its OWN policy against the job (tiers,
DP, ε, budget) by :meth:`NodeRuntime.checked_data`, exactly as the node does before it trains;
the first refusal stops the load with the node's one-line reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from confide.clients.node_data import NodeData
from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.core.errors import ConfideError
from confide.job import Job, NodeSpec
from confide.wire import Proposal

__all__ = ["load_checked_nodes"]


def load_checked_nodes(
    job: Job, nodes: Sequence[NodeSpec] | None = None, run_id: str = "preflight"
) -> list[NodeData]:
    """Every node's encoded splits (``nodes``: default the job's), after its own policy
    accepted the job; raises :class:`ConfideError` with the first node's refusal."""
    proposal = Proposal(run_id, 0, job.rounds, job.seed, job.dp, job.train)
    checked = []
    for spec in job.nodes if nodes is None else nodes:
        runtime = NodeRuntime(spec, job.task, job.model_net, job.test_fraction)
        try:
            data, _ = runtime.checked_data(proposal)
        except NodeRefusal as exc:
            raise ConfideError(str(exc)) from exc
        checked.append(data)
    return checked
