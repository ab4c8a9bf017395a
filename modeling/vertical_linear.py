"""Vertical linear model from DP sufficient statistics (docs/vertical.md, "Next step").

The label node L holds ``x_label`` (n x dL) and ``y``; a feature node F holds ``x_feat``
(n x dF); rows are aligned. Each row is clipped to an L2 norm (``clip_label``, ``clip_feature``)
and forms the joint row ``a = [x_label, 1, x_feat, y - 0.5]`` (``D = dL + dF + 2``). The model
needs only ``M = sum_rows a a^T``; one row moves ``M`` by at most ``||a||^2 <= C2 =
clip_label^2 + 1 + clip_feature^2 + 0.25`` in Frobenius norm (:func:`row_bound`).

- F adds N(0, (sigma_F C2)^2) to every entry involving ``x_feat``: the cross block
  ``x_feat^T [x_label, 1, y - 0.5]`` and the upper triangle of ``x_feat^T x_feat``
  (:func:`feature_noise`; in the protocol inside a secure product, so L only sees noisy entries).
- L adds symmetric N(0, (sigma_L C2)^2) noise to every upper-triangle entry of ``M``
  (:func:`label_noise`).
- Each sigma is the noise multiplier of ONE Gaussian release (sample rate 1, one step) whose
  epsilon is the node's ``dp.epsilon`` (:func:`stats_sigma`).

Solve (:func:`solve_statistics`, post-processing only): ``G`` = ``M`` without the label row and
column, ``b`` = the label column; ``G``'s eigenvalues are floored at ``3 total_std sqrt(dim G)``
(``total_std = C2 sqrt(sigma_L^2 + sigma_F^2)``: data-independent) and ``w = G^-1 b`` is the
least-squares fit of ``y - 0.5`` on ``[x_label, 1, x_feat]``. Calibration to logits is LDA in
closed form from the same statistics: with ``N`` the (noisy) count, ``pi`` the positive rate,
``v = pi (1 - pi)``, ``c = cov(x, y)`` and ``s = w . c``, the shared-covariance LDA direction is
``w / (v - s)`` (Sherman-Morrison: the total covariance is the within-class one plus ``v d d^T``
with ``d = c / v`` the class-mean difference) and the intercept is ``-beta . mid + log(pi / (1 -
pi))`` with ``mid = mean_x + (0.5 - pi) c / v`` the midpoint of the class means (the ones column
gets no coefficient). Without DP (sigmas 0) the same path runs without noise and without the
floor (a ridge of 1e-9 trace for safety).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from confide.modeling.errors import ConfideError, ModelFileError
from confide.modeling.metrics import binary_metrics
from confide.modeling.noise import NoiseSource, noise_source
from confide.modeling.state_vectors import read_vectors
from confide.modeling.training_settings import DPSettings
from confide.modeling.vertical_dp import plan_linear_node

__all__ = [
    "DEFAULT_CLIP_FEATURE",
    "DEFAULT_CLIP_LABEL",
    "FLOOR_FACTOR",
    "LinearArraysResult",
    "LinearLayout",
    "LinearVerticalModel",
    "VerticalLinearError",
    "assemble_statistics",
    "clip_rows",
    "feature_noise",
    "feature_square_columns",
    "label_alone_model",
    "label_block",
    "label_noise",
    "label_side_columns",
    "row_bound",
    "run_linear_vertical_arrays",
    "solve_statistics",
    "stats_sigma",
]

#: Default per-row L2 clips. The task encoding maps numerics to [0, 1] and categoricals to
#: one-hot, so encoded rows are short: on bank_ecommerce x joint_churn the label rows (16
#: columns) have norms median 1.95 / max 2.45 and the feature rows (12 columns) median 1.46 /
#: max 2.03, so these clip no label row and 0.014% of feature rows. Gap to centralised ROC-AUC
#: at epsilon 3 per node over 6 noise draws: mean 0.005 (max 0.008) at 2.5 / 2.0, mean 0.008
#: (max 0.014) at 3 / 3, mean 0.013 (max 0.023) at 4 / 3: the noise scales with C2, so a
#: loose clip costs more than clipping a few rows.
DEFAULT_CLIP_LABEL = 2.5
DEFAULT_CLIP_FEATURE = 2.0
#: The eigenvalue floor in noise standard deviations times sqrt(dim G): the spectral norm of a
#: symmetric Gaussian matrix of dimension k is about 2 std sqrt(k), so 3 keeps every floored
#: direction above what the noise alone can produce.
FLOOR_FACTOR = 3.0
_RIDGE = 1e-9
_MODEL_KEYS = ("w_label", "w_feature", "bias", "clip_label", "clip_feature")


class VerticalLinearError(ConfideError):
    """Vertical linear inputs or statistics break the contract (shapes, values, classes)."""


@dataclass(frozen=True)
class LinearLayout:
    """Where each part sits in the joint row ``[x_label, 1, x_feat, y - 0.5]``."""

    d_label: int
    d_feature: int

    def __post_init__(self) -> None:
        for name in ("d_label", "d_feature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise VerticalLinearError(
                    f"vertical linear: layout field '{name}' must be a whole number >= 0 "
                    "(rule: vertical linear layout)"
                )

    @property
    def dim(self) -> int:
        """D = dL + dF + 2."""
        return self.d_label + self.d_feature + 2

    @property
    def label_features(self) -> slice:
        """The label node's feature columns."""
        return slice(0, self.d_label)

    @property
    def one(self) -> slice:
        """The constant column (its diagonal entry is the row count)."""
        return slice(self.d_label, self.d_label + 1)

    @property
    def feature(self) -> slice:
        """The feature node's columns."""
        return slice(self.d_label + 1, self.d_label + 1 + self.d_feature)

    @property
    def label(self) -> slice:
        """The ``y - 0.5`` column (the last one)."""
        return slice(self.dim - 1, self.dim)

    @property
    def label_side(self) -> np.ndarray:
        """Indices of the label node's columns ``[x_label, 1, y - 0.5]`` in the joint row."""
        return np.r_[np.arange(self.d_label + 1), self.dim - 1]


