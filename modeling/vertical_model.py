"""Vertical split learning on arrays: the label release, bottom models, embedding release, top.

The protocol of docs/vertical.md, one exchange each way:

1. The label node L trains its own model on its features with DP-SGD (the "label node alone"
   baseline) and releases, per position of a feature node F, the clipped residual
   ``clip(y - p, -1, 1) + N(0, sigma_l^2)`` (pure noise at positions that are not aligned
   training rows): :func:`label_release`.
2. F trains a bottom model (the task's registered model, one output, squared loss) on those
   noisy residuals with DP-SGD (:func:`train_bottom`) and releases clipped embeddings plus
   Gaussian noise and one DP release of their mean and second moment
   (:func:`embedding_release`).
3. L fits a logistic top model over its own features and the noisy embeddings, correcting each
   embedding's coefficient for the known noise variance by regression calibration
   (:func:`fit_top`), and scores test rows with the clean embeddings (:func:`embed`).

:func:`run_vertical_arrays` runs all of it in one process on already-aligned arrays (tests,
benchmarks and the simulation baselines); :func:`run_vertical_baselines` adds the label node
alone, vertical without DP and centralised without DP on the same split. Every Gaussian draw of
a release comes from the releasing node's :class:`~confide.modeling.noise.NoiseSource`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression as _SkLogistic
from torch import nn

from confide.core.files import atomic_write_bytes, read_regular_file
from confide.modeling.dp_accounting import epsilon_for_history, steps_per_epoch
from confide.modeling.errors import ConfideError, ModelFileError
from confide.modeling.factory import ModelSpec
from confide.modeling.local_training import train_local
from confide.modeling.metrics import binary_metrics
from confide.modeling.noise import NoiseSource, noise_source
from confide.modeling.prediction import predict_proba
from confide.modeling.state_vectors import read_vectors
from confide.modeling.training_settings import DPSettings, TrainSettings
from confide.modeling.vertical_dp import (
    MOMENT_SIGMA_RATIO,
    VerticalPlan,
    plan_feature_node,
    plan_label_node,
)

__all__ = [
    "BOTTOM_LR_FACTOR",
    "TOP_FORMAT",
    "TopModel",
    "VerticalArraysResult",
    "VerticalError",
    "centralised_baseline",
    "clipped_normal_second_moment",
    "embed",
    "embedding_release",
    "fit_top",
    "label_release",
    "load_top_model",
    "node_history",
    "run_vertical_arrays",
    "run_vertical_baselines",
    "save_top_model",
    "train_bottom",
    "train_dp_model",
]

TOP_FORMAT = "confide-vertical-top-v1"
_MIN_VAR = 1e-12
_MIN_STD = 1e-4  # floor of the DP standard deviation of the raw bottom outputs
_TOP_KEYS = ("w_label", "w_embedding", "bias", "lambdas")
#: The bottom model's step size relative to the job's: its targets are the label release, whose
#: noise (std ~5 at the default label epsilon) dwarfs the residual signal, and plain-size steps
#: leave the weights jittering around the fit. Measured on the synthetic vertical data (4 release
#: draws, label epsilon 0.8): gap to the centralised ROC-AUC 0.042 at the job's 0.5, 0.020-0.022
#: at 0.1 / 0.05 / 0.03, 0.011 for exact least squares on the same noisy targets.
BOTTOM_LR_FACTOR = 0.1


class VerticalError(ConfideError):
    """Vertical arrays or settings break the protocol's contract (shapes, positions, sizes)."""


def _gaussian(source: NoiseSource, n: int, std: float) -> np.ndarray:
    """``n`` draws of N(0, std^2) from ``source`` as float64 (zeros when ``std`` is 0)."""
    if std <= 0.0:
        return np.zeros(n, dtype=np.float64)
    return source.gaussian(n, std).numpy().astype(np.float64)


