"""Synthetic customer records for a node, with a documented ground truth for both labels.

Everything is vectorised numpy/pandas and deterministic by ``(seed, profile)``: the node's
random stream is ``SeedSequence([seed, profile.seed_offset, crc32(profile.name)])``, split into
independent streams for identities, behaviour and labels. The snapshot date is
:data:`REFERENCE_DATE`; the history window is the 365 days before it and the churn window the
:data:`CHURN_WINDOW_DAYS` days after it.

Ground truth (per customer; see ``docs/synthetic_data.md`` for the full table):

1. Profile: gender, age (18 + gamma around the node's ``age_mean``), birth date consistent with
   age on the reference date, province (node mix) and city, registration channel (digital share
   from ``app_affinity``, falling with age), tenure.
2. Latents (never written): engagement ``E``, satisfaction ``S`` (correlated with ``E``), price
   sensitivity ``P``, all standard normal; category preference from age and gender.
3. Purchase rates: a historical yearly rate ``λ_past = exp(log 9 + 0.75 E + tier, tenure,
   channel and category effects + N(0, 0.35²))`` and a current rate ``λ_now = λ_past·exp(D)``
   with drift ``D ~ N(-0.15, 0.5²)`` (a customer's activity is fading or growing).
4. 12-month history, simulated as Poisson processes: purchases in the earlier part of the
   window at ``λ_past``, in the last 90 days at ``λ_now``; ``frequency_12m`` is their count,
   ``recency_days`` the days since the last one (days since joining when there is none),
   ``monetary_12m`` a gamma sum of per-purchase baskets (category, city tier), ``returns_12m``
   binomial by category, ``complaints_12m`` Poisson in returns and dissatisfaction, ``nps``
   from satisfaction and complaints (~10% not surveyed), ``app_sessions_30d`` negative
   binomial in engagement, drift and channel, ``member_level``/``points`` from spend and
   tenure, ``discount_share`` beta in price sensitivity.
5. Churn = no purchase in the next 90 days. The future yearly rate is
   ``λ_f = λ_now·exp(-0.3·complaints - 0.15·max(0, 7 - NPS) - 1.0·recency/365
   + 0.25·(log1p(app_sessions) - log1p(5)) - churn_shift)·exp(σ z - σ²/2)``, ``σ = 0.5``,
   and ``churned = 1[Poisson(λ_f·90/365) = 0]``. ``true_churn_probability`` is the exact
   ``P(churned | customer state)``, i.e. ``exp(-λ_f·90/365)`` averaged over ``z`` by
   Gauss–Hermite quadrature.
6. Time to churn (``task=time_to_churn``, :data:`SURVIVAL_COLUMNS`): from the snapshot, a
   Weibull proportional-hazards churn time with cumulative hazard
   ``H(t) = (t / 20 months)^1.2 * exp(eta)``, ``eta = -0.9 (log λ_f0 - log 9) + 0.3 z'``
   (``λ_f0`` the future rate above without its noise, ``z'`` an unobserved frailty), censored
   at the end of follow-up (a whole number of months, uniform 6..36: staggered snapshots) or
   at an independent drop-out (exponential, mean 80 months). ``retention_months`` is the
   duration in whole months (an event in month m is recorded as m; a censoring as the months
   completed) and ``churn_event`` 1 for an observed churn, 0 for censored.
7. Propensity: ``responded_offer ~ Bernoulli(sigmoid(η + 0.8 z))`` with
   ``η = -2.0 + 2.2·(discount_share - 0.3) + 0.35·log1p(app_sessions) + member-level and
   category effects - 0.02·(age - 40) + 0.6·P + propensity_shift``;
   ``true_propensity_probability`` is the same expectation over ``z``.

Identity columns are drawn independently of behaviour (they carry no signal).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from confide.core.files import atomic_writer
from confide.simulations import identities as ids
from confide.simulations.node_profiles import NodeProfile

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "CHURN_WINDOW_DAYS",
    "COLUMNS",
    "HISTORY_DAYS",
    "LABELS",
    "MEMBER_LEVELS",
    "REFERENCE_DATE",
    "SURVIVAL_COLUMNS",
    "TRUTH_COLUMNS",
    "SyntheticNode",
    "generate_customers",
    "generate_federation",
    "write_federation",
    "write_node_csv",
]

#: Snapshot date: ages, birth dates and the history window are relative to it.
REFERENCE_DATE = np.datetime64("2024-06-30", "D")
HISTORY_DAYS = 365
CHURN_WINDOW_DAYS = 90

MEMBER_LEVELS: tuple[str, ...] = ("basic", "silver", "gold", "platinum")
CHANNELS: tuple[str, ...] = ("store", "app", "mini_program", "web")
CATEGORIES: tuple[str, ...] = ("grocery", "apparel", "electronics", "beauty", "home", "baby")
LABELS: tuple[str, ...] = ("churned", "responded_offer")
TRUTH_COLUMNS: tuple[str, ...] = ("true_churn_probability", "true_propensity_probability")

#: Exact column order of a node's customer table.
COLUMNS: tuple[str, ...] = (
    "customer_id",
    "name",
    "gender",
    "national_id",
    "mobile",
    "email",
    "address",
    "bank_card",
    "age",
    "province",
    "city",
    "city_tier",
    "member_level",
    "points",
    "registration_channel",
    "tenure_months",
    "recency_days",
    "frequency_12m",
    "monetary_12m",
    "avg_basket_value",
    "category_pref",
    "returns_12m",
    "complaints_12m",
    "app_sessions_30d",
    "nps",
    "discount_share",
    "churned",
    "responded_offer",
    "retention_months",
    "churn_event",
)
#: The survival target columns (duration, event) of ``task=time_to_churn``.
SURVIVAL_COLUMNS: tuple[str, ...] = ("retention_months", "churn_event")

# Ground-truth coefficients (documented in docs/synthetic_data.md).
_CHURN_NOISE_SD = 0.5
_PROPENSITY_NOISE_SD = 0.8
_CAT_LOGIT = np.array([0.6, 0.2, 0.0, -0.2, -0.1, -0.8])
_CAT_RATE = np.array([0.5, 0.0, -0.6, 0.0, -0.3, 0.3])
_CAT_BASKET = np.array([-0.3, 0.3, 1.1, 0.2, 0.5, 0.3])
_CAT_RETURN = np.array([0.01, 0.15, 0.06, 0.04, 0.05, 0.04])
_CAT_PROPENSITY = np.array([0.0, 0.2, -0.1, 0.4, 0.0, 0.3])
_LEVEL_PROPENSITY = np.array([0.0, 0.2, 0.4, 0.6])
_LEVEL_CUTS = np.array([8.3, 9.3, 10.3])
_LEVEL_POINTS = np.array([1.0, 1.2, 1.5, 2.0])
_TIER_RATE = np.array([0.15, 0.05, 0.0, -0.1])
_TIER_BASKET = np.array([0.35, 0.15, 0.0, -0.1])


@dataclass(frozen=True, eq=False)
class SyntheticNode:
    """A generated node: its customer ``frame`` (the CSV content), the hidden ``truth``
    probabilities (same index) and the oracle ROC-AUC per label."""

    profile: NodeProfile
    seed: int
    frame: pd.DataFrame
    truth: pd.DataFrame
    oracle_auc: dict[str, float]


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _gauss_hermite(k: int = 24) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x, w = np.polynomial.hermite_e.hermegauss(k)
    return x, w / w.sum()


def _birth_dates(rng: np.random.Generator, age: NDArray[np.int64]) -> NDArray[np.datetime64]:
    """A birth date that gives exactly ``age`` on REFERENCE_DATE (30 June)."""
    ref_year = int(REFERENCE_DATE.astype("datetime64[Y]").astype(np.int64)) + 1970
    year = ref_year - age
    june = ((year - 1970) * 12 + 5).astype("datetime64[M]").astype("datetime64[D]")
    upper = june + 29  # 30 June of the birth year: latest birth date giving this age
    # 1 July of the year before: earliest birth date giving this age.
    lower = ((year - 1 - 1970) * 12 + 6).astype("datetime64[M]").astype("datetime64[D]")
    span = (upper - lower).astype(np.int64) + 1
    return lower + (rng.random(len(age)) * span).astype(np.int64)


def _customer_ids(rng: np.random.Generator, profile: NodeProfile, n: int) -> NDArray[np.str_]:
    block = (profile.seed_offset % 100) * 10**7
    number = np.sort(rng.choice(10**7, size=n, replace=False)) + block
    return np.strings.add("C", np.strings.zfill(number.astype("U9"), 9))


def _identity_columns(
    rng: np.random.Generator,
    profile: NodeProfile,
    gender: NDArray[np.str_],
    age: NDArray[np.int64],
    province: NDArray[np.str_],
    city: NDArray[np.str_],
) -> dict[str, NDArray[np.str_]]:
    n = len(gender)
    names = ids.chinese_names(rng, n, gender)
    province_code = np.array([ids.PROVINCE_CODES[p] for p in ids.PROVINCES])[
        pd.Index(ids.PROVINCES).get_indexer(province)
    ]
    return {
        "customer_id": _customer_ids(rng, profile, n),
        "name": names,
        "gender": gender,
        "national_id": ids.national_ids(rng, _birth_dates(rng, age), gender, province_code),
        "mobile": ids.mobile_numbers(rng, n),
        "email": ids.emails(rng, names),
        "address": ids.addresses(rng, city),
        "bank_card": ids.bank_cards(rng, n),
    }


def _simulate(rng: np.random.Generator, profile: NodeProfile, n: int) -> dict[str, np.ndarray]:
    """Profile, latents, history and label ground truth (see the module docstring)."""
    out: dict[str, np.ndarray] = {}
    male = rng.random(n) < 0.47
    out["gender"] = np.where(male, "M", "F")
    shape = 4.0
    age_raw = 18 + rng.gamma(shape, (profile.age_mean - 18) / shape, size=n)
    age = np.clip(np.rint(age_raw), 18, 85).astype(np.int64)
    out["age"] = age

    provinces = np.array(list(profile.province_weights))
    weights = np.array(list(profile.province_weights.values()), dtype=float)
    province = rng.choice(provinces, size=n, p=weights / weights.sum())
    city, tier = ids.sample_cities(rng, province)
    out["province"], out["city"], out["city_tier"] = province, city, tier

    affinity = float(np.clip(profile.app_affinity, 0.02, 0.98))
    digital = rng.random(n) < _sigmoid(_logit(affinity) - 0.05 * (age - 40))
    u = rng.random(n)
    channel = np.where(digital, np.where(u < 0.6, 1, 2), np.where(u < 0.85, 0, 3))
    out["registration_channel"] = np.array(CHANNELS)[channel]
    tenure_scale = np.where(digital, 22.0, 36.0)
    tenure = np.minimum.reduce(
        [np.floor(rng.gamma(1.3, tenure_scale)), (age - 18) * 12, np.full(n, 180.0)]
    ).astype(np.int64)
    out["tenure_months"] = tenure

    # Latents.
    engagement = rng.standard_normal(n)
    satisfaction = 0.4 * engagement + np.sqrt(1 - 0.4**2) * rng.standard_normal(n)
    price_sens = rng.standard_normal(n)

    # Category preference: Gumbel-max over age/gender-dependent logits.
    logits = np.broadcast_to(_CAT_LOGIT, (n, 6)).copy()
    female = ~male
    logits[:, 1] += 0.4 * female + 0.3 * (age < 30)
    logits[:, 2] += 0.5 * male - 0.6 * female + 0.3 * (age < 30)
    logits[:, 3] += 1.0 * female
    logits[:, 0] += 0.6 * (age > 55)
    logits[:, 4] += 0.3 * (age > 55)
    logits[:, 5] += 1.4 * ((age >= 25) & (age <= 40))
    cat = np.argmax(logits + rng.gumbel(size=(n, 6)), axis=1)
    out["category_pref"] = np.array(CATEGORIES)[cat]

    # Purchase rates (per year).
    log_rate_past = (
        np.log(9.0)
        + 0.75 * engagement
        + _TIER_RATE[tier - 1]
        + _CAT_RATE[cat]
        + 0.08 * np.log1p(tenure)
        + 0.1 * (channel == 0)
        + 0.35 * rng.standard_normal(n)
    )
    drift = rng.normal(-0.15, 0.5, size=n)
    rate_past, rate_now = np.exp(log_rate_past), np.exp(log_rate_past + drift)

    # App usage in the last 30 days (negative binomial).
    app_mu = np.exp(
        np.log(3.0)
        + 0.5 * engagement
        + 0.4 * drift
        + 1.2 * digital
        + 0.8 * (profile.app_affinity - 0.5)
        - 0.02 * (age - 40)
    )
    app = np.minimum(rng.poisson(app_mu * rng.gamma(2.0, 0.5, size=n)), 200)
    out["app_sessions_30d"] = app

    # 12-month history: earlier part at rate_past, last 90 days at rate_now.
    window = np.minimum(HISTORY_DAYS, (tenure + rng.random(n)) * 30.44)
    w_recent = np.minimum(float(CHURN_WINDOW_DAYS), window)
    w_early = window - w_recent
    n_early = rng.poisson(rate_past * w_early / HISTORY_DAYS)
    n_recent = rng.poisson(rate_now * w_recent / HISTORY_DAYS)
    v = rng.random(n)
    with np.errstate(divide="ignore"):
        gap_recent = w_recent * (1 - v ** (1 / np.maximum(n_recent, 1)))
        gap_early = w_recent + w_early * (1 - v ** (1 / np.maximum(n_early, 1)))
    recency = np.where(n_recent > 0, gap_recent, np.where(n_early > 0, gap_early, window))
    recency = np.clip(np.floor(recency), 0, HISTORY_DAYS).astype(np.int64)
    freq = np.minimum(n_early + n_recent, 200).astype(np.int64)
    out["recency_days"], out["frequency_12m"] = recency, freq

    basket = np.exp(
        np.log(150.0) + _TIER_BASKET[tier - 1] + _CAT_BASKET[cat] + 0.3 * rng.standard_normal(n)
    )
    cv2 = 0.6**2
    monetary = np.where(freq > 0, rng.gamma(np.maximum(freq, 1) / cv2, basket * cv2), 0.0)
    monetary = np.round(np.minimum(monetary, 200_000.0), 2)
    out["monetary_12m"] = monetary
    out["avg_basket_value"] = np.round(monetary / np.maximum(freq, 1), 2)

    p_return = np.clip(_CAT_RETURN[cat] * np.exp(-0.2 * satisfaction), 0, 0.9)
    returns = np.minimum(rng.binomial(freq, p_return), 50)
    out["returns_12m"] = returns
    complaints = np.minimum(rng.poisson(0.12 * np.exp(-0.7 * satisfaction) + 0.15 * returns), 20)
    out["complaints_12m"] = complaints
    nps_true = np.clip(
        np.rint(7.2 + 1.6 * satisfaction - 0.4 * complaints + rng.standard_normal(n)), 0, 10
    ).astype(np.int64)
    surveyed = rng.random(n) >= _sigmoid(_logit(0.10) - 0.3 * engagement)
    out["nps"] = pd.array(np.where(surveyed, nps_true, 0), dtype="Int64")
    out["nps"][~surveyed] = pd.NA

    # Membership from spend and tenure; points balance = recent earnings minus redemptions.
    score = np.log1p(monetary) + 0.25 * np.log1p(tenure) + 0.3 * rng.standard_normal(n)
    level = np.searchsorted(_LEVEL_CUTS, score)
    out["member_level"] = np.array(MEMBER_LEVELS)[level]
    earned = monetary * np.minimum(tenure + 1, 24) / 12 * _LEVEL_POINTS[level]
    out["points"] = np.clip(np.rint(earned * rng.uniform(0.2, 1.0, n)), 0, 200_000).astype(np.int64)

    mean_disc = _sigmoid(-1.1 + 0.8 * price_sens + 0.3 * digital)
    disc = rng.beta(mean_disc * 10, (1 - mean_disc) * 10)
    out["discount_share"] = np.round(np.where(freq > 0, disc, 0.0), 3)

    # Labels: churn = no purchase in the next 90 days; propensity = responds to an offer.
    z, wz = _gauss_hermite()
    log_rate_future = (
        np.log(rate_now)
        - 0.3 * complaints
        - 0.15 * np.maximum(0, 7 - nps_true)
        - 1.0 * recency / HISTORY_DAYS
        + 0.25 * (np.log1p(app) - np.log1p(5.0))
        - profile.churn_shift
    )
    expected = np.exp(log_rate_future) * CHURN_WINDOW_DAYS / HISTORY_DAYS
    s = _CHURN_NOISE_SD
    p_churn = sum(
        w * np.exp(-expected * np.exp(s * x - s * s / 2)) for x, w in zip(z, wz, strict=True)
    )
    noisy = expected * np.exp(s * rng.standard_normal(n) - s * s / 2)
    out["churned"] = (rng.poisson(noisy) == 0).astype(np.int64)

    eta = (
        -2.0
        + 2.2 * (out["discount_share"] - 0.3)
        + 0.35 * np.log1p(app)
        + _LEVEL_PROPENSITY[level]
        + _CAT_PROPENSITY[cat]
        - 0.02 * (age - 40)
        + 0.6 * price_sens
        + profile.propensity_shift
    )
    t = _PROPENSITY_NOISE_SD
    p_prop = sum(w * _sigmoid(eta + t * x) for x, w in zip(z, wz, strict=True))
    out["responded_offer"] = (rng.random(n) < _sigmoid(eta + t * rng.standard_normal(n))).astype(
        np.int64
    )
    out["retention_months"], out["churn_event"] = _time_to_churn(rng, log_rate_future)
    out["true_churn_probability"] = p_churn
    out["true_propensity_probability"] = p_prop
    return out


def _time_to_churn(
    rng: np.random.Generator, log_rate_future: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Duration in whole months and event indicator (ground truth in the module docstring)."""
    n = len(log_rate_future)
    eta = -0.9 * (log_rate_future - np.log(9.0)) + 0.3 * rng.standard_normal(n)
    churn_time = 20.0 * (rng.exponential(size=n) * np.exp(-eta)) ** (1 / 1.2)
    follow_up = rng.integers(6, 37, size=n).astype(float)
    dropout = rng.exponential(80.0, size=n)
    censor = np.minimum(follow_up, dropout)
    event = churn_time <= censor
    months = np.where(event, np.maximum(np.ceil(churn_time), 1), np.floor(censor))
    return np.minimum(months, 36).astype(np.int64), event.astype(np.int64)