def row_bound(clip_label: float, clip_feature: float) -> float:
    """C2 = clip_label^2 + 1 + clip_feature^2 + 0.25: the bound on ``||a||^2`` of a joint row."""
    _check_clip(clip_label, "clip_label")
    _check_clip(clip_feature, "clip_feature")
    return float(clip_label) ** 2 + 1.0 + float(clip_feature) ** 2 + 0.25


def _check_clip(clip: float, name: str) -> None:
    if isinstance(clip, bool) or not isinstance(clip, int | float) or not 0 < clip < math.inf:
        raise VerticalLinearError(
            f"vertical linear: {name} must be a finite number > 0 (rule: vertical linear clip)"
        )


def _matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise VerticalLinearError(
            f"vertical linear: {name} must be a 2-D array (rule: vertical linear input)"
        )
    if not np.isfinite(arr).all():
        raise VerticalLinearError(
            f"vertical linear: {name} has non-finite entries (rule: vertical linear input)"
        )
    return arr


def _labels(y: Any, n: int) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(arr) != n:
        raise VerticalLinearError(
            "vertical linear: y must have one label per feature row (rule: vertical alignment)"
        )
    if not np.isin(arr, (0.0, 1.0)).all():
        raise VerticalLinearError(
            "vertical linear: y must hold only 0 and 1 (rule: vertical linear labels)"
        )
    return arr


def clip_rows(x: np.ndarray, clip: float) -> np.ndarray:
    """``x`` as float64 with each row scaled down to L2 norm at most ``clip``."""
    _check_clip(clip, "clip")
    arr = _matrix(x, "x")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr * np.minimum(1.0, clip / np.maximum(norms, 1e-300))


