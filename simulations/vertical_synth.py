"""The built-in vertical federation's data: a bank and an e-commerce platform that hold
different columns about partly the same customers, drawn from ONE synthetic population.

``federation=bank_ecommerce`` (``task=joint_churn``): the bank holds credit and account features
and the label, the platform holds purchase behaviour; ``overlap`` customers are at both, the
others at one side only. Everything is vectorised and deterministic by the run seed.

Population (one row per person, ``n = bank_rows + ecommerce_rows - overlap``):

1. age ``18 + Gamma(4, 6)`` (clipped to 18..85), gender, province and city (city tier).
2. Bank features from two latents independent of everything else, financial stress ``F`` and
   relationship depth ``R`` (standard normal): ``tenure_months``, ``balance_band``,
   ``credit_utilisation``, ``repayment_delays_12m``, ``products_held``, ``salary_account``;
   ``city_tier`` from the city.
3. Platform features from two latents independent of the bank's, digital engagement ``D`` and
   wallet adoption ``W``, and from age (the only link between the two sides):
   ``app_sessions_30d``, ``purchases_12m``, ``spend_12m``, ``recency_days``, ``returns_12m``,
   ``wallet_pay_share``, ``category_pref``.
4. Label ``churned`` (the customer closes the account or stops using the card in the next 6
   months) ~ Bernoulli(sigmoid(eta)), a logistic ground truth in the task's encoded features:
   ``eta = B0 + eta_bank + eta_shop`` with (``l = log1p``)

   ``eta_bank = -0.018 (age - 40) - 0.5 (l(tenure) - l(36)) + balance[band]
   + 1.8 (utilisation - 0.35) + 0.9 l(delays) - 0.4 (products - 2) - 0.75 [salary]
   + tier[city_tier]``, balance = (0.7, 0.2, 0, -0.4, -0.7) from under_10k to over_1m,
   tier = (0, 0.08, 0.15, 0.22);

   ``eta_shop = -0.6 (l(purchases) - l(10)) + 0.65 (l(recency) - l(30)) + 0.35 l(returns)
   - 0.4 (l(app_sessions) - l(4)) + 3.1 (wallet_pay_share - 0.25) + category[pref]``,
   category = (0, 0.12, 0.18, 0, -0.06, -0.12) for grocery, apparel, electronics, beauty, home,
   baby; ``B0`` = :data:`INTERCEPT`.

   ``p_all = sigmoid(eta)`` is the Bayes probability with every feature. With the bank's
   features only it is ``p_bank = E[sigmoid(eta) | bank features]``: the platform features
   depend on the bank's only through age, so ``p_bank`` averages ``sigmoid(eta_bank + B0 + s)``
   over the platform term ``s`` drawn at the customer's age (:func:`bank_only_probability`).
5. Membership is random (independent of every feature): the first ``overlap`` people of a
   seeded permutation are at both nodes, the next ``bank_rows - overlap`` at the bank only, the
   rest at the platform only. Each node's rows are in their own random order.
6. Identity: one ``customer_id`` per person (``U`` + 9 digits), the join key. It is written
   differently at the two nodes for some customers, as real systems do: at the platform about
   4% in full-width characters (all or some of them) and about 3% with leading/trailing ASCII
   or ideographic spaces; at the bank about 2% with trailing spaces. NFKC and trimming (the
   PSI's normalisation) restore them. Core-sensitive columns (name, national id, mobile, bank
   card at the bank; name, mobile, e-mail, address at the platform) are the same person's at
   both nodes and carry no signal.

Ground truth on a large sample (:func:`ground_truth_auc`, documented in docs/vertical.md):
Bayes ROC-AUC 0.861 with every feature, 0.732 with the bank's alone (:data:`DOCUMENTED_AUC`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from confide.core.files import atomic_writer
from confide.job import Job, JobError, NodeSpec
from confide.privacy.keys import new_keyring_file
from confide.simulations import identities as ids
from confide.simulations.synth import _birth_dates  # the one age-consistent birth-date draw

__all__ = [
    "BALANCE_BANDS",
    "BANK_COLUMNS",
    "CATEGORIES",
    "DEFAULT_ROWS",
    "DOCUMENTED_AUC",
    "ECOMMERCE_COLUMNS",
    "INTERCEPT",
    "PROFILES",
    "VerticalPopulation",
    "bank_only_probability",
    "generate_population",
    "ground_truth_auc",
    "synthetic_header",
    "write_vertical_nodes",
]

BANK_PROFILE, ECOMMERCE_PROFILE = "vertical_bank", "vertical_ecommerce"
PROFILES: tuple[str, ...] = (BANK_PROFILE, ECOMMERCE_PROFILE)
BALANCE_BANDS: tuple[str, ...] = ("under_10k", "10k_50k", "50k_200k", "200k_1m", "over_1m")
CATEGORIES: tuple[str, ...] = ("grocery", "apparel", "electronics", "beauty", "home", "baby")

BANK_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "name",
    "national_id",
    "mobile",
    "bank_card",
    "age",
    "tenure_months",
    "balance_band",
    "credit_utilisation",
    "repayment_delays_12m",
    "products_held",
    "salary_account",
    "city_tier",
    "churned",
)
ECOMMERCE_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "name",
    "mobile",
    "email",
    "address",
    "purchases_12m",
    "spend_12m",
    "recency_days",
    "returns_12m",
    "app_sessions_30d",
    "wallet_pay_share",
    "category_pref",
)

#: Rows of each synthetic node when the federation file gives none.
DEFAULT_ROWS: Mapping[str, int] = {BANK_PROFILE: 40_000, ECOMMERCE_PROFILE: 35_000}

#: ``B0`` of the logistic ground truth (about 22% churn).
INTERCEPT = -1.95
#: Bayes ROC-AUC of the ground truth on 400,000 people (seed 0; :func:`ground_truth_auc`):
#: every feature, the bank's features alone, and the churn rate. Written in docs/vertical.md
#: (seed 1 gives 0.859 / 0.729 / 0.217: the sampling error is about 0.002).
DOCUMENTED_AUC: Mapping[str, float] = {
    "all_features": 0.861,
    "bank_only": 0.732,
    "positive_rate": 0.217,
}

_BALANCE_EFFECT = np.array([0.7, 0.2, 0.0, -0.4, -0.7])
_BALANCE_CUTS = np.log([10_000.0, 50_000.0, 200_000.0, 1_000_000.0])
_TIER_EFFECT = np.array([0.0, 0.08, 0.15, 0.22])
_CATEGORY_EFFECT = np.array([0.0, 0.12, 0.18, 0.0, -0.06, -0.12])
_CATEGORY_RETURN = np.array([0.01, 0.15, 0.06, 0.04, 0.05, 0.04])
_GRID = np.linspace(-12.0, 12.0, 601)  # eta_bank values at which bank_only_probability is tabled


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-x))


def _ages(rng: np.random.Generator, n: int) -> NDArray[np.int64]:
    return np.clip(np.rint(18 + rng.gamma(4.0, 6.0, size=n)), 18, 85).astype(np.int64)


def _bank_features(
    rng: np.random.Generator, age: NDArray[np.int64], city_tier: NDArray[np.int64]
) -> dict[str, np.ndarray]:
    """The bank's features (step 2 of the module docstring)."""
    n = len(age)
    stress, depth = rng.standard_normal(n), rng.standard_normal(n)
    tenure = np.minimum.reduce(
        [
            np.floor(rng.gamma(1.5, 40.0, size=n) * np.exp(0.3 * depth)),
            (age - 18) * 12,
            np.full(n, 360.0),
        ]
    ).astype(np.int64)
    log_balance = (
        9.8 + 0.03 * (age - 40) - 0.6 * stress + 0.5 * depth + 1.1 * rng.standard_normal(n)
    )
    band = np.searchsorted(_BALANCE_CUTS, log_balance)
    utilisation = np.round(
        np.clip(_sigmoid(-0.8 + 0.9 * stress + 0.5 * rng.standard_normal(n)), 0.0, 1.0), 3
    )
    delays = np.minimum(rng.poisson(np.exp(-1.6 + 0.9 * stress)), 12)
    products = np.clip(1 + rng.poisson(np.exp(0.2 + 0.35 * depth)), 1, 8)
    salary = rng.random(n) < _sigmoid(0.2 + 0.8 * depth - 0.01 * (age - 40))
    return {
        "age": age,
        "tenure_months": tenure,
        "balance_band": np.array(BALANCE_BANDS)[band],
        "credit_utilisation": utilisation,
        "repayment_delays_12m": delays.astype(np.int64),
        "products_held": products.astype(np.int64),
        "salary_account": np.where(salary, "yes", "no"),
        "city_tier": city_tier.astype(np.int64),
        "_eta": (
            -0.018 * (age - 40)
            - 0.5 * (np.log1p(tenure) - np.log1p(36))
            + _BALANCE_EFFECT[band]
            + 1.8 * (utilisation - 0.35)
            + 0.9 * np.log1p(delays)
            - 0.4 * (products - 2)
            - 0.75 * salary
            + _TIER_EFFECT[city_tier - 1]
        ),
    }


