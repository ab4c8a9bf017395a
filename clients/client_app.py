"""The Flower ClientApp: a thin adapter between Flower messages and :class:`NodeRuntime`.

A node that declines a round (its policy, its budget, bad data) replies with a ``confide``
ConfigRecord carrying ``status=refused`` and a one-line reason, and no weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from confide.clients.analysis_node import AnalysisRefusal, answer_analysis, node_from_config
from confide.clients.audit import audit_mod
from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.clients.secure_mods import secure_mod
from confide.clients.vertical_node import VerticalRefusal, answer_vertical
from confide.code_identity import CodeMismatch, check_coordinator_code
from confide.job import NodeSpec, parse_job
from confide.modeling.errors import ConfideError
from confide.modeling.factory import find_instantiation_key
from confide.modeling.training_settings import NOISE_KINDS
from confide.vertical_records import reply_records, request_from_records
from confide.wire import (
    ANALYSIS_KEY,
    DP_STATE_KEY,
    STATUS_KEY,
    STATUS_OK,
    STATUS_REFUSED,
    VERTICAL_KEY,
    VERTICAL_STATE_KEY,
    AnalysisRequest,
    AnalysisWireError,
    Proposal,
    ProposalError,
    VerticalWireError,
    encode_analysis_reply,
)

__all__ = [
    "analysis_node_from_deployment",
    "app",
    "make_client_app",
    "refuse_instantiation",
    "runtime_from_deployment",
]

RuntimeResolver = Callable[[Context], NodeRuntime]
NodeResolver = Callable[[Context], NodeSpec]


def _reply(msg: Message, node: str, records: dict[str, Any], status: str, reason: str = ""):
    content = RecordDict(records)
    content[STATUS_KEY] = ConfigRecord({"node": node, "status": status, "reason": reason})
    return Message(content=content, reply_to=msg)


def _proposal(msg: Message) -> Proposal:
    return Proposal.from_config(dict(msg.content["config"]))


def make_client_app(
    resolve: RuntimeResolver, mods: list | None = None, resolve_node: NodeResolver | None = None
) -> ClientApp:
    """A ClientApp whose node runtime is found by ``resolve(context)``.

    ``mods`` run outermost; then the node's outgoing-message audit (``audit-dir`` in its node
    config) and :func:`clients.secure_mods.secure_mod` (SecAgg+, client-level DP clipping).
    Analysis steps (message type QUERY) go to :func:`clients.analysis_node.answer_analysis`
    for the node ``resolve_node(context)`` finds (default: the SuperNode's own node config)."""
    client = ClientApp(mods=[*(mods or []), audit_mod, secure_mod])

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        name = str(context.node_config.get("name", context.node_id))
        try:
            runtime = resolve(context)
            name = runtime.node.name
            proposal = _proposal(msg)
            state = context.state.config_records.get(DP_STATE_KEY)
            dp_state = dict(state) if state is not None else None
            if dp_state is not None and dp_state.get("run_id") != proposal.run_id:
                dp_state = None  # a new run: its accountant starts empty
            if dp_state is not None:
                dp_state.pop("run_id")
            outcome = runtime.train(msg.content["arrays"].to_torch_state_dict(), proposal, dp_state)
        except (NodeRefusal, ProposalError) as exc:
            return _reply(msg, name, {}, STATUS_REFUSED, str(exc))
        if outcome.dp_state is not None:
            context.state[DP_STATE_KEY] = ConfigRecord(
                {**outcome.dp_state, "run_id": proposal.run_id}
            )
        records = {
            "arrays": ArrayRecord(outcome.state_dict),
            "metrics": MetricRecord(outcome.metrics),
        }
        return _reply(msg, name, records, STATUS_OK)

    @client.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        name = str(context.node_config.get("name", context.node_id))
        try:
            runtime = resolve(context)
            name = runtime.node.name
            proposal = _proposal(msg)
            metrics = runtime.evaluate(msg.content["arrays"].to_torch_state_dict(), proposal)
        except (NodeRefusal, ProposalError) as exc:
            return _reply(msg, name, {}, STATUS_REFUSED, str(exc))
        return _reply(msg, name, {"metrics": MetricRecord(metrics)}, STATUS_OK)

    @client.query()
    def query(msg: Message, context: Context) -> Message:
        if VERTICAL_KEY in msg.content.config_records:
            return _vertical_query(msg, context, resolve_node)
        name = str(context.node_config.get("name", context.node_id))
        try:
            node = (resolve_node or analysis_node_from_deployment)(context)
            name = node.name
            if ANALYSIS_KEY not in msg.content.config_records:
                raise AnalysisWireError(
                    f"analysis message: no '{ANALYSIS_KEY}' record (rule: wire)"
                )
            request = AnalysisRequest.from_config(dict(msg.content.config_records[ANALYSIS_KEY]))
            release = answer_analysis(node, request)
        except (AnalysisRefusal, AnalysisWireError) as exc:
            return _reply(msg, name, {}, STATUS_REFUSED, str(exc))
        records = {ANALYSIS_KEY: ConfigRecord(encode_analysis_reply(release))}
        return _reply(msg, name, records, STATUS_OK)

    return client


def _vertical_state(context: Context) -> dict[str, Any]:
    """The node's own state of its current vertical run (never sent)."""
    state: dict[str, Any] = {}
    scalars = context.state.config_records.get(VERTICAL_STATE_KEY)
    arrays = context.state.array_records.get(f"{VERTICAL_STATE_KEY}.arrays")
    if scalars is not None:
        state.update(dict(scalars))
    if arrays is not None:
        state.update({name: array.numpy() for name, array in arrays.items()})
    return state


def _keep_vertical_state(context: Context, state: dict[str, Any]) -> None:
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    context.state[VERTICAL_STATE_KEY] = ConfigRecord(
        {k: v for k, v in state.items() if k not in arrays and v is not None}
    )
    context.state[f"{VERTICAL_STATE_KEY}.arrays"] = ArrayRecord(
        {k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()}
    )


def _vertical_query(msg: Message, context: Context, resolve_node: NodeResolver | None) -> Message:
    """A vertical step (:func:`clients.vertical_node.answer_vertical`). Under a SuperNode (no
    ``resolve_node``) the node's noise is its own ``dp-noise`` (secure unless it says seeded);
    in simulation it follows the job."""
    name = str(context.node_config.get("name", context.node_id))
    try:
        node = (resolve_node or analysis_node_from_deployment)(context)
        name = node.name
        noise = None if resolve_node is not None else _deployment_noise(context)
        request = request_from_records(msg.content)
        state = _vertical_state(context)
        reply = answer_vertical(node, request, state, noise)
    except (AnalysisRefusal, VerticalRefusal, VerticalWireError, NodeRefusal) as exc:
        return _reply(msg, name, {}, STATUS_REFUSED, str(exc))
    _keep_vertical_state(context, state)
    return _reply(msg, name, reply_records(reply), STATUS_OK)


def _deployment_noise(context: Context) -> str:
    """The SuperNode's own noise source (``--node-config dp-noise``): secure unless set."""
    noise = str(context.node_config.get("dp-noise") or "secure")
    if noise not in NOISE_KINDS:
        raise NodeRefusal(
            f"SuperNode --node-config 'dp-noise' must be one of {', '.join(NOISE_KINDS)} "
            "(rule: DP noise source)"
        )
    return noise


def _optional_path(config: dict[str, Any], key: str) -> Path | None:
    value = config.get(key)
    return Path(str(value)).expanduser() if value not in (None, "") else None


def refuse_instantiation(received: object) -> None:
    """Refuse a received job holding a Hydra instantiation key (``_target_``, ``_args_``, ...)
    anywhere, the strategy section included (the coordinator names its strategy from its own
    registry).

    A node treats everything it receives as data: its model comes from the fixed registry by
    name (:mod:`confide.modeling.factory`). This runs before the node touches its ledger."""
    if not isinstance(received, dict):
        raise NodeRefusal("run config 'confide-job': not a JSON object (rule: job format)")
    hidden = find_instantiation_key(received)
    if hidden is not None:
        raise NodeRefusal(
            f"run config 'confide-job': field '{hidden}' asks the node to instantiate code; a "
            "node builds models from its registry by name only (rule: job is data)"
        )


def runtime_from_deployment(context: Context) -> NodeRuntime:
    """Deployment: the shared job comes in the run config, node-local settings from the
    SuperNode's ``--node-config`` (name, data-path, policy-path, keys-path, ledger-path,
    max-epsilon-per-run, dp-noise) and are never taken from the server.

    A node in deployment draws its DP noise from the secure source unless its own
    ``dp-noise`` says ``seeded`` (the run report then flags it); the server's ``dp-noise`` is
    only a proposal."""
    try:  # the node runs its own installed Confide; the coordinator must run the same
        check_coordinator_code(context.run_config)
    except CodeMismatch as exc:
        raise NodeRefusal(str(exc)) from exc
    raw_job = context.run_config.get("confide-job")
    if not raw_job:
        raise NodeRefusal("the run config carries no 'confide-job' (rule: job format)")
    try:
        received = json.loads(str(raw_job))
    except ValueError as exc:
        raise NodeRefusal("run config 'confide-job': not valid JSON (rule: job format)") from exc
    refuse_instantiation(received)
    try:
        job = parse_job(received)
    except ConfideError as exc:
        raise NodeRefusal(f"the job in the run config is invalid: {exc} (rule: job)") from exc
    node_cfg = dict(context.node_config)
    for key in ("name", "data-path", "policy-path"):
        if not node_cfg.get(key):
            raise NodeRefusal(f"SuperNode --node-config lacks '{key}' (rule: node config)")
    max_eps = node_cfg.get("max-epsilon-per-run")
    noise = _deployment_noise(context)
    node = NodeSpec(
        name=str(node_cfg["name"]),
        policy=Path(str(node_cfg["policy-path"])).expanduser(),
        data=Path(str(node_cfg["data-path"])).expanduser(),
        keys=_optional_path(node_cfg, "keys-path"),
        ledger=_optional_path(node_cfg, "ledger-path"),
        max_epsilon_per_run=float(max_eps) if max_eps not in (None, "") else None,
    )
    return NodeRuntime(node, job.task, job.model_net, job.test_fraction, noise=noise)


def analysis_node_from_deployment(context: Context) -> NodeSpec:
    """Deployment: an analysis node's settings from its SuperNode's ``--node-config`` only,
    after the coordinator's code identity matched the node's own."""
    try:
        check_coordinator_code(context.run_config)
    except CodeMismatch as exc:
        raise AnalysisRefusal(str(exc)) from exc
    return node_from_config(dict(context.node_config))


app = make_client_app(runtime_from_deployment)