def label_side_columns(x_label_clipped: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The label node's per-row vectors ``l = [x_label, 1, y - 0.5]`` (n x (dL + 2))."""
    x = _matrix(x_label_clipped, "x_label")
    labels = _labels(y, len(x))
    return np.column_stack([x, np.ones(len(x)), labels - 0.5])


def label_block(x_label_clipped: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sum_rows l l^T`` over the given rows ((dL + 2) x (dL + 2))."""
    cols = label_side_columns(x_label_clipped, y)
    return cols.T @ cols


def feature_square_columns(x_feat_clipped: np.ndarray) -> np.ndarray:
    """Per row, the upper triangle of ``f f^T`` (row-major, diagonal included):
    n x dF (dF + 1) / 2; their column sums are F's Gram block."""
    x = _matrix(x_feat_clipped, "x_feat")
    i, j = np.triu_indices(x.shape[1])
    return x[:, i] * x[:, j]


def _gaussian(source: NoiseSource, n: int, std: float) -> np.ndarray:
    if not (std >= 0.0 and math.isfinite(std)):
        raise VerticalLinearError(
            "vertical linear: a noise std must be finite and >= 0 (rule: vertical linear DP)"
        )
    if std == 0.0 or n == 0:
        return np.zeros(n, dtype=np.float64)
    return source.gaussian(n, std).numpy().astype(np.float64)


def feature_noise(
    source: NoiseSource, layout: LinearLayout, std: float
) -> tuple[np.ndarray, np.ndarray]:
    """F's noise: (cross block dF x (dL + 2), Gram upper triangle of length dF (dF + 1) / 2),
    drawn in that order from ``source`` (zeros when ``std`` is 0)."""
    d_f, side = layout.d_feature, layout.d_label + 2
    cross = _gaussian(source, d_f * side, float(std)).reshape(d_f, side)
    gram = _gaussian(source, d_f * (d_f + 1) // 2, float(std))
    return cross, gram


def _symmetric_from_upper(upper: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((k, k), dtype=np.float64)
    i, j = np.triu_indices(k)
    out[i, j] = upper
    out[j, i] = upper
    return out


def label_noise(source: NoiseSource, layout: LinearLayout, std: float) -> np.ndarray:
    """L's noise: a symmetric D x D matrix from D (D + 1) / 2 upper-triangle draws (row-major)."""
    k = layout.dim
    return _symmetric_from_upper(_gaussian(source, k * (k + 1) // 2, float(std)), k)


def assemble_statistics(
    layout: LinearLayout,
    label_block: np.ndarray,
    cross: np.ndarray,
    feature_gram_upper: np.ndarray,
) -> np.ndarray:
    """The symmetric D x D ``M`` from L's block, the cross block ``x_feat^T l`` (dF x (dL + 2))
    and the upper triangle of F's Gram block."""
    block = np.asarray(label_block, dtype=np.float64)
    cross = np.asarray(cross, dtype=np.float64)
    upper = np.asarray(feature_gram_upper, dtype=np.float64).reshape(-1)
    side, d_f = layout.d_label + 2, layout.d_feature
    if (
        block.shape != (side, side)
        or cross.shape != (d_f, side)
        or upper.shape != (d_f * (d_f + 1) // 2,)
    ):
        raise VerticalLinearError(
            "vertical linear: the statistics pieces do not match the layout's sizes "
            "(rule: vertical linear statistics)"
        )
    m = np.zeros((layout.dim, layout.dim), dtype=np.float64)
    ls, fs = layout.label_side, np.arange(layout.feature.start, layout.feature.stop)
    m[np.ix_(ls, ls)] = block
    m[np.ix_(fs, ls)] = cross
    m[np.ix_(ls, fs)] = cross.T
    m[np.ix_(fs, fs)] = _symmetric_from_upper(upper, d_f)
    return m


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class LinearVerticalModel:
    """Logit = clip(x_label) . w_label + clip(x_feat) . w_feature + bias."""

    w_label: np.ndarray
    w_feature: np.ndarray
    bias: float
    clip_label: float
    clip_feature: float

    def feature_logits(self, x_feat: np.ndarray) -> np.ndarray:
        """F's part of the logits: its rows clipped, dotted with ``w_feature``."""
        x = clip_rows(x_feat, self.clip_feature)
        if x.shape[1] != len(self.w_feature):
            raise VerticalLinearError(
                "vertical linear: x_feat does not have the model's feature columns "
                "(rule: vertical linear model)"
            )
        return x @ self.w_feature

    def predict_proba(self, x_label: np.ndarray, feature_logits: np.ndarray) -> np.ndarray:
        """Positive-class probabilities from L's rows (clipped here) and F's logits."""
        x = clip_rows(x_label, self.clip_label)
        f = np.asarray(feature_logits, dtype=np.float64).reshape(-1)
        if x.shape[1] != len(self.w_label) or len(f) != len(x):
            raise VerticalLinearError(
                "vertical linear: x_label does not have the model's label columns, or the "
                "feature logits have another row count (rule: vertical linear model)"
            )
        if not np.isfinite(f).all():
            raise VerticalLinearError(
                "vertical linear: feature_logits has non-finite entries (rule: vertical linear "
                "model)"
            )
        return _sigmoid(x @ self.w_label + f + self.bias)

    def to_state(self) -> dict[str, torch.Tensor]:
        """The model as a plain state dict of float64 tensors (data only)."""

        def vec(v: Any) -> torch.Tensor:
            return torch.from_numpy(np.asarray(v, dtype=np.float64).reshape(-1).copy())

        return {
            "w_label": vec(self.w_label),
            "w_feature": vec(self.w_feature),
            "bias": vec([self.bias]),
            "clip_label": vec([self.clip_label]),
            "clip_feature": vec([self.clip_feature]),
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], where: str = "vertical linear model"
    ) -> LinearVerticalModel:
        """The inverse of :meth:`to_state`, checking keys, dtypes, shapes and finiteness."""
        arrays = read_vectors(state, _MODEL_KEYS, where, "vertical linear model", float64=True)
        for key in ("bias", "clip_label", "clip_feature"):
            if len(arrays[key]) != 1:
                raise ModelFileError(
                    f"{where}: field 'state.{key}' must hold one value (rule: vertical linear "
                    "model)"
                )
        for key in ("clip_label", "clip_feature"):
            if not arrays[key][0] > 0:
                raise ModelFileError(
                    f"{where}: field 'state.{key}' must be > 0 (rule: vertical linear model)"
                )
        return cls(
            arrays["w_label"],
            arrays["w_feature"],
            float(arrays["bias"][0]),
            float(arrays["clip_label"][0]),
            float(arrays["clip_feature"][0]),
        )


def solve_statistics(
    m: np.ndarray,
    layout: LinearLayout,
    total_std: float,
    clip_label: float,
    clip_feature: float,
) -> LinearVerticalModel:
    """The calibrated model from (noisy) statistics ``m``: eigenvalue floor at
    ``FLOOR_FACTOR * total_std * sqrt(D - 1)`` (no floor, a 1e-9 trace ridge, when ``total_std``
    is 0), ``w = G^-1 b``, then the closed-form LDA calibration of the module docstring."""
    _check_clip(clip_label, "clip_label")
    _check_clip(clip_feature, "clip_feature")
    if isinstance(total_std, bool) or not (
        isinstance(total_std, int | float) and 0.0 <= total_std < math.inf
    ):
        raise VerticalLinearError(
            "vertical linear: total_std must be finite and >= 0 (rule: vertical linear DP)"
        )
    m = np.asarray(m, dtype=np.float64)
    k = layout.dim
    if m.shape != (k, k):
        raise VerticalLinearError(
            "vertical linear: the statistics matrix does not match the layout's dimension "
            "(rule: vertical linear statistics)"
        )
    if not np.isfinite(m).all():
        raise VerticalLinearError(
            "vertical linear: the statistics matrix has non-finite entries "
            "(rule: vertical linear statistics)"
        )
    m = 0.5 * (m + m.T)
    x_idx = np.arange(k - 1)  # everything but the label column (the last)
    one = layout.one.start
    g, b = m[np.ix_(x_idx, x_idx)], m[x_idx, k - 1]
    count = m[one, one]
    if not count > 1.0:
        raise VerticalLinearError(
            "vertical linear: the statistics count at most one row (rule: vertical linear "
            "statistics)"
        )
    sum_y = m[one, k - 1]  # sum of (y - 0.5)
    rate = sum_y / count + 0.5
    if not 0.0 < rate < 1.0:
        raise VerticalLinearError(
            "vertical linear: the statistics hold one class only (rule: vertical linear labels)"
        )
    ev, vecs = np.linalg.eigh(g)
    if total_std > 0:  # data-independent floor: post-processing of the DP release
        ev = np.maximum(ev, FLOOR_FACTOR * float(total_std) * math.sqrt(k - 1))
    else:  # exact statistics: G is positive semi-definite, a tiny ridge guards rank deficiency
        ev = ev + _RIDGE * max(float(np.trace(g)), 1e-300)
    w = vecs @ ((vecs.T @ b) / ev)
    pi = float(np.clip(rate, 0.01, 0.99))
    v = pi * (1.0 - pi)
    mean_x = g[one] / count
    cov_xy = b / count - mean_x * (sum_y / count)
    s = float(w @ cov_xy)
    beta = w / max(v - s, 1e-3 * v)
    beta[one] = 0.0
    mid = mean_x + (0.5 - pi) * cov_xy / v
    bias = float(-beta @ mid + math.log(pi / (1.0 - pi)))
    return LinearVerticalModel(
        w_label=beta[layout.label_features].copy(),
        w_feature=beta[layout.feature].copy(),
        bias=bias,
        clip_label=float(clip_label),
        clip_feature=float(clip_feature),
    )


def stats_sigma(dp: DPSettings) -> float:
    """The noise multiplier of one Gaussian release (sample rate 1, one step) costing exactly
    ``dp.epsilon`` (to 1e-3) under ``dp.accountant``; 0.0 with DP off (the node's plan,
    :func:`confide.modeling.vertical_dp.plan_linear_node`)."""
    return plan_linear_node(dp).release_sigma


@dataclass
class LinearArraysResult:
    """What :func:`run_linear_vertical_arrays` measured and each node's accounting."""

    metrics: dict[str, float]
    model: LinearVerticalModel
    sigma_label: float
    sigma_feature: float
    epsilon_label: float
    epsilon_feature: float
    statistics: np.ndarray


def _split(n: int, train_idx: Any, test_idx: Any) -> tuple[np.ndarray, np.ndarray]:
    tr = np.asarray(train_idx).reshape(-1)
    te = np.asarray(test_idx).reshape(-1)
    both = np.concatenate([tr, te])
    if (
        len(tr) == 0
        or len(te) == 0
        or not np.issubdtype(both.dtype, np.integer)
        or both.min() < 0
        or both.max() >= n
        or len(np.unique(both)) != len(both)
    ):
        raise VerticalLinearError(
            "vertical linear: train and test rows must be disjoint, non-empty whole-number "
            "indices within the aligned rows (rule: vertical split)"
        )
    return tr.astype(np.int64), te.astype(np.int64)


def run_linear_vertical_arrays(
    x_label: np.ndarray,
    x_feat: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    dp_label: DPSettings,
    dp_feature: DPSettings,
    clip_label: float = DEFAULT_CLIP_LABEL,
    clip_feature: float = DEFAULT_CLIP_FEATURE,
    seed: int = 0,
) -> LinearArraysResult:
    """The linear protocol in one process on aligned arrays (the in-process twin of the
    Flower protocol): exact pieces over the training rows, F's noise from
    ``noise_source(dp_feature.noise, seed + 1)``, L's from ``noise_source(dp_label.noise,
    seed)``, assembled, solved and evaluated on the test rows."""
    xl = _matrix(x_label, "x_label")
    xf = _matrix(x_feat, "x_feat")
    if len(xf) != len(xl):
        raise VerticalLinearError(
            "vertical linear: x_label and x_feat must have the same aligned rows "
            "(rule: vertical alignment)"
        )
    labels = _labels(y, len(xl))
    tr, te = _split(len(xl), train_idx, test_idx)
    if not 0 < labels[tr].sum() < len(tr):
        raise VerticalLinearError(
            "vertical linear: the training rows hold one class only (rule: vertical linear labels)"
        )
    layout = LinearLayout(xl.shape[1], xf.shape[1])
    c2 = row_bound(clip_label, clip_feature)
    xl_c, xf_c = clip_rows(xl, clip_label), clip_rows(xf, clip_feature)
    side = label_side_columns(xl_c[tr], labels[tr])
    block = side.T @ side
    cross = xf_c[tr].T @ side
    gram = feature_square_columns(xf_c[tr]).sum(axis=0)
    plan_f, plan_l = plan_linear_node(dp_feature), plan_linear_node(dp_label)
    sigma_f, sigma_l = plan_f.release_sigma, plan_l.release_sigma
    cross_noise, gram_noise = feature_noise(
        noise_source(dp_feature.noise, seed + 1), layout, sigma_f * c2
    )
    m = assemble_statistics(layout, block, cross + cross_noise, gram + gram_noise)
    m = m + label_noise(noise_source(dp_label.noise, seed), layout, sigma_l * c2)
    total_std = c2 * math.sqrt(sigma_l**2 + sigma_f**2)
    model = solve_statistics(m, layout, total_std, clip_label, clip_feature)
    prob = model.predict_proba(xl[te], model.feature_logits(xf[te]))
    return LinearArraysResult(
        metrics=binary_metrics(labels[te], prob),
        model=model,
        sigma_label=sigma_l,
        sigma_feature=sigma_f,
        epsilon_label=plan_l.release_epsilon(dp_label.delta, dp_label.accountant),
        epsilon_feature=plan_f.release_epsilon(dp_feature.delta, dp_feature.accountant),
        statistics=m,
    )


def label_alone_model(
    statistics: np.ndarray, layout: LinearLayout, label_std: float, clip_label: float
) -> LinearVerticalModel:
    """The label node alone, from its own block of the same noisy statistics (post-processing
    of its release, so no further epsilon): its features, the ones column and the label.
    ``label_std``: the label node's noise std on each entry (0 without DP). The model has no
    feature weights; score it with zero feature logits."""
    m = np.asarray(statistics, dtype=np.float64)
    if m.shape != (layout.dim, layout.dim):
        raise VerticalLinearError(
            "vertical linear: the statistics matrix does not match the layout's dimension "
            "(rule: vertical linear statistics)"
        )
    keep = layout.label_side
    own = LinearLayout(layout.d_label, 0)
    return solve_statistics(m[np.ix_(keep, keep)], own, float(label_std), clip_label, 1.0)
