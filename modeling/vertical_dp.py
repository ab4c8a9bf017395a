"""Privacy plans of the two kinds of node in a vertical job (see docs/vertical.md, Accounting).

Each node spends its whole ``dp.epsilon`` on one RDP composition (Opacus's accountant,
add/remove adjacency):

- the label node: its own DP-SGD model ``(sigma_sgd, q, T)`` and the label release
  ``(sigma_l, 1.0, 1)`` (clipped residuals in [-1, 1] plus N(0, sigma_l^2): sensitivity 1);
- a feature node: its bottom model ``(sigma_b, q, T)``, the embedding release ``(sigma_e, 1.0, 1)``
  and the release of the embeddings' mean and second moment ``(sigma_m, 1.0, 1)`` with
  ``sigma_m = MOMENT_SIGMA_RATIO * sigma_e``.

The release sigma is calibrated first, so the release(s) alone cost ``release_epsilon``; then the
DP-SGD sigma is found by bisection so the composed epsilon equals ``dp.epsilon`` (to 1e-3).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

from scipy.optimize import brentq

from confide.modeling.dp_accounting import (
    DPState,
    epsilon_for_history,
    planned_steps,
    steps_per_epoch,
)
from confide.modeling.errors import ConfideError
from confide.modeling.training_settings import DPSettings, TrainSettings

__all__ = [
    "MOMENT_SIGMA_RATIO",
    "PLAN_TOLERANCE",
    "VerticalPlan",
    "VerticalPlanError",
    "plan_feature_node",
    "plan_label_node",
    "plan_linear_node",
    "release_sigma_for",
]

#: The moment release's sigma as a multiple of the embedding release's: the moments are sums
#: over thousands of rows, so a 4x larger noise multiplier costs them nothing in accuracy and
#: the pair costs barely more than the embedding release alone (RDP 1/16 more).
MOMENT_SIGMA_RATIO = 4.0
#: How close the composed epsilon of a plan must be to the node's target.
PLAN_TOLERANCE = 1e-3
_SIGMA_MAX = 1e4


class VerticalPlanError(ConfideError):
    """A vertical node's privacy plan cannot be built (bad epsilon split or sizes)."""


@dataclass(frozen=True)
class VerticalPlan:
    """One node's calibrated noise for a vertical job (all sigmas 0 with DP off).

    ``sgd_sigma``, ``sample_rate`` and ``steps``: the node's DP-SGD model; ``release_sigma``:
    the label release (label node) or the embedding release (feature node), as a noise
    multiplier of the clip; ``moment_sigma``: the moment release (feature node only, else None);
    ``releases``: how many label releases the label node makes (one per feature node).
    """

    sgd_sigma: float
    sample_rate: float
    steps: int
    release_sigma: float
    moment_sigma: float | None
    enabled: bool = True
    releases: int = 1

    def release_history(self) -> list[tuple[float, float, int]]:
        """The release entries alone: ``(sigma, 1.0, releases)``, plus the moment release."""
        out = [(self.release_sigma, 1.0, self.releases)]
        if self.moment_sigma is not None:
            out.append((self.moment_sigma, 1.0, 1))
        return out

    def history(self) -> list[tuple[float, float, int]]:
        """Every planned mechanism as accountant entries ``(sigma, q, steps)``."""
        sgd = [(self.sgd_sigma, self.sample_rate, self.steps)] if self.steps else []
        return [*sgd, *self.release_history()]

    def epsilon(self, delta: float, accountant: str) -> float:
        """The composed epsilon of the whole plan (infinite with DP off)."""
        if not self.enabled:
            return math.inf
        return epsilon_for_history(self.history(), delta, accountant)

    def release_epsilon(self, delta: float, accountant: str) -> float:
        """The epsilon of the release(s) alone (infinite with DP off)."""
        if not self.enabled:
            return math.inf
        return epsilon_for_history(self.release_history(), delta, accountant)

    def sgd_state(self) -> DPState | None:
        """A fresh :class:`DPState` for ``train_local`` (``None`` with DP off)."""
        if not self.enabled:
            return None
        return DPState(self.sgd_sigma, self.sample_rate, self.steps, [])


def _bisect_sigma(epsilon_of, target: float, what: str) -> float:
    """The sigma at which the decreasing function ``epsilon_of(sigma)`` equals ``target``
    (from below): Brent's method on the RDP composition."""
    with warnings.catch_warnings():  # probes far below the answer hit the smallest RDP order
        warnings.filterwarnings("ignore", message="Optimal order is the smallest alpha")
        return _bisect(epsilon_of, target, what)