def _shop_features(rng: np.random.Generator, age: NDArray[np.int64]) -> dict[str, np.ndarray]:
    """The platform's features (step 3): latents independent of the bank's, plus age."""
    n = len(age)
    engagement, wallet = rng.standard_normal(n), rng.standard_normal(n)
    app = np.minimum(
        rng.poisson(
            np.exp(np.log(4.0) + 0.7 * engagement - 0.02 * (age - 40)) * rng.gamma(2.0, 0.5, n)
        ),
        200,
    )
    purchases = np.minimum(
        rng.poisson(np.exp(np.log(10.0) + 0.6 * engagement + 0.3 * rng.standard_normal(n))), 200
    )
    basket = np.exp(np.log(180.0) + 0.35 * rng.standard_normal(n))
    cv2 = 0.6**2
    spend = np.where(purchases > 0, rng.gamma(np.maximum(purchases, 1) / cv2, basket * cv2), 0.0)
    spend = np.round(np.minimum(spend, 200_000.0), 2)
    recency = np.where(purchases > 0, rng.exponential(365.0 / (purchases + 1.0)), 365.0)
    recency = np.clip(np.floor(recency), 0, 365).astype(np.int64)
    logits = np.zeros((n, len(CATEGORIES)))
    logits[:, 0] += 0.03 * (age - 40)
    logits[:, 1] += 0.4 - 0.02 * (age - 40)
    logits[:, 2] += 0.2 - 0.01 * (age - 40)
    logits[:, 5] += 0.8 * ((age >= 25) & (age <= 40))
    category = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    returns = np.minimum(rng.binomial(purchases, _CATEGORY_RETURN[category]), 50)
    share_mean = _sigmoid(-1.2 + 1.0 * wallet - 0.015 * (age - 40))
    share = np.round(rng.beta(share_mean * 8.0, (1.0 - share_mean) * 8.0), 3)
    share = np.where(purchases > 0, share, 0.0)
    return {
        "purchases_12m": purchases.astype(np.int64),
        "spend_12m": spend,
        "recency_days": recency,
        "returns_12m": returns.astype(np.int64),
        "app_sessions_30d": app.astype(np.int64),
        "wallet_pay_share": share,
        "category_pref": np.array(CATEGORIES)[category],
        "_eta": (
            -0.6 * (np.log1p(purchases) - np.log1p(10))
            + 0.65 * (np.log1p(recency) - np.log1p(30))
            + 0.35 * np.log1p(returns)
            - 0.4 * (np.log1p(app) - np.log1p(4))
            + 3.1 * (share - 0.25)
            + _CATEGORY_EFFECT[category]
        ),
    }