def label_release(
    y: np.ndarray,
    p: np.ndarray,
    positions_train: np.ndarray,
    n_positions: int,
    sigma: float,
    source: NoiseSource,
) -> np.ndarray:
    """The label node's release to one feature node: float32 of length ``n_positions``.

    At each aligned training position ``positions_train[i]``: ``clip(y[i] - p[i], -1, 1)`` plus
    N(0, sigma^2); at every other position pure N(0, sigma^2), so the receiver cannot tell which
    of its positions matched. One draw per position, in position order, from ``source``.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    pos = np.asarray(positions_train, dtype=np.int64).reshape(-1)
    if not (len(y) == len(p) == len(pos)):
        raise VerticalError(
            "label_release: y, p and positions_train must have one entry per aligned training "
            "row (rule: vertical label release)"
        )
    if len(pos) and (pos.min() < 0 or pos.max() >= n_positions):
        raise VerticalError(
            "label_release: a training position lies outside the feature node's positions "
            "(rule: vertical label release)"
        )
    if len(np.unique(pos)) != len(pos):
        raise VerticalError(
            "label_release: a feature-node position is aligned twice (rule: vertical alignment)"
        )
    if sigma < 0 or not math.isfinite(sigma):
        raise VerticalError("label_release: sigma must be finite and >= 0 (rule: vertical DP)")
    out = _gaussian(source, int(n_positions), float(sigma))
    out[pos] += np.clip(y - p, -1.0, 1.0)
    return out.astype(np.float32)


def node_history(
    sgd_history: Sequence[tuple[float, float, int]], plan: VerticalPlan
) -> list[tuple[float, float, int]]:
    """A node's whole accountant history: the DP-SGD steps it took plus its planned releases."""
    return [tuple(h) for h in sgd_history] + plan.release_history()  # type: ignore[misc]


def _as_model(model: ModelSpec | nn.Module, input_dim: int, seed: int) -> nn.Module:
    if isinstance(model, ModelSpec):
        return model.build(input_dim, seed=seed, out_dim=1)
    if isinstance(model, nn.Module):
        return model
    raise VerticalError(
        "vertical: a model must be a ModelSpec from the registry or a built model "
        "(rule: model registry)"
    )