def _bisect(epsilon_of, target: float, what: str) -> float:
    lo, hi = 1e-2, 1.0
    while epsilon_of(hi) > target:
        lo, hi = hi, hi * 2.0
        if hi > _SIGMA_MAX:
            raise VerticalPlanError(
                f"vertical: no noise level reaches the {what} epsilon target (rule: vertical plan)"
            )
    at_lo = _evaluated(epsilon_of, lo)
    if at_lo is None:  # the accountant cannot evaluate noise this small (prv, gdp): walk down
        lo = hi  # from sigma 1 to the first sigma it evaluates above the target
        while True:
            lo *= 0.8
            at_lo = _evaluated(epsilon_of, lo) if lo >= 1e-2 else None
            if at_lo is None:
                raise VerticalPlanError(
                    f"vertical: the {what} epsilon target needs less noise than the accountant "
                    "can evaluate (rule: vertical plan); use accountant rdp or a smaller epsilon"
                )
            if at_lo > target:
                break
            hi = lo
    if at_lo <= target:
        raise VerticalPlanError(
            f"vertical: the {what} epsilon target is too large to calibrate (rule: vertical plan)"
        )
    # Brent's method on the bracket (a handful of accountant calls, each one RDP curve), then
    # the first sigma at or above the root whose epsilon is within the target.
    root = brentq(lambda s: epsilon_of(s) - target, lo, hi, xtol=1e-9, rtol=1e-9)
    sigma = root
    for _ in range(60):
        if epsilon_of(sigma) <= target:
            return float(sigma)
        sigma *= 1.0 + 1e-7
    raise VerticalPlanError(
        f"vertical: the {what} epsilon target could not be met from below (rule: vertical plan)"
    )


def _evaluated(epsilon_of, sigma: float) -> float | None:
    """``epsilon_of(sigma)``, or None where the accountant cannot evaluate it (PRV and GDP fail
    or overflow for noise far below one)."""
    try:
        value = float(epsilon_of(sigma))
    except (ArithmeticError, RuntimeError, ValueError, MemoryError):
        return None
    return value if math.isfinite(value) else None


def release_sigma_for(
    release_epsilon: float, delta: float, accountant: str, moment: bool, releases: int = 1
) -> float:
    """The release noise multiplier whose release(s) alone cost ``release_epsilon``."""
    ratio = MOMENT_SIGMA_RATIO

    def eps(sigma: float) -> float:
        history = [(sigma, 1.0, releases)] + ([(ratio * sigma, 1.0, 1)] if moment else [])
        return epsilon_for_history(history, delta, accountant)

    return _bisect_sigma(eps, release_epsilon, "release")


def _plan(
    dp: DPSettings,
    n_rows: int,
    train: TrainSettings,
    rounds: int,
    release_epsilon: float,
    moment: bool,
    releases: int = 1,
) -> VerticalPlan:
    if isinstance(releases, bool) or not isinstance(releases, int) or releases < 1:
        raise VerticalPlanError(
            "vertical: the label node releases to at least one feature node (rule: vertical plan)"
        )
    steps = planned_steps(n_rows, train, rounds)
    sample_rate = 1.0 / steps_per_epoch(n_rows, train.batch_size)
    if not dp.enabled:
        return VerticalPlan(0.0, sample_rate, steps, 0.0, 0.0 if moment else None, False, releases)
    if not (math.isfinite(release_epsilon) and 0.0 < release_epsilon < dp.epsilon):
        raise VerticalPlanError(
            "vertical: a release epsilon must be positive and below the node's dp.epsilon "
            "(rule: vertical epsilon split)"
        )
    release = release_sigma_for(release_epsilon, dp.delta, dp.accountant, moment, releases)
    moment_sigma = MOMENT_SIGMA_RATIO * release if moment else None
    base = VerticalPlan(0.0, sample_rate, steps, float(release), moment_sigma, True, releases)
    entries = base.release_history()

    def composed(sigma: float) -> float:
        return epsilon_for_history([(sigma, sample_rate, steps), *entries], dp.delta, dp.accountant)

    sgd = _bisect_sigma(composed, dp.epsilon, "composed")
    plan = replace(base, sgd_sigma=float(sgd))
    got = plan.epsilon(dp.delta, dp.accountant)
    if abs(got - dp.epsilon) > PLAN_TOLERANCE:
        raise VerticalPlanError(
            "vertical: the composed epsilon of the calibrated plan misses the node's dp.epsilon "
            "by more than 1e-3 (rule: vertical plan)"
        )
    return plan


def plan_label_node(
    dp: DPSettings,
    n_rows: int,
    train: TrainSettings,
    rounds: int,
    release_epsilon: float,
    releases: int = 1,
) -> VerticalPlan:
    """The label node's plan: its DP-SGD model over ``n_rows`` rows and the label release(s),
    one per feature node (``releases``), which together cost ``release_epsilon``."""
    return _plan(dp, n_rows, train, rounds, release_epsilon, moment=False, releases=releases)


def plan_feature_node(
    dp: DPSettings, n_rows: int, train: TrainSettings, rounds: int, release_epsilon: float
) -> VerticalPlan:
    """A feature node's plan: its bottom model, the embedding release and the moment release."""
    return _plan(dp, n_rows, train, rounds, release_epsilon, moment=True)


def plan_linear_node(dp: DPSettings) -> VerticalPlan:
    """A node's plan under the secure linear protocol: no DP-SGD, ONE Gaussian release of its
    sufficient statistics (sample rate 1, one step) that costs the node's whole ``dp.epsilon``
    (``release_sigma`` is the noise multiplier of the statistics' row bound)."""
    if not dp.enabled:
        return VerticalPlan(0.0, 1.0, 0, 0.0, None, False, 1)
    sigma = release_sigma_for(dp.epsilon, dp.delta, dp.accountant, moment=False)
    plan = VerticalPlan(0.0, 1.0, 0, float(sigma), None, True, 1)
    if abs(plan.epsilon(dp.delta, dp.accountant) - dp.epsilon) > PLAN_TOLERANCE:
        raise VerticalPlanError(
            "vertical: the statistics release misses the node's dp.epsilon by more than 1e-3 "
            "(rule: vertical plan)"
        )
    return plan
