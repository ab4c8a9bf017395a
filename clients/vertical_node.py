"""A node's side of a vertical run (split learning after PSI), free of Flower types.

The coordinator relays the steps of docs/vertical.md (:data:`confide.wire.VERTICAL_STEPS`); a
node answers each from its own settings (:class:`~confide.job.NodeSpec`: data, policy, keys,
ledger, per-run maximum) and treats everything received as data. For every step, in this order:

1. the received public job is parsed by the one job parser (an instantiation key anywhere
   refuses it) and the node's role (label node or feature node) is checked against the step;
2. the node reads its data through the one node loader
   (:func:`confide.clients.node_data.prepare_columns`: reader, schema check, policy transforms;
   the join key's RAW text is kept for PSI only, never logged or sent), keeps the task features
   its OWN policy lists with role ``feature`` (and the label at the label node), normalises the
   join keys (empty or duplicated values refuse with counts only) and runs the shared rule
   engine on its share of the job (tiers, DP, per-run and lifetime budget);
3. PSI steps blind or re-blind with a per-run secret (:class:`confide.privacy.psi.PsiParty`);
   a training step reserves the node's WHOLE epsilon in its budget ledger before it trains,
   trains and releases with the node's own noise source, records the composed epsilon (a
   replayed step is refused by the ledger's compare-and-set) and stores its models node-side.

What a node keeps between the messages of one run (its PSI seed, the secret order of its
positions, the label node's row alignment) lives in ``state``, a plain dict the Flower adapter
keeps in the node's context: it is never sent. Any refusal raises :class:`VerticalRefusal`
with one line; bad input (join key missing, empty or duplicated, no overlap, overlap below
``psi.min_overlap``, a feature missing) is refused before anything is written.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import replace
from typing import Any

import numpy as np

from confide.clients import vertical_linear_node as linear
from confide.clients.node_data import _split_indices, prepare_columns
from confide.clients.vertical_data import check_vertical_columns
from confide.clients.vertical_step import (
    NodeArrays,
    VerticalRefusal,
    check_test_count,
    evaluation_summary,
    match_lookup,
    matched_everywhere,
    model_path,
)
from confide.clients.vertical_step import VerticalStep as _Step
from confide.clients.vertical_step import check_rules as _check_rules
from confide.clients.vertical_step import dp_summary as _dp_summary
from confide.clients.vertical_step import expect_state as _run_state
from confide.clients.vertical_step import node_noise as _noise
from confide.clients.vertical_step import order_seed as _order_seed
from confide.clients.vertical_step import record_epsilon as _record
from confide.clients.vertical_step import reserve_epsilon as _reserve
from confide.clients.vertical_step import secret_order as _secret_order
from confide.clients.vertical_step import task_config as _task_config
from confide.core.errors import ConfideError
from confide.job import Job, NodeSpec, parse_job
from confide.modeling.encoding import encode_features, encode_labels
from confide.modeling.factory import find_instantiation_key
from confide.modeling.model_io import load_model, save_model
from confide.modeling.prediction import predict_proba
from confide.modeling.task_spec import TaskSpec
from confide.modeling.vertical_dp import (
    plan_feature_node,
    plan_label_node,
    release_sigma_for,
)
from confide.modeling.vertical_model import (
    embed,
    embedding_release,
    fit_top,
    label_release,
    save_top_model,
    train_bottom,
    train_dp_model,
)
from confide.privacy import Keyring, PrivacyError, load_policy
from confide.privacy.policy import Policy
from confide.privacy.psi import ELEMENT_SIZE, PsiParty, dummy_elements, intersect, normalise_ids
from confide.privacy.reader import open_csv
from confide.wire import VerticalReply, VerticalRequest

__all__ = [
    "NodeArrays",
    "VerticalRefusal",
    "aligned_split",
    "answer_vertical",
    "model_path",
    "node_arrays",
    "own_features",
    "public_job",
]

_LABEL_STEPS = (
    "vertical-check",
    "psi-blind",
    "psi-match",
    "vertical-top",
    "vertical-solve",
    "vertical-evaluate",
)
_FEATURE_STEPS = (
    "vertical-check",
    "psi-reblind",
    "vertical-bottom",
    "vertical-share",
    "vertical-score",
)
#: The training steps of each protocol (the PSI steps are shared).
_PROTOCOL_STEPS = {
    "split_learning": ("vertical-bottom", "vertical-top"),
    "secure_linear": ("vertical-share", "vertical-solve", "vertical-score", "vertical-evaluate"),
}
_RULE = "rule: VFL-STEP"
_SPLIT_SALT = zlib.crc32(b"confide.vertical.split")


# --- shared helpers (the simulation's in-process baselines use the same split) ---------------


def public_job(config: Mapping[str, Any]) -> dict[str, Any]:
    """The shared public job a vertical step carries: the composed config without any node-local
    path (each node is listed by name only, like a deployment job) and without run paths."""
    import json

    job = json.loads(json.dumps(dict(config)))
    federation = job.get("federation") or {}
    job["federation"] = {
        **{k: v for k, v in federation.items() if k != "nodes"},
        "nodes": [
            {"name": n["name"], "data": "node-local", "policy": "node-local"}
            for n in federation.get("nodes") or []
        ],
    }
    job["run"] = {k: v for k, v in (job.get("run") or {}).items() if k in ("name", "timeout_s")}
    return job


def aligned_split(n_aligned: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into the label node's aligned rows, in row order) of the training and the test
    rows: a seeded permutation, ``max(1, round(n * test_fraction))`` test rows, both sorted."""
    return _split_indices(int(n_aligned), test_fraction, int(seed) ^ _SPLIT_SALT)