def _auc(y: NDArray[np.int64], p: NDArray[np.float64]) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def generate_customers(profile: NodeProfile, seed: int, n_rows: int | None = None) -> SyntheticNode:
    """Generate ``n_rows`` (default ``profile.n_rows``) customers of ``profile``."""
    n = profile.n_rows if n_rows is None else int(n_rows)
    if not 1 <= n <= 10**7:
        raise ValueError(f"n_rows must be 1..10,000,000, got {n}")
    if n != profile.n_rows:
        profile = profile.with_rows(n)
    entropy = [int(seed), profile.seed_offset, zlib.crc32(profile.name.encode())]
    rng_ids, rng_sim = (np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(2))
    sim = _simulate(rng_sim, profile, n)
    ident = _identity_columns(
        rng_ids, profile, sim["gender"], sim["age"], sim["province"], sim["city"]
    )
    data = {**sim, **ident}
    frame = pd.DataFrame({c: data[c] for c in COLUMNS})
    truth = pd.DataFrame({c: data[c] for c in TRUTH_COLUMNS})
    oracle = {
        "churned": _auc(sim["churned"], sim["true_churn_probability"]),
        "responded_offer": _auc(sim["responded_offer"], sim["true_propensity_probability"]),
    }
    return SyntheticNode(profile, int(seed), frame, truth, oracle)


def write_node_csv(node: SyntheticNode, path: str | os.PathLike[str]) -> Path:
    """Write the node's customer table (no truth columns) as UTF-8 CSV, atomically."""
    target = Path(path)
    with atomic_writer(target, "w") as fh:
        node.frame.to_csv(fh, index=False, lineterminator="\n")
    return target


def generate_federation(profiles: Iterable[NodeProfile], seed: int) -> list[SyntheticNode]:
    """One :class:`SyntheticNode` per profile, all from the same run seed."""
    nodes = [generate_customers(p, seed) for p in profiles]
    names = [n.profile.name for n in nodes]
    if len(set(names)) != len(names):
        raise ValueError(f"node names must be unique, got {names}")
    blocks = [n.profile.seed_offset % 100 for n in nodes]
    if len(set(blocks)) != len(blocks):
        raise ValueError("node seed_offsets must differ modulo 100 (customer-id blocks)")
    return nodes


def write_federation(
    nodes: Iterable[SyntheticNode], out_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write ``<out_dir>/<node name>.csv`` for each node; returns name -> path."""
    return {
        n.profile.name: write_node_csv(n, Path(out_dir) / f"{n.profile.name}.csv") for n in nodes
    }