def train_dp_model(
    x: np.ndarray,
    y: np.ndarray,
    model: ModelSpec | nn.Module,
    train: TrainSettings,
    dp: DPSettings,
    plan: VerticalPlan,
    source: NoiseSource,
    seed: int,
    loss: nn.Module | None = None,
) -> tuple[nn.Module, list[tuple[float, float, int]]]:
    """Train ``model`` on ``(x, y)`` for the plan's steps (DP-SGD at ``plan.sgd_sigma`` with DP
    on, plain SGD otherwise); returns the model and the DP-SGD history (empty with DP off)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32).reshape(-1)
    if len(x) != len(y) or len(x) == 0:
        raise VerticalError(
            "vertical: a model needs as many targets as rows, and at least one row "
            "(rule: vertical training rows)"
        )
    net = _as_model(model, x.shape[1], seed)
    per_epoch = steps_per_epoch(len(x), train.batch_size)
    epochs, rest = divmod(plan.steps, per_epoch)
    if rest or epochs < 1:
        raise VerticalError(
            "vertical: the plan's steps do not match these rows and batch size; plan with the "
            "same row count (rule: vertical plan)"
        )
    whole = replace(train, local_epochs=epochs, proximal_mu=0.0)
    run_dp = replace(dp, enabled=dp.enabled and plan.enabled)
    result = train_local(
        net, x, y, whole, run_dp, plan.sgd_state(), seed=seed, noise=source, loss=loss
    )
    if run_dp.enabled and result.steps != plan.steps:
        raise VerticalError("vertical: DP-SGD took fewer steps than planned (rule: vertical plan)")
    history = [tuple(h) for h in result.state.history] if result.state else []
    net.eval()
    return net, history  # type: ignore[return-value]


def train_bottom(
    x: np.ndarray,
    targets: np.ndarray,
    model: ModelSpec | nn.Module,
    train: TrainSettings,
    dp: DPSettings,
    plan: VerticalPlan,
    source: NoiseSource,
    seed: int,
) -> tuple[nn.Module, list[tuple[float, float, int]]]:
    """A feature node's bottom model: one output, squared loss on the released residuals,
    DP-SGD on the given rows (test positions and dummies already excluded by the caller), at
    ``BOTTOM_LR_FACTOR`` times the job's learning rate (the plan's steps are unchanged)."""
    slow = replace(train, learning_rate=train.learning_rate * BOTTOM_LR_FACTOR)
    return train_dp_model(x, targets, model, slow, dp, plan, source, seed, loss=nn.MSELoss())


@torch.no_grad()
def embed(model: nn.Module, x: np.ndarray, clip: float) -> np.ndarray:
    """Clean embeddings of rows ``x``: the bottom model's output clipped to [-clip, clip]
    (after :func:`embedding_release` the model outputs standardised values, so ``clip`` is in
    standard deviations)."""
    if not clip > 0:
        raise VerticalError("vertical: embedding_clip must be > 0 (rule: vertical DP)")
    model.eval()
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    out = model(xs).reshape(len(xs)).numpy().astype(np.float64) if len(xs) else np.zeros(0)
    return np.clip(out, -clip, clip)


def clipped_normal_second_moment(clip: float) -> float:
    """E[min(Z^2, clip^2)] for a standard normal Z: the variance of a standardised embedding
    clipped at ``clip`` standard deviations (its mean is 0 by symmetry)."""
    c = float(clip)
    inside = (2 * norm.cdf(c) - 1) - 2 * c * norm.pdf(c)  # E[Z^2; |Z| <= c]
    return float(inside + c * c * 2 * norm.sf(c))


@torch.no_grad()
def _standardise_output(model: nn.Module, mean: float, std: float) -> None:
    """Rescale the last Linear layer in place so the model outputs ``(output - mean) / std``."""
    last = [m for m in model.modules() if type(m) is nn.Linear]
    if not last or last[-1].out_features != 1:
        raise VerticalError(
            "vertical: a bottom model must end in a Linear layer with one output "
            "(rule: vertical bottom model)"
        )
    layer = last[-1]
    layer.weight.div_(std)
    if layer.bias is None:
        raise VerticalError("vertical: a bottom model's last layer needs a bias (rule: model)")
    layer.bias.sub_(mean).div_(std)


def embedding_release(
    model: nn.Module,
    x: np.ndarray,
    clip: float,
    sigma: float,
    source: NoiseSource,
    moment_sigma: float | None = None,
) -> tuple[np.ndarray, tuple[float, float]]:
    """A feature node's release over rows ``x``: noisy standardised embeddings and their
    (mean, second moment) in the released scale.

    1. The moment release: the bottom's raw outputs, clipped to [-1, 1] (the residual scale),
       give noisy sums of ``o`` and ``o^2`` (a row moves the pair by at most sqrt(2)), each
       with N(0, 2 moment_sigma^2) (``moment_sigma`` defaults to the plan's ratio times
       ``sigma``): a DP mean and standard deviation of the outputs.
    2. The model is rescaled in place to output ``(o - mean) / std`` (post-processing of the
       DP moments), so the embeddings fill the clip: each is clipped to [-clip, clip] standard
       deviations and released with N(0, (sigma * clip)^2).

    The returned moments are those of a standardised embedding clipped at ``clip``:
    ``(0, clipped_normal_second_moment(clip))``. Draws come from ``source``: the two sums
    first, then one per row. The row count is public (the positions are).
    """
    if sigma < 0 or not math.isfinite(sigma):
        raise VerticalError("embedding_release: sigma must be finite and >= 0 (rule: vertical DP)")
    raw = embed(model, x, 1.0)
    n = len(raw)
    if n == 0:
        raise VerticalError("embedding_release: no rows to release (rule: vertical training rows)")
    m_sigma = MOMENT_SIGMA_RATIO * sigma if moment_sigma is None else float(moment_sigma)
    sums = np.array([raw.sum(), (raw * raw).sum()]) + _gaussian(source, 2, m_sigma * math.sqrt(2))
    mean = float(np.clip(sums[0] / n, -1.0, 1.0))
    var = float(sums[1] / n) - mean * mean
    _standardise_output(model, mean, math.sqrt(max(var, _MIN_STD**2)))
    clean = embed(model, x, clip)
    noisy = clean + _gaussian(source, n, sigma * clip)
    return noisy.astype(np.float32), (0.0, clipped_normal_second_moment(clip))


def _clean_variance(moments: tuple[float, float]) -> float:
    mean, second = moments
    return max(float(second) - float(mean) ** 2, _MIN_VAR)


@dataclass(frozen=True)
class TopModel:
    """The label node's logistic top model over its features and each feature node's embedding.

    ``logit = x_label @ w_label + sum_j w_embedding[j] * e_j + bias`` with clean embeddings;
    ``lambdas``: the reliability ratio used for each embedding's correction (1 without noise).
    """

    w_label: np.ndarray
    w_embedding: np.ndarray
    bias: float
    lambdas: np.ndarray

    def logits(self, x_label: np.ndarray, embeddings: Sequence[np.ndarray]) -> np.ndarray:
        """Logits of rows given the label node's features and each clean embedding."""
        x = np.asarray(x_label, dtype=np.float64)
        if (
            x.ndim != 2
            or x.shape[1] != len(self.w_label)
            or len(embeddings) != len(self.w_embedding)
        ):
            raise VerticalError(
                "top model: the inputs do not match its label features or embedding count "
                "(rule: vertical top model)"
            )
        z = x @ self.w_label + self.bias
        for weight, e in zip(self.w_embedding, embeddings, strict=True):
            e = np.asarray(e, dtype=np.float64).reshape(-1)
            if len(e) != len(x):
                raise VerticalError(
                    "top model: an embedding has a different row count than the label "
                    "features (rule: vertical top model)"
                )
            z = z + weight * e
        return z

    def predict_proba(self, x_label: np.ndarray, embeddings: Sequence[np.ndarray]) -> np.ndarray:
        """Positive-class probabilities from the label features and the clean embeddings."""
        return 1.0 / (1.0 + np.exp(-self.logits(x_label, embeddings)))

    def to_state(self) -> dict[str, torch.Tensor]:
        """The weights as a plain state dict of float64 tensors (data only)."""
        return {
            "w_label": torch.from_numpy(np.asarray(self.w_label, dtype=np.float64).copy()),
            "w_embedding": torch.from_numpy(np.asarray(self.w_embedding, dtype=np.float64).copy()),
            "bias": torch.tensor([float(self.bias)], dtype=torch.float64),
            "lambdas": torch.from_numpy(np.asarray(self.lambdas, dtype=np.float64).copy()),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], where: str = "top model") -> TopModel:
        """The inverse of :meth:`to_state`, checking keys, shapes and finiteness."""
        arrays = read_vectors(state, _TOP_KEYS, where, "vertical top model")
        if len(arrays["bias"]) != 1 or len(arrays["lambdas"]) != len(arrays["w_embedding"]):
            raise ModelFileError(
                f"{where}: fields 'state.bias'/'state.lambdas' have the wrong length "
                "(rule: vertical top model)"
            )
        return cls(
            arrays["w_label"], arrays["w_embedding"], float(arrays["bias"][0]), arrays["lambdas"]
        )