def own_features(policy: Policy, task: TaskSpec) -> list[str]:
    """The task features this node's own policy lists with role ``feature``, in task order."""
    out = []
    for name in task.feature_names:
        column = policy.column_for(name)
        if column is not None and column.role == "feature":
            out.append(name)
    return out


# --- one step's context ----------------------------------------------------------------------


def _parse(node: NodeSpec, request: VerticalRequest, noise: str | None) -> _Step:
    name = node.name
    hidden = find_instantiation_key(request.job)
    if hidden is not None:
        raise VerticalRefusal(
            f"node '{name}': the received job's field '{hidden}' asks the node to instantiate "
            "code; a node builds models from its registry by name only (rule: job is data)"
        )
    try:
        job = parse_job(request.job)
        policy = load_policy(node.policy)
    except (ConfideError, PrivacyError) as exc:
        raise VerticalRefusal(f"node '{name}': the received job is refused: {exc}") from None
    spec = job.vertical
    if spec is None:
        raise VerticalRefusal(f"node '{name}': the received job is not a vertical job ({_RULE})")
    if name == spec.label_node:
        role, allowed = "label", _LABEL_STEPS
    elif name in spec.feature_nodes:
        role, allowed = "feature", _FEATURE_STEPS
    else:
        raise VerticalRefusal(f"node '{name}': the vertical job does not list this node ({_RULE})")
    if request.step not in allowed:
        raise VerticalRefusal(
            f"node '{name}': step {request.step} is not a {role} node's step ({_RULE})"
        )
    other = [p for p, steps in _PROTOCOL_STEPS.items() if p != spec.protocol]
    if any(request.step in _PROTOCOL_STEPS[p] for p in other):
        raise VerticalRefusal(
            f"node '{name}': step {request.step} is not a step of protocol {spec.protocol} "
            f"({_RULE})"
        )
    kind = noise if noise is not None else job.dp.noise
    return _Step(node, request, job, spec, policy, role, kind)


def _load(step: _Step, with_label: bool = True) -> NodeArrays:
    """Read, check and transform the node's records; encode its features (and label)."""
    node, task, spec, policy = step.node, step.job.task, step.spec, step.policy
    if node.data is None:
        raise step.refuse("no data path", "rule: data path")
    source = str(node.data)
    features = own_features(policy, task)
    if step.role == "feature" and not features:
        raise step.refuse(
            "its policy lists none of the task's features with role feature",
            "rule: VFL-FEATURE-UNHELD",
        )
    label = [task.label.name] if step.role == "label" and with_label else []
    names = [*features, *label, spec.join_key]
    try:
        keyring = Keyring.load(node.keys) if node.keys is not None else None
        with open_csv(node.data) as table:  # the header only: join key and features present
            check_vertical_columns(
                table.names, spec, step.name, source, policy=policy, features=features
            )
        prepared = prepare_columns(node.data, policy, names, keyring, raw_names=(spec.join_key,))
        frame = prepared.frame
        ids = normalise_ids(frame[spec.join_key], source=source, column=spec.join_key)
        sub_task = replace(task, features=tuple(f for f in task.features if f.name in features))
        x = encode_features(frame, sub_task, source)
        y = encode_labels(frame, task, source) if label else None
    except (ConfideError, PrivacyError) as exc:
        raise VerticalRefusal(f"node '{step.name}': {exc}") from None
    pseudonyms = prepared.ids.to_numpy() if prepared.ids is not None else None
    return NodeArrays(x, y, ids, features, pseudonyms)


