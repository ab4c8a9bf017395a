"""Node profiles: what makes each synthetic organisation's customers different (non-IID).

A :class:`NodeProfile` fixes a node's size, region mix, base-rate shifts for the two labels,
age and channel mix. :func:`simulations.synth.generate_customers` turns a profile and a seed
into customer records.

Named profiles: :func:`retailer` (large, eastern provinces, loyal store customers, lower
churn), :func:`ecommerce` (app-heavy, younger, nationwide with a southern/western tilt, higher
churn), :func:`bank` (older, tier-1 cities, sticky) and :func:`franchise` (central and western
provinces, store-heavy), plus six smaller specialists used by :func:`ten_node_profiles`
(grocer_north, fashion_south, electronics_west, baby_central, beauty_coast, rural_coop); all
are in :data:`PROFILES`. :func:`default_federation` is ``[retailer(20000), ecommerce(3600)]``;
:func:`ten_node_profiles` gives ten deliberately non-IID nodes from ~2% to ~30% of the rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from confide.simulations.identities import PROVINCES

__all__ = [
    "PROFILES",
    "NodeProfile",
    "baby_central",
    "bank",
    "beauty_coast",
    "default_federation",
    "ecommerce",
    "electronics_west",
    "fashion_south",
    "franchise",
    "get_profile",
    "grocer_north",
    "retailer",
    "rural_coop",
    "ten_node_profiles",
]


@dataclass(frozen=True)
class NodeProfile:
    """One synthetic node.

    Attributes:
        name: node name (also used in file names and to derive the node's random stream).
        n_rows: number of customers.
        province_weights: province -> relative weight (provinces not listed get none).
        churn_shift: base-rate offset for churn, subtracted from the log future purchase rate
            (a complementary-log-log offset, close to a logit offset); positive = more churn.
        propensity_shift: logit offset of the offer-response model.
        age_mean: mean customer age (ages are 18 + a gamma draw, clipped to 85).
        app_affinity: 0–1, share of customers registered digitally (app / mini program)
            before the age effect; also scales app usage.
        seed_offset: distinguishes the node's random stream and its customer-id block
            (``seed_offset % 100`` are the first two digits of the id number).
    """

    name: str
    n_rows: int
    province_weights: dict[str, float] = field(hash=False)
    churn_shift: float = 0.0
    propensity_shift: float = 0.0
    age_mean: float = 40.0
    app_affinity: float = 0.4
    seed_offset: int = 0

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"node name {self.name!r} must be non-empty letters/digits/_")
        if not 1 <= self.n_rows <= 10_000_000:
            raise ValueError(f"node {self.name}: n_rows must be 1..10,000,000, got {self.n_rows}")
        unknown = set(self.province_weights) - set(PROVINCES)
        if unknown:
            raise ValueError(f"node {self.name}: unknown province(s) {sorted(unknown)}")
        weights = list(self.province_weights.values())
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"node {self.name}: province weights must be >= 0 with a positive sum")
        if not 18 < self.age_mean < 85:
            raise ValueError(f"node {self.name}: age_mean must lie in (18, 85)")
        if not 0 <= self.app_affinity <= 1:
            raise ValueError(f"node {self.name}: app_affinity must lie in [0, 1]")
        if self.seed_offset < 0:
            raise ValueError(f"node {self.name}: seed_offset must be >= 0")

    def with_rows(self, n_rows: int) -> NodeProfile:
        """The same profile with a different size."""
        return replace(self, n_rows=n_rows)


_EAST = {
    "上海": 0.22,
    "江苏": 0.22,
    "浙江": 0.22,
    "山东": 0.1,
    "福建": 0.08,
    "北京": 0.06,
    "广东": 0.05,
    "湖北": 0.02,
    "四川": 0.02,
    "陕西": 0.01,
}
_SOUTH_WEST = {
    "广东": 0.24,
    "四川": 0.14,
    "湖北": 0.1,
    "北京": 0.1,
    "浙江": 0.1,
    "上海": 0.07,
    "江苏": 0.07,
    "陕西": 0.08,
    "山东": 0.05,
    "福建": 0.05,
}
_TIER1 = {
    "北京": 0.3,
    "上海": 0.22,
    "广东": 0.18,
    "浙江": 0.08,
    "江苏": 0.08,
    "四川": 0.04,
    "湖北": 0.03,
    "山东": 0.03,
    "福建": 0.02,
    "陕西": 0.02,
}
_CENTRAL_WEST = {
    "四川": 0.25,
    "湖北": 0.2,
    "陕西": 0.2,
    "山东": 0.15,
    "福建": 0.05,
    "江苏": 0.05,
    "浙江": 0.04,
    "广东": 0.04,
    "北京": 0.01,
    "上海": 0.01,
}


def retailer(n_rows: int = 20_000) -> NodeProfile:
    """Large eastern retailer: store-led, middle-aged, loyal (lower churn)."""
    return NodeProfile(
        "retailer",
        n_rows,
        dict(_EAST),
        churn_shift=-0.25,
        propensity_shift=0.0,
        age_mean=42.0,
        app_affinity=0.3,
        seed_offset=1,
    )


def ecommerce(n_rows: int = 3_600) -> NodeProfile:
    """E-commerce platform: app-heavy, younger, nationwide, higher churn."""
    return NodeProfile(
        "ecommerce",
        n_rows,
        dict(_SOUTH_WEST),
        churn_shift=0.35,
        propensity_shift=0.2,
        age_mean=31.0,
        app_affinity=0.85,
        seed_offset=2,
    )


def bank(n_rows: int = 8_000) -> NodeProfile:
    """Partner bank's card-holder base: older, tier-1 cities, sticky, offer-averse."""
    return NodeProfile(
        "bank",
        n_rows,
        dict(_TIER1),
        churn_shift=-0.4,
        propensity_shift=-0.4,
        age_mean=46.0,
        app_affinity=0.5,
        seed_offset=3,
    )


def franchise(n_rows: int = 6_000) -> NodeProfile:
    """Store franchise in central and western provinces: store-heavy, average churn."""
    return NodeProfile(
        "franchise",
        n_rows,
        dict(_CENTRAL_WEST),
        churn_shift=0.1,
        propensity_shift=-0.1,
        age_mean=38.0,
        app_affinity=0.25,
        seed_offset=4,
    )


def grocer_north(n_rows: int = 4_800) -> NodeProfile:
    """Northern grocery chain: older, store-only, steady."""
    return NodeProfile(
        "grocer_north",
        n_rows,
        {"北京": 0.4, "山东": 0.35, "陕西": 0.15, "江苏": 0.1},
        churn_shift=-0.1,
        propensity_shift=-0.2,
        age_mean=50.0,
        app_affinity=0.15,
        seed_offset=5,
    )


def fashion_south(n_rows: int = 4_200) -> NodeProfile:
    """Southern fashion brand: young, digital, fickle, responsive to offers."""
    return NodeProfile(
        "fashion_south",
        n_rows,
        {"广东": 0.55, "福建": 0.3, "浙江": 0.15},
        churn_shift=0.45,
        propensity_shift=0.4,
        age_mean=28.0,
        app_affinity=0.7,
        seed_offset=6,
    )


def electronics_west(n_rows: int = 3_000) -> NodeProfile:
    """Western electronics retailer: infrequent big-ticket buyers."""
    return NodeProfile(
        "electronics_west",
        n_rows,
        {"四川": 0.5, "陕西": 0.3, "湖北": 0.2},
        churn_shift=0.25,
        propensity_shift=0.0,
        age_mean=34.0,
        app_affinity=0.6,
        seed_offset=7,
    )


def baby_central(n_rows: int = 2_400) -> NodeProfile:
    """Mother-and-baby chain in central/eastern provinces: young parents."""
    return NodeProfile(
        "baby_central",
        n_rows,
        {"湖北": 0.5, "江苏": 0.25, "浙江": 0.25},
        churn_shift=-0.05,
        propensity_shift=0.2,
        age_mean=33.0,
        app_affinity=0.55,
        seed_offset=8,
    )


def beauty_coast(n_rows: int = 1_800) -> NodeProfile:
    """Coastal beauty brand: young, app-heavy, offer-driven."""
    return NodeProfile(
        "beauty_coast",
        n_rows,
        {"上海": 0.45, "浙江": 0.3, "福建": 0.25},
        churn_shift=0.3,
        propensity_shift=0.5,
        age_mean=30.0,
        app_affinity=0.8,
        seed_offset=9,
    )


def rural_coop(n_rows: int = 1_200) -> NodeProfile:
    """Small rural co-operative: oldest customers, high churn, few offers taken."""
    return NodeProfile(
        "rural_coop",
        n_rows,
        {"四川": 0.3, "山东": 0.3, "陕西": 0.2, "湖北": 0.2},
        churn_shift=0.6,
        propensity_shift=-0.3,
        age_mean=52.0,
        app_affinity=0.1,
        seed_offset=10,
    )


#: Named profiles by name (factories taking ``n_rows``), in ten-node order.
PROFILES: dict[str, Callable[..., NodeProfile]] = {
    f.__name__: f
    for f in (
        retailer,
        ecommerce,
        bank,
        franchise,
        grocer_north,
        fashion_south,
        electronics_west,
        baby_central,
        beauty_coast,
        rural_coop,
    )
}


def get_profile(name: str, n_rows: int | None = None) -> NodeProfile:
    """A named profile, optionally resized."""
    factory = PROFILES.get(name)
    if factory is None:
        raise ValueError(f"unknown node profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    return factory() if n_rows is None else factory(n_rows)


def default_federation() -> list[NodeProfile]:
    """The default two-node federation: retailer (20,000 rows) and ecommerce (3,600 rows)."""
    return [retailer(20_000), ecommerce(3_600)]


_TEN_SHARES = (0.30, 0.18, 0.13, 0.10, 0.08, 0.07, 0.05, 0.04, 0.03, 0.02)


def ten_node_profiles(total_rows: int) -> list[NodeProfile]:
    """Ten non-IID nodes holding 30%, 18%, 13%, 10%, 8%, 7%, 5%, 4%, 3% and 2% of
    ``total_rows``, with different region mixes, ages, channels and base rates."""
    if total_rows < 100:
        raise ValueError(f"ten_node_profiles needs total_rows >= 100, got {total_rows}")
    sizes = [max(1, int(total_rows * s)) for s in _TEN_SHARES]
    sizes[0] += total_rows - sum(sizes)
    return [factory(size) for factory, size in zip(PROFILES.values(), sizes, strict=True)]
