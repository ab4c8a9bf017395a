"""The Flower ClientApp: a thin adapter between Flower messages and :class:`NodeRuntime`.

A node that declines a round (its policy, its budget, bad data) replies with a ``confide``
ConfigRecord carrying ``status=refused`` and a one-line reason, and no weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from confide.clients.audit import audit_mod
from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.clients.proposal import Proposal, ProposalError
from confide.clients.secure_mods import secure_mod
from confide.job import NodeSpec, parse_job
from confide.modeling.errors import ConfideError

__all__ = ["STATUS_KEY", "app", "make_client_app", "runtime_from_deployment"]

STATUS_KEY = "confide"
_DP_STATE_KEY = "confide.dp"

RuntimeResolver = Callable[[Context], NodeRuntime]


def _reply(msg: Message, node: str, records: dict[str, Any], status: str, reason: str = ""):
    content = RecordDict(records)
    content[STATUS_KEY] = ConfigRecord({"node": node, "status": status, "reason": reason})
    return Message(content=content, reply_to=msg)


def _proposal(msg: Message) -> Proposal:
    return Proposal.from_config(dict(msg.content["config"]))


def make_client_app(resolve: RuntimeResolver, mods: list | None = None) -> ClientApp:
    """A ClientApp whose node runtime is found by ``resolve(context)``.

    ``mods`` run outermost; then the node's outgoing-message audit (``audit-dir`` in its node
    config) and :func:`clients.secure_mods.secure_mod` (SecAgg+, client-level DP clipping)."""
    client = ClientApp(mods=[*(mods or []), audit_mod, secure_mod])

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        name = str(context.node_config.get("name", context.node_id))
        try:
            runtime = resolve(context)
            name = runtime.node.name
            proposal = _proposal(msg)
            state = context.state.config_records.get(_DP_STATE_KEY)
            dp_state = dict(state) if state is not None else None
            if dp_state is not None and dp_state.get("run_id") != proposal.run_id:
                dp_state = None  # a new run: its accountant starts empty
            if dp_state is not None:
                dp_state.pop("run_id")
            outcome = runtime.train(msg.content["arrays"].to_torch_state_dict(), proposal, dp_state)
        except (NodeRefusal, ProposalError) as exc:
            return _reply(msg, name, {}, "refused", str(exc))
        if outcome.dp_state is not None:
            context.state[_DP_STATE_KEY] = ConfigRecord(
                {**outcome.dp_state, "run_id": proposal.run_id}
            )
        records = {
            "arrays": ArrayRecord(outcome.state_dict),
            "metrics": MetricRecord(outcome.metrics),
        }
        return _reply(msg, name, records, "ok")

    @client.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        name = str(context.node_config.get("name", context.node_id))
        try:
            runtime = resolve(context)
            name = runtime.node.name
            proposal = _proposal(msg)
            metrics = runtime.evaluate(msg.content["arrays"].to_torch_state_dict(), proposal)
        except (NodeRefusal, ProposalError) as exc:
            return _reply(msg, name, {}, "refused", str(exc))
        return _reply(msg, name, {"metrics": MetricRecord(metrics)}, "ok")

    return client


def _optional_path(config: dict[str, Any], key: str) -> Path | None:
    value = config.get(key)
    return Path(str(value)).expanduser() if value not in (None, "") else None


def runtime_from_deployment(context: Context) -> NodeRuntime:
    """Deployment: the shared job comes in the run config, node-local settings from the
    SuperNode's ``--node-config`` (name, data-path, policy-path, keys-path, ledger-path,
    max-epsilon-per-run) and are never taken from the server."""
    raw_job = context.run_config.get("confide-job")
    if not raw_job:
        raise NodeRefusal("the run config carries no 'confide-job' (rule: job format)")
    try:
        job = parse_job(json.loads(str(raw_job)))
    except (ValueError, ConfideError) as exc:
        raise NodeRefusal(f"the job in the run config is invalid: {exc} (rule: job)") from exc
    node_cfg = dict(context.node_config)
    for key in ("name", "data-path", "policy-path"):
        if not node_cfg.get(key):
            raise NodeRefusal(f"SuperNode --node-config lacks '{key}' (rule: node config)")
    max_eps = node_cfg.get("max-epsilon-per-run")
    node = NodeSpec(
        name=str(node_cfg["name"]),
        policy=Path(str(node_cfg["policy-path"])).expanduser(),
        data=Path(str(node_cfg["data-path"])).expanduser(),
        keys=_optional_path(node_cfg, "keys-path"),
        ledger=_optional_path(node_cfg, "ledger-path"),
        max_epsilon_per_run=float(max_eps) if max_eps not in (None, "") else None,
    )
    return NodeRuntime(node, job.task, job.model_net, job.test_fraction)


app = make_client_app(runtime_from_deployment)