def node_arrays(node: NodeSpec, job: Job, with_label: bool = True) -> NodeArrays:
    """The node's encoded features (and label at the label node), normalised join keys and
    feature names, read exactly as its steps read them (the simulation's in-process
    baselines use it on the pooled view the simulation holds)."""
    spec = job.vertical
    if spec is None:
        raise VerticalRefusal(f"node '{node.name}': the job is not a vertical job ({_RULE})")
    role = "label" if node.name == spec.label_node else "feature"
    policy = load_policy(node.policy)
    request = VerticalRequest("local", "vertical-check", {})
    return _load(_Step(node, request, job, spec, policy, role, job.dp.noise), with_label)


def _elements(blob: np.ndarray) -> bytes:
    return np.ascontiguousarray(blob, dtype=np.uint8).tobytes()


def _blob(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).copy()


def _pad(step: _Step, n: int) -> int:
    pad_to = step.spec.pad_to
    if pad_to is None:
        return 0
    if pad_to < n:
        raise step.refuse(f"psi.pad_to={pad_to} is below the node's set size", "rule: VFL-PSI-PAD")
    return pad_to - n


# --- the steps -------------------------------------------------------------------------------


def _psi_blind(step: _Step, data: NodeArrays, state: MutableMapping[str, Any]) -> VerticalReply:
    seed = os.urandom(32)
    party = PsiParty.from_seed(step.request.run_id, seed)
    m1 = party.blind(data.ids) + dummy_elements(_pad(step, len(data.ids)))
    state.clear()
    state.update({"run_id": step.request.run_id, "done": "psi-blind", "psi_seed": seed})
    summary = {"elements": len(m1) // ELEMENT_SIZE, "feature_dim": int(data.x.shape[1])}
    return VerticalReply("psi-blind", summary, {"m1": _blob(m1)})


def _psi_reblind(step: _Step, data: NodeArrays, state: MutableMapping[str, Any]) -> VerticalReply:
    party = PsiParty(step.request.run_id)
    m2 = party.reblind(_elements(step.request.arrays["m1"]))
    n = len(data.ids)
    n_positions = n + _pad(step, n)
    order_seed = _order_seed(step)
    order = _secret_order(order_seed, n_positions)  # position p holds row order[p] (< n) or a dummy
    real = order < n
    own = np.frombuffer(party.blind([data.ids[r] for r in order[real]]), dtype=np.uint8)
    m3 = np.empty((n_positions, ELEMENT_SIZE), dtype=np.uint8)
    m3[real] = own.reshape(-1, ELEMENT_SIZE)
    if n_positions > n:
        m3[~real] = np.frombuffer(dummy_elements(n_positions - n), np.uint8).reshape(
            -1, ELEMENT_SIZE
        )
    state.clear()
    state.update(
        {
            "run_id": step.request.run_id,
            "done": "psi-reblind",
            "order_seed": order_seed,
            "n_rows": n,
            "n_positions": n_positions,
        }
    )
    summary = {
        "elements": n_positions,
        "received": len(m2) // ELEMENT_SIZE,
        "feature_dim": int(data.x.shape[1]),
    }
    out = {"m2": _blob(m2), "m3": m3.reshape(-1)}
    if step.spec.secure_linear:  # the pair key of the run's end-to-end channel with L
        out["pair_key"] = linear.feature_pair_key(state)
    return VerticalReply("psi-reblind", summary, out)


def _feature_nodes(arrays: Mapping[str, Any], prefix: str) -> list[str]:
    return sorted(k.split(":", 1)[1] for k in arrays if k.startswith(f"{prefix}:"))


def _psi_match(step: _Step, data: NodeArrays, state: MutableMapping[str, Any]) -> VerticalReply:
    started = time.perf_counter()
    _run_state(step, state, "psi-blind")
    spec, arrays = step.spec, step.request.arrays
    feature_nodes = _feature_nodes(arrays, "m2")
    if feature_nodes != sorted(spec.feature_nodes):
        raise step.refuse("the arrays do not come from exactly the job's feature nodes")
    party = PsiParty.from_seed(step.request.run_id, state["psi_seed"])
    n = len(data.ids)
    expected = n + _pad(step, n)
    matched: dict[str, np.ndarray] = {}  # per feature node: position of each row, -1 if none
    positions: dict[str, int] = {}
    for f in feature_nodes:
        m2 = _elements(arrays[f"m2:{f}"])
        if len(m2) != expected * ELEMENT_SIZE:
            raise step.refuse(f"feature node '{f}' re-blinded a set of another size")
        m3 = _elements(arrays[f"m3:{f}"])
        m4 = party.reblind(m3)
        matched[f] = match_lookup(*intersect(m2, m4), n)
        positions[f] = len(m3) // ELEMENT_SIZE
    rows = matched_everywhere(matched.values())
    psi_seconds = time.perf_counter() - started
    if len(rows) == 0:
        raise step.refuse("the join keys have no overlap", "rule: VFL-NO-OVERLAP")
    if len(rows) < spec.min_overlap:
        raise step.refuse(
            f"{len(rows)} aligned customers, below psi.min_overlap={spec.min_overlap}",
            "rule: VFL-MIN-OVERLAP",
        )
    train_at, test_at = aligned_split(len(rows), step.job.test_fraction, step.job.seed)
    train_rows, test_rows = rows[train_at], rows[test_at]
    state["psi_summary"] = {
        "label_set_size": n if spec.pad_to is None else None,
        "label_elements": expected,
        "feature_elements": positions,
        "intersection": len(rows),
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "seconds": psi_seconds,
    }
    _check_rules(step, data, len(train_rows))
    if spec.secure_linear:
        return _linear_psi_match(step, data, state, train_rows, test_rows, matched, positions)
    dp = step.job.dp
    plan = plan_label_node(
        dp,
        len(train_rows),
        step.job.train,
        step.job.rounds,
        spec.label_dp_epsilon,
        releases=len(feature_nodes),
    )
    ledger = _reserve(step, plan)
    noise = _noise(step, 0)
    assert data.y is not None  # the label node reads its label
    y_train = data.y[train_rows]
    job = step.job
    model, sgd = train_dp_model(
        data.x[train_rows], y_train, job.model_net, job.train, dp, plan, noise, job.seed
    )
    p = predict_proba(model, data.x[train_rows])
    replies: dict[str, np.ndarray] = {}
    for f in feature_nodes:  # one release per feature node (the plan counts each)
        n_pos = positions[f]
        at, test_pos = matched[f][train_rows], matched[f][test_rows]
        values = label_release(y_train, p, at, n_pos, plan.release_sigma, noise)
        replies[f"residual:{f}"] = values
        replies[f"test:{f}"] = np.sort(test_pos)
        if spec.reveal_to == "all":  # the config lets the feature nodes learn the alignment
            replies[f"train:{f}"] = np.sort(at)
        state[f"train_pos:{f}"] = at
        state[f"test_pos:{f}"] = test_pos
        state[f"n_pos:{f}"] = n_pos
    save_model(
        model_path(step.node, step.request.run_id, "label"),
        model,
        _task_config(step.job, data.features),
        step.job.model_net,
    )
    epsilon = _record(step, ledger, plan, sgd)
    state.update({"train_rows": train_rows, "test_rows": test_rows, "epsilon": epsilon})
    summary = {"dp": _dp_summary(step, plan, epsilon, noise), "features": data.features}
    return _matched(step, state, summary, replies)


def _matched(
    step: _Step,
    state: MutableMapping[str, Any],
    summary: dict[str, Any],
    replies: dict[str, np.ndarray],
) -> VerticalReply:
    """The end of psi-match under either protocol: the PSI summary, the secret dropped."""
    state["done"] = "psi-match"
    del state["psi_seed"]  # the run's PSI secret is not needed again: it is not kept
    return VerticalReply("psi-match", {"psi": state.pop("psi_summary"), **summary}, replies)


def _linear_psi_match(
    step: _Step,
    data: NodeArrays,
    state: MutableMapping[str, Any],
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    matched: Mapping[str, np.ndarray],
    positions: Mapping[str, int],
) -> VerticalReply:
    state.update({"train_rows": train_rows, "test_rows": test_rows})
    replies, plan = linear.linear_psi_match(
        step, data, state, train_rows, test_rows, matched, positions
    )
    summary = {
        "dp": _dp_summary(step, plan, 0.0, _noise(step, 0)) | {"epsilon": None},
        "features": data.features,
    }
    return _matched(step, state, summary, replies)


def _vertical_bottom(
    step: _Step, data: NodeArrays, state: MutableMapping[str, Any]
) -> VerticalReply:
    _run_state(step, state, "psi-reblind")
    arrays, spec = step.request.arrays, step.spec
    n_rows, n_positions = int(state["n_rows"]), int(state["n_positions"])
    if len(data.ids) != n_rows:
        raise step.refuse("the node's data changed during the run")
    residual, test = arrays["residual"], arrays["test"]
    if len(residual) != n_positions or (len(test) and int(test[-1]) >= n_positions):
        raise step.refuse("the residuals or test positions do not match the node's positions")
    order = _secret_order(state["order_seed"], n_positions)
    if bool((order[test] >= n_rows).any()):
        raise step.refuse("a test position is not one of the node's records")
    check_test_count(step, n_rows, len(test))
    is_test = np.zeros(n_positions, dtype=bool)
    is_test[test] = True
    train_pos = np.flatnonzero(~is_test & (order < n_rows))
    if "train" in arrays:  # psi.reveal_to: all: train on the aligned training positions only
        aligned = arrays["train"]
        if spec.reveal_to != "all":
            raise step.refuse("aligned positions were sent but psi.reveal_to is label_node")
        if not bool(np.isin(aligned, train_pos).all()):
            raise step.refuse("an aligned training position is a test position or no record")
        train_pos = aligned
    _check_rules(step, data, len(train_pos))
    dp = step.job.dp
    plan = plan_feature_node(
        dp, len(train_pos), step.job.train, step.job.rounds, spec.embedding_dp_epsilon
    )
    ledger = _reserve(step, plan)
    noise = _noise(step, 1)
    x_train = data.x[order[train_pos]]
    job = step.job
    model, sgd = train_bottom(
        x_train, residual[train_pos], job.model_net, job.train, dp, plan, noise, job.seed
    )
    clip = spec.embedding_clip
    noisy, moments = embedding_release(
        model, x_train, clip, plan.release_sigma, noise, plan.moment_sigma
    )
    nontest = np.flatnonzero(~is_test)
    released = noise.gaussian(len(nontest), plan.release_sigma * clip).numpy().astype(np.float32)
    released[np.searchsorted(nontest, train_pos)] = noisy  # dummies: pure noise
    test_embedding = embed(model, data.x[order[test]], clip).astype(np.float32)
    save_model(
        model_path(step.node, step.request.run_id, "bottom"),
        model,
        _task_config(step.job, data.features),
        step.job.model_net,
        extra={"embedding_clip": clip},
    )
    epsilon = _record(step, ledger, plan, sgd)
    state.update({"done": "vertical-bottom", "epsilon": epsilon})
    del state["order_seed"]  # the secret order is not needed again: it is not kept
    summary = {
        "dp": _dp_summary(step, plan, epsilon, noise) | {"embedding_clip": clip},
        "train_rows": len(train_pos),
        "test_rows": len(test),
        "features": data.features,
    }
    out = {
        "embedding": released,
        "moments": np.asarray(moments, dtype=np.float32),
        "test_embedding": test_embedding,
    }
    return VerticalReply("vertical-bottom", summary, out)


def _vertical_top(step: _Step, data: NodeArrays, state: MutableMapping[str, Any]) -> VerticalReply:
    _run_state(step, state, "psi-match")
    arrays = step.request.arrays
    feature_nodes = _feature_nodes(arrays, "embedding")
    if feature_nodes != sorted(step.spec.feature_nodes):
        raise step.refuse("the arrays do not come from exactly the job's feature nodes")
    train_rows, test_rows = np.asarray(state["train_rows"]), np.asarray(state["test_rows"])
    train_emb, test_emb, moments, noise_vars = [], [], [], []
    noise_var = _embedding_noise_var(step)  # public settings: the same for every feature node
    for f in feature_nodes:
        n_pos = int(state[f"n_pos:{f}"])
        train_pos, test_pos = (
            np.asarray(state[f"train_pos:{f}"]),
            np.asarray(state[f"test_pos:{f}"]),
        )
        sorted_test = np.sort(test_pos)
        nontest = np.setdiff1d(np.arange(n_pos), sorted_test, assume_unique=True)
        emb, clean = arrays[f"embedding:{f}"], arrays[f"test_embedding:{f}"]
        if (
            len(emb) != len(nontest)
            or len(clean) != len(sorted_test)
            or len(arrays[f"moments:{f}"]) != 2
        ):
            raise step.refuse(f"feature node '{f}' sent embeddings of the wrong size")
        train_emb.append(emb[np.searchsorted(nontest, train_pos)])
        test_emb.append(clean[np.searchsorted(sorted_test, test_pos)])
        moments.append(tuple(float(v) for v in arrays[f"moments:{f}"]))
        noise_vars.append(noise_var)
    assert data.y is not None
    x = data.x
    top = fit_top(x[train_rows], train_emb, data.y[train_rows], noise_vars, moments)
    prob = top.predict_proba(x[test_rows], test_emb)
    label_model, _, _ = load_model(model_path(step.node, step.request.run_id, "label"))
    alone = predict_proba(label_model, x[test_rows])
    y_test = data.y[test_rows]
    save_top_model(
        model_path(step.node, step.request.run_id, "top"),
        top,
        {"feature_nodes": feature_nodes, "features": data.features},
    )
    state["done"] = "vertical-top"
    return VerticalReply("vertical-top", evaluation_summary(y_test, prob, alone, len(train_rows)))


def _embedding_noise_var(step: _Step) -> float:
    """The variance of the noise on each released embedding: the release's sigma depends only
    on the job's public DP settings (embedding epsilon, delta, accountant), times the clip."""
    dp = step.job.dp
    if not dp.enabled:
        return 0.0
    sigma = release_sigma_for(step.spec.embedding_dp_epsilon, dp.delta, dp.accountant, True)
    return float((sigma * step.spec.embedding_clip) ** 2)


def _steps() -> dict[str, Callable[[_Step, NodeArrays, MutableMapping[str, Any]], VerticalReply]]:
    return {
        "psi-blind": _psi_blind,
        "psi-reblind": _psi_reblind,
        "psi-match": _psi_match,
        "vertical-bottom": _vertical_bottom,
        "vertical-top": _vertical_top,
        "vertical-share": linear.vertical_share,
        "vertical-solve": linear.vertical_solve,
        "vertical-score": linear.vertical_score,
        "vertical-evaluate": linear.vertical_evaluate,
    }


def answer_vertical(
    node: NodeSpec,
    request: VerticalRequest,
    state: MutableMapping[str, Any],
    noise: str | None = None,
) -> VerticalReply:
    """Answer one vertical step on this node; raises :class:`VerticalRefusal` (one line).

    ``state``: the node's own per-run state (kept in its context between messages, never sent);
    ``noise``: the node's own noise source (``secure`` under a SuperNode), else the job's."""
    step = _parse(node, request, noise)
    data = _load(step)
    if request.step in ("vertical-check", "psi-blind", "psi-reblind"):
        _check_rules(step, data, len(data.ids))
    if request.step == "vertical-check":  # read-only: the node's checks and its role
        return VerticalReply("vertical-check", {"role": step.role})
    work = dict(state)
    try:
        reply = _steps()[request.step](step, data, work)
    except (ConfideError, PrivacyError) as exc:
        if isinstance(exc, VerticalRefusal):
            raise
        raise VerticalRefusal(f"node '{node.name}': {exc}") from None
    state.clear()
    state.update(work)
    return reply