def bank_only_probability(
    eta_bank: NDArray[np.float64],
    age: NDArray[np.int64],
    *,
    seed: int = 0,
    draws: int = 4000,
) -> NDArray[np.float64]:
    """``E[sigmoid(B0 + eta_bank + eta_shop) | bank features]``: the Bayes probability with the
    bank's features only. ``eta_shop`` depends on the bank's features only through age, so it is
    drawn ``draws`` times per age (seeded) and the mean tabled on a grid of ``eta_bank``."""
    out = np.empty(len(eta_bank))
    rng = np.random.default_rng([seed, 0x5EED])
    for value in np.unique(age):
        rows = age == value
        shop = _shop_features(rng, np.full(draws, value, dtype=np.int64))["_eta"]
        table = _sigmoid(INTERCEPT + _GRID[:, None] + shop[None, :]).mean(axis=1)
        out[rows] = np.interp(eta_bank[rows], _GRID, table)
    return out


@dataclass(frozen=True, eq=False)
class VerticalPopulation:
    """Both nodes' customer tables (``bank``, ``ecommerce``: the CSV contents) and the hidden
    ``truth`` of the whole population (``in_bank``, ``in_ecommerce``, ``p_all``, ``eta_bank``,
    ``age``, ``churned`` and the clean ``customer_id``), index = person."""

    bank: pd.DataFrame
    ecommerce: pd.DataFrame
    truth: pd.DataFrame
    seed: int

    @property
    def overlap(self) -> int:
        """People at both nodes."""
        return int((self.truth["in_bank"] & self.truth["in_ecommerce"]).sum())


