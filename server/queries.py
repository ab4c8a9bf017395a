"""What every multi-step coordinator (analysis, vertical) does with Flower QUERY messages:
wait until the federation's nodes are connected, send one message per node and sort the
replies into answers and one-line reasons (an app failure, a refusal, a silent node)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid

from confide.wire import STATUS_KEY, STATUS_OK

__all__ = [
    "ProtocolStopped",
    "ReplyRejected",
    "connected_node_ids",
    "send_queries",
    "shared_job",
]

T = TypeVar("T")


class ProtocolStopped(Exception):
    """A node refused a step or did not answer; ``reasons`` maps node to its reason."""

    def __init__(self, where: str, reasons: Mapping[str, str]) -> None:
        self.reasons = dict(reasons)
        super().__init__(
            f"{where}: " + "; ".join(f"{n}: {r}" for n, r in sorted(self.reasons.items()))
        )


class ReplyRejected(Exception):
    """Raised by a ``decode`` callback: the reply is not a valid answer (the reason, one line)."""


def connected_node_ids(grid: Grid, expected: int, timeout: float) -> tuple[list[int], str | None]:
    """The grid's node ids once ``expected`` nodes are connected (deployment: SuperNodes may
    still be connecting), and ``None``; after ``timeout`` seconds the ids so far and the reason."""
    deadline = time.monotonic() + timeout
    while len(node_ids := sorted(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline:
            return node_ids, f"{len(node_ids)} of {expected} nodes connected within {timeout:g} s"
        time.sleep(1.0)
    return node_ids, None


def send_queries(
    grid: Grid,
    messages: list[Message],
    node_ids: Iterable[int],
    timeout: float,
    decode: Callable[[RecordDict], T],
) -> tuple[list[tuple[int, str, T]], dict[str, str]]:
    """Send ``messages`` and wait up to ``timeout`` seconds; returns the accepted replies as
    ``(node id, node name, decode(content))`` and ``{node name: reason}`` for every failed app,
    refusal, reply ``decode`` rejects (:class:`ReplyRejected`) and node in ``node_ids`` that did
    not answer."""
    accepted: list[tuple[int, str, T]] = []
    reasons: dict[str, str] = {}
    answered: set[int] = set()
    for reply in grid.send_and_receive(messages, timeout=timeout):
        source = reply.metadata.src_node_id
        answered.add(source)
        if reply.has_error():
            reasons[f"node {source}"] = f"the node's app failed ({reply.error.reason})"
            continue
        status = reply.content.config_records.get(STATUS_KEY)
        name = str(status.get("node", source)) if status is not None else f"node {source}"
        if status is None or status.get("status") != STATUS_OK:
            reason = str(status.get("reason", "")) if status is not None else "no status record"
            reasons[name] = reason or "refused without a reason"
            continue
        try:
            accepted.append((source, name, decode(reply.content)))
        except ReplyRejected as exc:
            reasons[name] = str(exc)
    for node_id in node_ids:
        if node_id not in answered:
            reasons[f"node {node_id}"] = f"no reply within {timeout:g} s"
    return accepted, reasons


def shared_job(context: Context) -> dict[str, Any]:
    """The deployment's shared job (run config ``confide-job``), parsed as plain JSON data."""
    return json.loads(str(context.run_config["confide-job"]))
