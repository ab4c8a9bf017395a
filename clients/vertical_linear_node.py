"""A node's steps of the secure linear protocol (docs/vertical.md, "Secure linear protocol").

After PSI the label node L and the feature node F compute the sufficient statistics of a
logistic model over both nodes' columns (the Gram matrix of ``[x_label, 1, x_feature, y - 0.5]``
over the aligned training rows, :mod:`confide.modeling.vertical_linear`) without either seeing
the other's rows:

- L's own block never leaves L. The cross terms ``x_feature^T [x_label, 1, y - 0.5]`` and F's
  Gram block over the aligned training rows are two products of an F matrix and an L matrix,
  computed with the coordinator as a non-colluding dealer
  (:mod:`confide.privacy.secure_product`): each node sends the other its matrix masked with
  the dealer's AES-CTR masks over Z_2^64, sealed end-to-end under a key the two nodes agree on
  (X25519), so neither the coordinator nor the other node sees an unmasked value; the masked
  label matrix is zero at every position that is not an aligned training row, so F never learns
  the alignment.
- F adds Gaussian noise to its share (its one DP release: sigma_F times the row bound), L adds
  Gaussian noise to the whole statistic (its one DP release), then solves it
  (:func:`~confide.modeling.vertical_linear.solve_statistics`). F receives only its weights, a
  DP model, and sends back the logits of the test positions, as a score would.

Steps: ``psi-match`` (L: align, split, reserve, masked label columns), ``vertical-share`` (F:
reserve, masked features, its noisy share), ``vertical-solve`` (L: statistics, noise, model),
``vertical-score`` (F: its weights, test logits), ``vertical-evaluate`` (L: metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import numpy as np
import torch

from confide.clients.vertical_step import (
    NodeArrays,
    VerticalStep,
    check_rules,
    check_test_count,
    dp_summary,
    evaluation_summary,
    expect_state,
    model_path,
    node_noise,
    record_epsilon,
    reserve_epsilon,
    secret_order,
    step_ledger,
    task_config,
)
from confide.core.errors import ConfideError
from confide.modeling.model_io import save_model
from confide.modeling.vertical_dp import VerticalPlan, plan_linear_node
from confide.modeling.vertical_linear import (
    LinearLayout,
    LinearVerticalModel,
    assemble_statistics,
    clip_rows,
    feature_noise,
    feature_square_columns,
    label_alone_model,
    label_block,
    label_noise,
    label_side_columns,
    row_bound,
    solve_statistics,
)
from confide.modeling.vertical_model import TopModel, save_top_model
from confide.privacy import PrivacyError
from confide.privacy.secure_product import (
    DealerShareA,
    DealerShareB,
    PairChannel,
    combine,
    decode_product,
    encode_fixed,
    mask_a,
    mask_b,
    share_a_result,
    share_b_result,
)
from confide.wire import VerticalReply

__all__ = [
    "label_pair_arrays",
    "linear_psi_match",
    "vertical_evaluate",
    "vertical_score",
    "vertical_share",
    "vertical_solve",
]

_CROSS, _GRAM = "cross", "gram"


def _statistics_std(step: VerticalStep, plan: VerticalPlan) -> float:
    """One node's noise std on each entry of the statistics (0 with DP off): its release sigma
    (from the job's public DP settings, the same at both nodes) times the row bound of the
    public clips."""
    return plan.release_sigma * row_bound(step.spec.label_row_clip, step.spec.feature_row_clip)


def _channel(step: VerticalStep, secret: bytes, peer_key: np.ndarray, peer: str) -> PairChannel:
    """The run's end-to-end channel between this node and ``peer`` (the coordinator relays)."""
    key = np.asarray(peer_key, np.uint8).tobytes()
    try:
        return PairChannel(secret, key, step.request.run_id, (step.name, peer))
    except (ConfideError, PrivacyError) as exc:
        raise step.refuse(f"the pair key is refused: {exc}") from None


def _open(
    step: VerticalStep, channel: PairChannel, blob: np.ndarray, label: str, shape: tuple[int, ...]
) -> np.ndarray:
    try:
        return channel.open(blob, label, np.uint64, shape)
    except (ConfideError, PrivacyError):
        raise step.refuse(f"the sealed {label} does not open under the run's pair key") from None


def _ring(step: VerticalStep, array: np.ndarray, columns: int, what: str) -> np.ndarray:
    """A flat dealer array as a matrix with ``columns`` columns (refused if it does not fit)."""
    array = np.asarray(array, dtype=np.uint64)
    if columns <= 0 or array.size == 0 or array.size % columns:
        raise step.refuse(f"the dealer's {what} does not fit the statistics' shape")
    return array.reshape(-1, columns)


def _gram_width(d: int) -> int:
    return d * (d + 1) // 2


# --- the feature node's pair key (psi-reblind) -------------------------------------------------


def feature_pair_key(state: MutableMapping[str, Any]) -> np.ndarray:
    """A fresh X25519 key pair for this run; the secret stays in ``state``, the public half
    goes to the label node with the re-blinded elements."""
    secret, public = PairChannel.generate()
    state["pair_secret"] = secret
    return np.frombuffer(public, dtype=np.uint8).copy()


# --- L: psi-match ------------------------------------------------------------------------------


def label_pair_arrays(
    step: VerticalStep,
    data: NodeArrays,
    state: MutableMapping[str, Any],
    feature_node: str,
    train_rows: np.ndarray,
    at: np.ndarray,
    n_pos: int,
) -> dict[str, np.ndarray]:
    """L's masked label columns for one feature node, sealed to it: ``m * [x_label, 1, y-0.5]``
    and ``m`` over F's positions (m: 1 at aligned training positions, else 0)."""
    arrays = step.request.arrays
    names = [f"{k}:{feature_node}" for k in ("pair_key", "deal_cross_key", "deal_cross_u")]
    names += [f"deal_gram_key:{feature_node}", f"deal_gram_u:{feature_node}"]
    if any(n not in arrays for n in names):
        raise step.refuse("the secure linear protocol needs the pair key and the dealer's share")
    assert data.y is not None
    spec = step.spec
    x_label = clip_rows(data.x[train_rows], spec.label_row_clip)
    columns = label_side_columns(x_label, data.y[train_rows])
    width = columns.shape[1]
    q_cross = np.zeros((n_pos, width))
    q_cross[at] = columns
    q_gram = np.zeros((n_pos, 1))
    q_gram[at] = 1.0
    u_cross = _ring(step, arrays[f"deal_cross_u:{feature_node}"], width, "cross share")
    u_gram = _ring(step, arrays[f"deal_gram_u:{feature_node}"], 1, "Gram share")
    d_feature = u_cross.shape[0]
    if u_gram.shape[0] != _gram_width(d_feature):
        raise step.refuse("the dealer's shares disagree on the feature node's width")
    enc_cross, enc_gram = encode_fixed(q_cross), encode_fixed(q_gram)
    share_cross = DealerShareB(arrays[f"deal_cross_key:{feature_node}"].tobytes(), u_cross)
    share_gram = DealerShareB(arrays[f"deal_gram_key:{feature_node}"].tobytes(), u_gram)
    secret, public = PairChannel.generate()
    channel = _channel(step, secret, arrays[f"pair_key:{feature_node}"], feature_node)
    state.update(
        {
            f"pair_secret:{feature_node}": secret,
            f"peer_key:{feature_node}": np.asarray(arrays[f"pair_key:{feature_node}"], np.uint8),
            f"q_cross:{feature_node}": enc_cross,
            f"q_gram:{feature_node}": enc_gram,
            f"u_cross:{feature_node}": u_cross,
            f"u_gram:{feature_node}": u_gram,
            f"deal_key_cross:{feature_node}": share_cross.key_b,
            f"deal_key_gram:{feature_node}": share_gram.key_b,
            f"d_feature:{feature_node}": d_feature,
        }
    )
    return {
        f"pair_key:{feature_node}": np.frombuffer(public, dtype=np.uint8).copy(),
        f"sealed_cross:{feature_node}": channel.seal(mask_b(enc_cross, share_cross), _CROSS),
        f"sealed_gram:{feature_node}": channel.seal(mask_b(enc_gram, share_gram), _GRAM),
    }


def linear_psi_match(
    step: VerticalStep,
    data: NodeArrays,
    state: MutableMapping[str, Any],
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    matched: Mapping[str, np.ndarray],
    positions: Mapping[str, int],
) -> tuple[dict[str, np.ndarray], VerticalPlan]:
    """L after the alignment: reserve its whole epsilon, keep its own block, and send each
    feature node its sealed masked label columns and its test positions."""
    plan = plan_linear_node(step.job.dp)
    assert data.y is not None
    x_label = clip_rows(data.x[train_rows], step.spec.label_row_clip)
    state["label_block"] = label_block(x_label, data.y[train_rows])
    replies: dict[str, np.ndarray] = {}
    for f in sorted(matched):
        at, test_pos = matched[f][train_rows], matched[f][test_rows]
        replies.update(label_pair_arrays(step, data, state, f, train_rows, at, positions[f]))
        replies[f"test:{f}"] = np.sort(test_pos)
        if step.spec.reveal_to == "all":
            replies[f"train:{f}"] = np.sort(at)
        state[f"test_pos:{f}"] = test_pos
        state[f"n_pos:{f}"] = positions[f]
    # reserved only once the dealer's arrays and pair keys are checked: a refusal writes nothing
    state["ledger_reserved"] = reserve_epsilon(step, plan) is not None
    return replies, plan


# --- F: vertical-share ---------------------------------------------------------------------------


def vertical_share(
    step: VerticalStep, data: NodeArrays, state: MutableMapping[str, Any]
) -> VerticalReply:
    """F: its clipped features and their squares over its positions, masked and sealed to L,
    and its share of both products with its Gaussian noise (its one DP release)."""
    expect_state(step, state, "psi-reblind")
    arrays, spec = step.request.arrays, step.spec
    n_rows, n_positions = int(state["n_rows"]), int(state["n_positions"])
    if len(data.ids) != n_rows:
        raise step.refuse("the node's data changed during the run")
    test = arrays["test"]
    if len(test) and int(test[-1]) >= n_positions:
        raise step.refuse("the test positions do not match the node's positions")
    order = secret_order(state["order_seed"], n_positions)
    real = order < n_rows
    if bool((~real[test]).any()):
        raise step.refuse("a test position is not one of the node's records")
    check_test_count(step, int(real.sum()), len(test))
    check_rules(step, data, int(real.sum()) - len(test))
    d_feature = data.x.shape[1]
    x = np.zeros((n_positions, d_feature))
    x[real] = clip_rows(data.x[order[real]], spec.feature_row_clip)
    squares = feature_square_columns(x)
    t_flat = np.asarray(arrays["deal_cross_t"], dtype=np.uint64)
    if t_flat.size % d_feature or t_flat.size // d_feature < 3:
        raise step.refuse("the dealer's cross share does not fit the node's features")
    t_cross = t_flat.reshape(d_feature, -1)
    t_gram = _ring(step, arrays["deal_gram_t"], 1, "Gram share")
    if t_gram.shape[0] != _gram_width(d_feature):
        raise step.refuse("the dealer's Gram share does not fit the node's features")
    width = t_cross.shape[1]
    channel = _channel(step, state["pair_secret"], arrays["pair_key"], spec.label_node)
    masked_cross = _open(step, channel, arrays["sealed_cross"], _CROSS, (n_positions, width))
    masked_gram = _open(step, channel, arrays["sealed_gram"], _GRAM, (n_positions, 1))
    plan = plan_linear_node(step.job.dp)
    ledger = reserve_epsilon(step, plan)
    noise = node_noise(step, 1)
    layout = LinearLayout(width - 2, d_feature)
    noise_cross, noise_gram = feature_noise(noise, layout, _statistics_std(step, plan))
    share_cross = DealerShareA(np.asarray(arrays["deal_cross_key"], np.uint8).tobytes(), t_cross)
    share_gram = DealerShareA(np.asarray(arrays["deal_gram_key"], np.uint8).tobytes(), t_gram)
    enc_x, enc_sq = encode_fixed(x), encode_fixed(squares)
    mine_cross = share_a_result(share_cross, masked_cross, noise=noise_cross)
    mine_gram = share_a_result(share_gram, masked_gram, noise=noise_gram.reshape(-1, 1))
    epsilon = record_epsilon(step, ledger, plan, [])
    state.update({"done": "vertical-share", "epsilon": epsilon, "test": np.asarray(test)})
    del state["pair_secret"]  # the pair key is not needed again: it is not kept
    summary = {
        "dp": dp_summary(step, plan, epsilon, noise)
        | {"row_clip": spec.feature_row_clip, "statistics_std": _statistics_std(step, plan)},
        "train_rows": None,  # F does not know how many of its positions are aligned
        "positions": n_positions,
        "test_rows": len(test),
        "features": data.features,
    }
    out = {
        "masked_cross": channel.seal(mask_a(enc_x, share_cross), "masked_feature_cross"),
        "masked_gram": channel.seal(mask_a(enc_sq, share_gram), "masked_feature_gram"),
        "share_cross": channel.seal(mine_cross, "share_cross"),
        "share_gram": channel.seal(mine_gram, "share_gram"),
    }
    return VerticalReply("vertical-share", summary, out)


# --- L: vertical-solve ---------------------------------------------------------------------------


def _products(
    step: VerticalStep, state: Mapping[str, Any], f: str
) -> tuple[np.ndarray, np.ndarray]:
    """The two products for feature node ``f``, with F's noise: cross (dF x (dL+2)) and the
    upper triangle of F's Gram block over the aligned training rows."""
    arrays = step.request.arrays
    channel = _channel(step, state[f"pair_secret:{f}"], state[f"peer_key:{f}"], f)
    q_cross, q_gram = state[f"q_cross:{f}"], state[f"q_gram:{f}"]
    u_cross, u_gram = state[f"u_cross:{f}"], state[f"u_gram:{f}"]
    d_feature, n_pos = int(state[f"d_feature:{f}"]), int(state[f"n_pos:{f}"])
    gram_width = _gram_width(d_feature)
    masked_cross = _open(
        step, channel, arrays[f"masked_cross:{f}"], "masked_feature_cross", (n_pos, d_feature)
    )
    masked_gram = _open(
        step, channel, arrays[f"masked_gram:{f}"], "masked_feature_gram", (n_pos, gram_width)
    )
    theirs_cross = _open(step, channel, arrays[f"share_cross:{f}"], "share_cross", u_cross.shape)
    theirs_gram = _open(step, channel, arrays[f"share_gram:{f}"], "share_gram", u_gram.shape)
    key_cross, key_gram = state[f"deal_key_cross:{f}"], state[f"deal_key_gram:{f}"]
    mine_cross = share_b_result(DealerShareB(key_cross, u_cross), masked_cross, q_cross)
    mine_gram = share_b_result(DealerShareB(key_gram, u_gram), masked_gram, q_gram)
    cross = decode_product(combine(theirs_cross, mine_cross))
    gram = decode_product(combine(theirs_gram, mine_gram)).reshape(-1)
    return cross, gram


def vertical_solve(
    step: VerticalStep, data: NodeArrays, state: MutableMapping[str, Any]
) -> VerticalReply:
    """L: the statistics from its own block and the two products, its Gaussian noise over the
    whole statistic (its one DP release), the model; F's weights go back to F."""
    expect_state(step, state, "psi-match")
    (f,) = step.spec.feature_nodes
    spec, dp = step.spec, step.job.dp
    cross, gram = _products(step, state, f)
    label = np.asarray(state["label_block"])
    layout = LinearLayout(label.shape[0] - 2, int(state[f"d_feature:{f}"]))
    plan = plan_linear_node(dp)
    noise = node_noise(step, 0)
    own_std = _statistics_std(step, plan)
    stats = assemble_statistics(layout, label, cross, gram) + label_noise(noise, layout, own_std)
    total_std = own_std * np.sqrt(2.0)  # L's and F's noise: the same public sigma each
    try:
        model = solve_statistics(
            stats, layout, total_std, spec.label_row_clip, spec.feature_row_clip
        )
        alone = _label_alone(stats, layout, own_std, spec.label_row_clip)
    except (ConfideError, PrivacyError) as exc:
        raise step.refuse(f"the statistics cannot be solved: {exc}") from None
    reserved = bool(state.get("ledger_reserved"))
    epsilon = record_epsilon(step, step_ledger(step) if reserved else None, plan, [])
    top = TopModel(model.w_label, np.ones(1), model.bias, np.ones(1))
    save_top_model(
        model_path(step.node, step.request.run_id, "top"),
        top,
        {
            "feature_nodes": [f],
            "features": data.features,
            "protocol": "secure_linear",
            "label_row_clip": spec.label_row_clip,
        },
    )
    secret = ("pair_secret", "q_cross", "q_gram", "deal_key_cross", "deal_key_gram")
    for key in [k for k in state if k.split(":")[0] in secret]:
        del state[key]  # the pair key and the masked columns are not needed again
    state.update(
        {
            "done": "vertical-solve",
            "epsilon": epsilon,
            "model_w_label": model.w_label,
            "model_w_feature": model.w_feature,
            "model_bias": np.asarray([model.bias]),
            "alone_w": alone["w"],
            "alone_bias": alone["bias"],
        }
    )
    summary = {
        "dp": dp_summary(step, plan, epsilon, noise)
        | {"row_clip": spec.label_row_clip, "statistics_std": _statistics_std(step, plan)},
        "features": data.features,
    }
    weights = np.asarray(model.w_feature, dtype=np.float32)
    return VerticalReply("vertical-solve", summary, {f"weights:{f}": weights})


def _label_alone(
    stats: np.ndarray, layout: LinearLayout, std: float, clip: float
) -> dict[str, np.ndarray]:
    """The label node alone, from its own block of the same noisy statistic."""
    alone = label_alone_model(stats, layout, std, clip)
    return {"w": alone.w_label.copy(), "bias": np.asarray([alone.bias])}


# --- F: vertical-score ---------------------------------------------------------------------------


def vertical_score(
    step: VerticalStep, data: NodeArrays, state: MutableMapping[str, Any]
) -> VerticalReply:
    """F: stores its weights (a DP model) and sends the logits of the test positions."""
    expect_state(step, state, "vertical-share")
    arrays = step.request.arrays
    weights, test = np.asarray(arrays["weights"], np.float64), arrays["test"]
    if len(weights) != data.x.shape[1]:
        raise step.refuse("the weights do not match the node's features")
    if not np.array_equal(test, state["test"]):
        raise step.refuse("the test positions changed during the run")
    order = secret_order(state["order_seed"], int(state["n_positions"]))
    clip = step.spec.feature_row_clip
    logits = clip_rows(data.x[order[test]], clip) @ weights
    linear = {
        "linear.weight": torch.from_numpy(weights.reshape(1, -1)).float(),
        "linear.bias": torch.zeros(1),
    }
    save_model(
        model_path(step.node, step.request.run_id, "bottom"),
        linear,
        task_config(step.job, data.features),
        step.job.model_net,
        extra={"protocol": "secure_linear", "row_clip": clip},
    )
    state["done"] = "vertical-score"
    del state["order_seed"]  # the secret order is not needed again: it is not kept
    summary = {"test_rows": len(test)}
    return VerticalReply("vertical-score", summary, {"test_logit": logits.astype(np.float32)})


# --- L: vertical-evaluate ------------------------------------------------------------------------


def vertical_evaluate(
    step: VerticalStep, data: NodeArrays, state: MutableMapping[str, Any]
) -> VerticalReply:
    """L: the model on the test rows with F's test logits; metrics of it and of L alone."""
    expect_state(step, state, "vertical-solve")
    (f,) = step.spec.feature_nodes
    logits = np.asarray(step.request.arrays[f"test_logit:{f}"], dtype=np.float64)
    test_pos = np.asarray(state[f"test_pos:{f}"])
    if len(logits) != len(test_pos):
        raise step.refuse(f"feature node '{f}' sent logits for another number of test rows")
    by_row = logits[np.searchsorted(np.sort(test_pos), test_pos)]
    spec = step.spec
    model = LinearVerticalModel(
        np.asarray(state["model_w_label"]),
        np.asarray(state["model_w_feature"]),
        float(np.asarray(state["model_bias"])[0]),
        spec.label_row_clip,
        spec.feature_row_clip,
    )
    test_rows = np.asarray(state["test_rows"])
    assert data.y is not None
    x_test, y_test = data.x[test_rows], data.y[test_rows]
    prob = model.predict_proba(x_test, by_row)
    z = clip_rows(x_test, spec.label_row_clip) @ np.asarray(state["alone_w"])
    z = z + float(np.asarray(state["alone_bias"])[0])
    alone_prob = 1.0 / (1.0 + np.exp(-z))
    state["done"] = "vertical-evaluate"
    summary = evaluation_summary(y_test, prob, alone_prob, len(state["train_rows"]))
    return VerticalReply("vertical-evaluate", summary)