def fit_top(
    x_label: np.ndarray,
    noisy_embeddings: Sequence[np.ndarray],
    y: np.ndarray,
    noise_vars: Sequence[float],
    moments: Sequence[tuple[float, float]],
    *,
    correct: bool = True,
    l2: float = 1e-4,
) -> TopModel:
    """Fit the logistic top model on aligned training rows.

    Each noisy embedding ``e~ = e + noise`` (noise variance ``noise_vars[j]``, known from the
    plan) is replaced by its regression-calibration estimate ``m + lambda (e~ - m)`` with
    ``lambda = var_clean / (var_clean + noise_var)``, where ``m`` and ``var_clean`` come from
    the DP moment release; the fitted coefficient then applies to clean embeddings (without
    the correction, ``correct=False``, it is attenuated by about ``lambda``). ``l2`` is the
    ridge penalty per row on standardised inputs.
    """
    x = np.asarray(x_label, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    k = len(noisy_embeddings)
    if not (k == len(noise_vars) == len(moments)):
        raise VerticalError(
            "fit_top: one noise variance and one moment pair per embedding (rule: vertical top)"
        )
    if x.ndim != 2 or len(x) != len(y) or not 0 < y.sum() < len(y):
        raise VerticalError(
            "fit_top: label features must be a matrix with one row per label and both classes "
            "present (rule: vertical top)"
        )
    columns, lambdas = [], []
    for e, var_noise, mom in zip(noisy_embeddings, noise_vars, moments, strict=True):
        e = np.asarray(e, dtype=np.float64).reshape(-1)
        if len(e) != len(y):
            raise VerticalError(
                "fit_top: an embedding has a different row count than the labels "
                "(rule: vertical top)"
            )
        var_clean = _clean_variance(mom)
        lam = var_clean / (var_clean + max(float(var_noise), 0.0)) if correct else 1.0
        mean = float(mom[0])
        columns.append(mean + lam * (e - mean))
        lambdas.append(lam)
    design = np.column_stack([x, *columns]) if columns else x
    center = design.mean(axis=0)
    scale = design.std(axis=0)
    scale[scale < 1e-12] = 1.0
    fit = _SkLogistic(C=1.0 / (l2 * len(y)), max_iter=2000, tol=1e-8)
    fit.fit((design - center) / scale, y)
    w = fit.coef_.reshape(-1) / scale
    bias = float(fit.intercept_[0] - (w * center).sum())
    d = x.shape[1]
    return TopModel(w[:d].copy(), w[d:].copy(), bias, np.asarray(lambdas, dtype=np.float64))


def save_top_model(path: Path, top: TopModel, extra: dict[str, Any] | None = None) -> None:
    """Write the top model as data (state dict + plain fields) atomically to ``path``."""
    payload = {"format": TOP_FORMAT, "state": top.to_state(), "extra": extra or {}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_top_model(path: Path) -> tuple[TopModel, dict[str, Any]]:
    """Read a file of :func:`save_top_model` with ``weights_only=True``; (model, extra)."""
    path = Path(path)
    data = read_regular_file(path, "vertical top model", max_bytes=16 * 1024 * 1024)
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(
            f"{path}: not a readable vertical top model ({type(exc).__name__}) (rule: model)"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != TOP_FORMAT:
        raise ModelFileError(f"{path}: field 'format': not a vertical top model (rule: model)")
    if set(payload) != {"format", "state", "extra"} or not isinstance(payload["extra"], dict):
        raise ModelFileError(f"{path}: unexpected or missing top-level fields (rule: model)")
    return TopModel.from_state(payload["state"], str(path)), payload["extra"]


@dataclass
class VerticalArraysResult:
    """What :func:`run_vertical_arrays` measured on the test rows, and each node's accounting."""

    metrics: dict[str, float]
    label_alone_metrics: dict[str, float]
    label_plan: VerticalPlan
    feature_plans: list[VerticalPlan]
    label_history: list[tuple[float, float, int]]
    feature_histories: list[list[tuple[float, float, int]]]
    label_epsilon: float
    feature_epsilons: list[float]
    top: TopModel
    #: what each feature node received (its positions = the aligned rows here) and the aligned
    #: training rows, for the label-leakage attacks
    label_releases: list[np.ndarray] = field(repr=False, default_factory=list)
    train_rows: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))


def _check_split(n: int, train_idx: np.ndarray, test_idx: np.ndarray) -> None:
    both = np.concatenate([train_idx, test_idx])
    if (
        len(train_idx) == 0
        or len(test_idx) == 0
        or both.min() < 0
        or both.max() >= n
        or len(np.unique(both)) != len(both)
    ):
        raise VerticalError(
            "vertical: train and test rows must be disjoint, non-empty and within the aligned "
            "rows (rule: vertical split)"
        )


def _epsilon(history: list[tuple[float, float, int]], dp: DPSettings) -> float:
    return epsilon_for_history(history, dp.delta, dp.accountant) if dp.enabled else math.inf


def run_vertical_arrays(
    x_label: np.ndarray,
    x_features: Sequence[np.ndarray],
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    model: ModelSpec,
    dp: DPSettings,
    train: TrainSettings,
    rounds: int,
    label_dp_epsilon: float,
    embedding_dp_epsilon: float,
    embedding_clip: float = 1.0,
    seed: int = 0,
) -> VerticalArraysResult:
    """The whole vertical protocol in one process on aligned arrays (row i is the same customer
    at every node): label model, label release, bottoms, embedding release, top, evaluation.

    Each node draws from its own noise source (``dp.noise``: seeded from ``seed`` + node index in
    simulation). Feature nodes train and release on every non-test row; the top is fit on the
    training rows and evaluated on the test rows with clean embeddings.
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    test_idx = np.asarray(test_idx, dtype=np.int64)
    n = len(y)
    if len(x_label) != n or any(len(xf) != n for xf in x_features) or not x_features:
        raise VerticalError(
            "vertical: every node's aligned array needs one row per label, and at least one "
            "feature node (rule: vertical alignment)"
        )
    _check_split(n, train_idx, test_idx)
    x_label = np.ascontiguousarray(x_label, dtype=np.float32)
    k = len(x_features)
    label_plan = plan_label_node(dp, len(train_idx), train, rounds, label_dp_epsilon, releases=k)
    label_source = noise_source(dp.noise, seed)
    label_model, label_sgd = train_dp_model(
        x_label[train_idx], y[train_idx], model, train, dp, label_plan, label_source, seed
    )
    p_train = predict_proba(label_model, x_label[train_idx])
    not_test = np.setdiff1d(np.arange(n), test_idx)
    feature_plans, feature_histories, noisy_train, moments, noise_vars = [], [], [], [], []
    clean_test, releases = [], []
    plan = plan_feature_node(dp, len(not_test), train, rounds, embedding_dp_epsilon)  # same for all
    for j, xf in enumerate(x_features):
        xf = np.ascontiguousarray(xf, dtype=np.float32)
        release = label_release(
            y[train_idx], p_train, train_idx, n, label_plan.release_sigma, label_source
        )
        releases.append(release)
        source = noise_source(dp.noise, seed + 1 + j)
        bottom, sgd = train_bottom(
            xf[not_test], release[not_test], model, train, dp, plan, source, seed + 1 + j
        )
        noisy, mom = embedding_release(
            bottom, xf[not_test], embedding_clip, plan.release_sigma, source, plan.moment_sigma
        )
        by_row = np.zeros(n, dtype=np.float64)
        by_row[not_test] = noisy
        noisy_train.append(by_row[train_idx])
        moments.append(mom)
        noise_vars.append((plan.release_sigma * embedding_clip) ** 2)
        clean_test.append(embed(bottom, xf[test_idx], embedding_clip))
        feature_plans.append(plan)
        feature_histories.append(node_history(sgd, plan))
    top = fit_top(x_label[train_idx], noisy_train, y[train_idx], noise_vars, moments)
    prob = top.predict_proba(x_label[test_idx], clean_test)
    label_history = node_history(label_sgd, label_plan)
    return VerticalArraysResult(
        metrics=binary_metrics(y[test_idx], prob),
        label_alone_metrics=binary_metrics(
            y[test_idx], predict_proba(label_model, x_label[test_idx])
        ),
        label_plan=label_plan,
        feature_plans=feature_plans,
        label_history=label_history,
        feature_histories=feature_histories,
        label_epsilon=_epsilon(label_history, dp),
        feature_epsilons=[_epsilon(h, dp) for h in feature_histories],
        top=top,
        label_releases=releases,
        train_rows=train_idx,
    )


def centralised_baseline(
    x_all: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    model: ModelSpec,
    train: TrainSettings,
    rounds: int,
    seed: int = 0,
) -> dict[str, float]:
    """The job's model on the pooled aligned columns without DP, for the run's total epochs."""
    x_all = np.ascontiguousarray(x_all, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    _check_split(len(y), np.asarray(train_idx), np.asarray(test_idx))
    net = model.build(x_all.shape[1], seed=seed, out_dim=1)
    whole = replace(train, local_epochs=rounds * train.local_epochs, proximal_mu=0.0)
    train_local(net, x_all[train_idx], y[train_idx], whole, DPSettings(enabled=False), None, seed)
    return binary_metrics(y[test_idx], predict_proba(net, x_all[test_idx]))


def run_vertical_baselines(
    x_label: np.ndarray,
    x_features: Sequence[np.ndarray],
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    model: ModelSpec,
    dp: DPSettings,
    train: TrainSettings,
    rounds: int,
    label_dp_epsilon: float,
    embedding_dp_epsilon: float,
    embedding_clip: float = 1.0,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Test metrics of the vertical job and its baselines on the same split:
    ``vertical`` (the job's DP), ``label_node_alone`` (its features, same DP),
    ``vertical_no_dp`` (all sigmas 0) and ``centralised_no_dp`` (pooled columns, no DP)."""
    args = (x_label, x_features, y, train_idx, test_idx, model)
    rest = dict(embedding_clip=embedding_clip, seed=seed)
    private = run_vertical_arrays(
        *args, dp, train, rounds, label_dp_epsilon, embedding_dp_epsilon, **rest
    )
    plain = run_vertical_arrays(
        *args,
        replace(dp, enabled=False),
        train,
        rounds,
        label_dp_epsilon,
        embedding_dp_epsilon,
        **rest,
    )
    pooled = np.column_stack([np.asarray(x_label), *[np.asarray(x) for x in x_features]])
    return {
        "vertical": private.metrics,
        "label_node_alone": private.label_alone_metrics,
        "vertical_no_dp": plain.metrics,
        "centralised_no_dp": centralised_baseline(
            pooled, y, train_idx, test_idx, model, train, rounds, seed
        ),
    }