def synthetic_header(profile: str) -> list[str] | None:
    """The CSV header a synthetic vertical node of ``profile`` writes (None: not a vertical
    profile)."""
    columns = {BANK_PROFILE: BANK_COLUMNS, ECOMMERCE_PROFILE: ECOMMERCE_COLUMNS}.get(profile)
    return list(columns) if columns is not None else None


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode()), 0xB4E])


_FULL_WIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


def _id_variants(
    rng: np.random.Generator, ids_: NDArray[np.str_], full_width: float, spaces: float
) -> NDArray[np.object_]:
    """The same ids as a system might store them: some in full-width characters (all or from
    a random position on), some with leading/trailing ASCII or ideographic spaces."""
    out = ids_.astype(object)
    n = len(out)
    u = rng.random(n)
    wide = np.flatnonzero(u < full_width)
    starts = rng.integers(0, 10, size=len(wide))
    for i, start in zip(wide, starts, strict=True):  # a few thousand ids, not a per-row pass
        text = out[i]
        out[i] = text[:start] + text[start:].translate(_FULL_WIDTH)
    spaced = np.flatnonzero((u >= full_width) & (u < full_width + spaces))
    pads = np.array([" ", "  ", "\u3000", " \u3000"], dtype=object)
    left = pads[rng.integers(0, len(pads), size=len(spaced))] * (rng.random(len(spaced)) < 0.5)
    right = pads[rng.integers(0, len(pads), size=len(spaced))]
    out[spaced] = left + out[spaced] + right
    return out


def generate_population(
    seed: int, bank_rows: int, ecommerce_rows: int, overlap: int
) -> VerticalPopulation:
    """Both nodes' tables from one seeded population (see the module docstring)."""
    for what, value in (("bank_rows", bank_rows), ("ecommerce_rows", ecommerce_rows)):
        if not 1 <= value <= 10**7:
            raise JobError(f"vertical synthetic data: {what} must be 1..10,000,000 (rule: rows)")
    if not 1 <= overlap <= min(bank_rows, ecommerce_rows):
        raise JobError(
            "federation.overlap: must be a whole number from 1 to the smaller node's rows "
            "(rule: vertical synthetic data)"
        )
    n = bank_rows + ecommerce_rows - overlap
    rng = _rng(seed, "population")
    age = _ages(rng, n)
    gender = np.where(rng.random(n) < 0.48, "M", "F")
    province = rng.choice(np.array(ids.PROVINCES), size=n)
    city, tier = ids.sample_cities(rng, province)
    bank = _bank_features(_rng(seed, "bank"), age, np.asarray(tier))
    shop = _shop_features(_rng(seed, "ecommerce"), age)
    eta_bank = bank.pop("_eta")
    eta = INTERCEPT + eta_bank + shop.pop("_eta")
    label_rng = _rng(seed, "label")
    churned = (label_rng.random(n) < _sigmoid(eta)).astype(np.int64)

    id_rng = _rng(seed, "identity")
    number = id_rng.choice(10**9, size=n, replace=False)
    customer_id = np.strings.add("U", np.strings.zfill(number.astype("U9"), 9))
    names = ids.chinese_names(id_rng, n, gender)
    birth = _birth_dates(id_rng, age)
    codes = np.array([ids.PROVINCE_CODES[p] for p in ids.PROVINCES])
    province_code = codes[pd.Index(ids.PROVINCES).get_indexer(province)]
    identity = {
        "name": names,
        "national_id": ids.national_ids(id_rng, birth, gender, province_code),
        "mobile": ids.mobile_numbers(id_rng, n),
        "bank_card": ids.bank_cards(id_rng, n),
        "email": ids.emails(id_rng, names),
        "address": ids.addresses(id_rng, city),
    }

    member_rng = _rng(seed, "membership")
    order = member_rng.permutation(n)
    in_bank = np.zeros(n, dtype=bool)
    in_shop = np.zeros(n, dtype=bool)
    in_bank[order[:bank_rows]] = True
    in_shop[order[:overlap]] = True
    in_shop[order[bank_rows:]] = True
    bank_people = member_rng.permutation(np.flatnonzero(in_bank))
    shop_people = member_rng.permutation(np.flatnonzero(in_shop))

    columns = {**identity, **bank, **shop, "churned": churned}
    bank_frame = pd.DataFrame(
        {c: columns[c][bank_people] for c in BANK_COLUMNS if c != "customer_id"}
    )
    bank_frame.insert(
        0, "customer_id", _id_variants(member_rng, customer_id[bank_people], 0.0, 0.02)
    )
    shop_frame = pd.DataFrame(
        {c: columns[c][shop_people] for c in ECOMMERCE_COLUMNS if c != "customer_id"}
    )
    shop_frame.insert(
        0, "customer_id", _id_variants(member_rng, customer_id[shop_people], 0.04, 0.03)
    )
    truth = pd.DataFrame(
        {
            "customer_id": customer_id,
            "in_bank": in_bank,
            "in_ecommerce": in_shop,
            "age": age,
            "eta_bank": eta_bank,
            "p_all": _sigmoid(eta),
            "churned": churned,
        }
    )
    return VerticalPopulation(
        bank=bank_frame.reset_index(drop=True),
        ecommerce=shop_frame.reset_index(drop=True),
        truth=truth,
        seed=int(seed),
    )


