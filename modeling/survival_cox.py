"""Cox proportional hazards, fitted in numpy: Efron or Breslow ties, Newton-Raphson, ridge.

The centralised non-private survival baseline. lifelines' ``CoxPHFitter`` is the reference
implementation, but lifelines 0.30.3 requires pandas < 3 while Confide resolves pandas 3.1, so
lifelines stays out of the dependencies; ``tests/survival/test_cox.py`` checks this fit against
coefficients and a partial log-likelihood computed by lifelines 0.30.3 (recorded with the script
in that test's docstring) and against hand-computed cases.

Objective: the partial log-likelihood (Breslow: ``sum_events [x_i b - log sum_{T_j >= T_i}
exp(x_j b)]``; Efron's correction for tied event times, lifelines' method, by default) minus
``penalizer / 2 * n * |b|^2``. The baseline cumulative hazard is Breslow's estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from confide.modeling.errors import ConfideError

__all__ = ["CoxFitError", "CoxModel", "fit_cox"]


class CoxFitError(ConfideError):
    """The Cox fit did not converge (for example separated data without a penalty)."""


@dataclass(frozen=True)
class CoxModel:
    """Fitted coefficients, the Breslow baseline cumulative hazard and the fit's log-likelihood."""

    coef: np.ndarray
    times: np.ndarray  # distinct event times, ascending
    baseline_cumhaz: np.ndarray  # H0 at each of ``times``
    log_likelihood: float
    iterations: int

    def risk(self, x: np.ndarray) -> np.ndarray:
        """The linear predictor ``x b`` (higher means earlier churn)."""
        return np.asarray(x, dtype=float) @ self.coef

    def survival_at(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``S(t | x) = exp(-H0(t) exp(x b))`` for every row and time, ``(rows, len(t))``."""
        idx = np.searchsorted(self.times, np.asarray(t, dtype=float), side="right") - 1
        h0 = np.where(idx >= 0, self.baseline_cumhaz[np.maximum(idx, 0)], 0.0)
        return np.exp(-np.exp(self.risk(x))[:, None] * h0[None, :])


def _sums(x: np.ndarray, t: np.ndarray, ev: np.ndarray, beta: np.ndarray, ties: str):
    """Log-likelihood, gradient and Hessian of the partial likelihood at ``beta``."""
    eta = x @ beta
    shift = eta.max()
    w = np.exp(eta - shift)
    order = np.argsort(-t, kind="stable")
    ts, ws, xs, es, etas = t[order], w[order], x[order], ev[order], eta[order]
    d = x.shape[1]
    s0, s1, s2 = 0.0, np.zeros(d), np.zeros((d, d))
    ll, grad, hess = 0.0, np.zeros(d), np.zeros((d, d))
    bounds = np.flatnonzero(np.diff(ts) != 0) + 1
    for block in np.split(np.arange(len(ts)), bounds):
        xb, wb = xs[block], ws[block]
        s0 += wb.sum()
        s1 += wb @ xb
        s2 += (xb * wb[:, None]).T @ xb
        dead = es[block]
        k = int(dead.sum())
        if k == 0:
            continue
        ll += float(etas[block][dead].sum())
        grad += xb[dead].sum(axis=0)
        xd, wd = xb[dead], wb[dead]
        d0, d1, d2 = wd.sum(), wd @ xd, (xd * wd[:, None]).T @ xd
        # Breslow: every death sees the whole risk set; Efron: the tied deaths leave it
        # in equal parts (l / k of their weight removed for the l-th of k).
        fractions = np.arange(k) / k if ties == "efron" else np.zeros(k)
        for f in fractions:
            den = s0 - f * d0
            mean = (s1 - f * d1) / den
            ll -= np.log(den) + shift
            grad -= mean
            hess -= (s2 - f * d2) / den - np.outer(mean, mean)
    return ll, grad, hess


def fit_cox(
    x: np.ndarray,
    duration: np.ndarray,
    event: np.ndarray,
    penalizer: float = 0.0,
    max_iter: int = 100,
    tol: float = 1e-9,
    ties: str = "efron",
) -> CoxModel:
    """Fit a Cox model by Newton-Raphson with step halving; tied event times by Efron's
    method (lifelines' only method, the default) or Breslow's."""
    if ties not in {"efron", "breslow"}:
        raise CoxFitError("Cox fit: ties must be efron or breslow (rule: Cox baseline)")
    x = np.asarray(x, dtype=float)
    t = np.asarray(duration, dtype=float)
    ev = np.asarray(event) > 0.5
    n, d = x.shape
    ridge = penalizer * n
    beta = np.zeros(d)

    def objective(b: np.ndarray):
        ll, g, h = _sums(x, t, ev, b, ties)
        return ll - 0.5 * ridge * b @ b, g - ridge * b, h - ridge * np.eye(d), ll

    value, grad, hess, ll = objective(beta)
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        try:
            step = np.linalg.solve(-hess, grad)
        except np.linalg.LinAlgError as exc:
            raise CoxFitError("Cox fit: singular Hessian (rule: Cox baseline)") from exc
        scale = 1.0
        while True:
            candidate = beta + scale * step
            c_value, c_grad, c_hess, c_ll = objective(candidate)
            if c_value >= value - 1e-12 or scale < 1e-6:
                break
            scale /= 2
        converged = abs(c_value - value) < tol and np.max(np.abs(scale * step)) < 1e-6
        beta, value, grad, hess, ll = candidate, c_value, c_grad, c_hess, c_ll
        if converged:
            break
    else:
        raise CoxFitError("Cox fit: Newton-Raphson did not converge (rule: Cox baseline)")
    eta = x @ beta
    w = np.exp(eta)
    times = np.unique(t[ev])
    at_risk = np.array([w[t >= s].sum() for s in times])
    deaths = np.array([float((ev & (t == s)).sum()) for s in times])
    return CoxModel(beta, times, np.cumsum(deaths / at_risk), float(ll), iterations)