def ground_truth_auc(seed: int = 0, people: int = 400_000, draws: int = 4000) -> dict[str, float]:
    """The Bayes ROC-AUC of the ground truth on ``people`` people: with every feature
    (``p_all``) and with the bank's features alone (:func:`bank_only_probability`); also the
    positive rate."""
    population = generate_population(seed, people, people, people)
    truth = population.truth
    y = truth["churned"].to_numpy()
    p_bank = bank_only_probability(
        truth["eta_bank"].to_numpy(), truth["age"].to_numpy(), seed=seed, draws=draws
    )
    return {
        "all_features": float(roc_auc_score(y, truth["p_all"].to_numpy())),
        "bank_only": float(roc_auc_score(y, p_bank)),
        "positive_rate": float(y.mean()),
    }


def _write(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_writer(path, "w") as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")
    return path


def _overlap(federation: Mapping[str, Any], bank_rows: int, shop_rows: int) -> int:
    raw = federation.get("overlap")
    if raw is None:
        return math.floor(0.7 * min(bank_rows, shop_rows))
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise JobError(
            "config federation.overlap: must be a whole number (rule: vertical synthetic data)"
        )
    return raw


def write_vertical_nodes(job: Job, nodes_root: Path) -> Job:
    """Write both synthetic nodes of a vertical federation (data CSV, key file, ledger path in
    each node's private folder, like horizontal synthetic nodes); returns the job with paths.

    Every node must be synthetic with profile ``vertical_bank`` or ``vertical_ecommerce``, one
    of each (one population is drawn for both)."""
    profiles = [n.profile for n in job.nodes]
    if sorted(str(p) for p in profiles) != sorted(PROFILES):
        raise JobError(
            f"config federation.nodes: a synthetic vertical federation has one node with profile "
            f"{BANK_PROFILE} and one with {ECOMMERCE_PROFILE}, all synthetic "
            "(rule: vertical synthetic data)"
        )
    by_profile = {n.profile: n for n in job.nodes}
    bank_rows = by_profile[BANK_PROFILE].rows or DEFAULT_ROWS[BANK_PROFILE]
    shop_rows = by_profile[ECOMMERCE_PROFILE].rows or DEFAULT_ROWS[ECOMMERCE_PROFILE]
    overlap = _overlap(job.config["federation"], bank_rows, shop_rows)
    population = generate_population(job.seed, bank_rows, shop_rows, overlap)
    frames = {BANK_PROFILE: population.bank, ECOMMERCE_PROFILE: population.ecommerce}
    nodes = []
    for node in job.nodes:
        folder = nodes_root / node.name
        data = _write(frames[str(node.profile)], folder / "customers.csv")
        keys = node.keys
        if keys is None:
            keys = folder / "keys.json"
            new_keyring_file(keys)
        spec = node.with_paths(data, node.ledger or folder / "ledger.json")
        nodes.append(NodeSpec(**{**spec.__dict__, "keys": keys}))
    return job.with_nodes(tuple(nodes))
