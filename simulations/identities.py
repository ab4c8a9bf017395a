"""Vectorised generators of realistic (but fictitious) Chinese customer identity fields.

Every generator takes a :class:`numpy.random.Generator` and returns a numpy array of ``str``
with one value per customer; no per-row Python loops, so a million rows take well under a
second per field.

- :func:`chinese_names` — weighted common surnames (a few compound ones), one or two
  gender-leaning given-name characters.
- :func:`mobile_numbers` — 11 digits on real mainland prefixes (13x/15x/17x/18x/19x).
- :func:`national_ids` — 18-character resident identity numbers per GB 11643-1999: a real
  6-digit region code in the customer's province, the 8-digit birth date, a 3-digit sequence
  whose last digit is odd for men and even for women, and the ISO 7064 MOD 11-2 check
  character (``0``–``9`` or ``X``).
- :func:`emails` — pinyin of the name plus digits on common domains, or numeric QQ mail.
- :func:`addresses` — province + city + district + road + number (+ building/room).
- :func:`bank_cards` — UnionPay debit card numbers (BIN starting ``62``, 16 or 19 digits)
  with a valid Luhn check digit.

The tables (the ten provinces used, their cities with tier 1–4 and population weight, real
district region codes, surnames, given-name characters, phone prefixes, mail domains, roads and
card BINs) are package data under ``data/``; province names and codes come from the project's
one geography table, :mod:`confide.privacy.geo_cn`. They are exported as :data:`PROVINCES`,
:data:`PROVINCE_CODES` and :data:`CITIES`; :func:`sample_cities` draws a city for each
customer's province. ID and card check characters are computed by
:mod:`confide.privacy.validators`, the same code that validates them.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from confide.privacy import geo_cn
from confide.privacy.validators import luhn_check_digits, national_id_check_chars

__all__ = [
    "CITIES",
    "PROVINCES",
    "PROVINCE_CODES",
    "City",
    "addresses",
    "bank_cards",
    "chinese_names",
    "emails",
    "mobile_numbers",
    "national_ids",
    "sample_cities",
]

StrArray = NDArray[np.str_]


def _data(name: str) -> str:
    return resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")


def _csv(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_data(name))))


_TABLES: dict[str, Any] = json.loads(_data("identity_tables.json"))

# --------------------------------------------------------------------------- geography


@dataclass(frozen=True)
class City:
    """A city: its province, tier (1 = 北上广深 … 4 = smaller prefecture cities), relative
    population weight within the province and ``(region code, district name)`` pairs."""

    province: str
    name: str
    tier: int
    weight: float
    districts: tuple[tuple[str, str], ...]


#: The ten provinces (short names, as written in the ``province`` column).
PROVINCES: tuple[str, ...] = tuple(_TABLES["provinces"])

#: GB/T 2260 two-digit province codes (the first two digits of a national ID).
PROVINCE_CODES: dict[str, str] = {p: geo_cn.PROVINCE_CODES[p] for p in PROVINCES}

_PROVINCE_FULL: dict[str, str] = {
    short: full for full, short in geo_cn.PROVINCES.items() if short in PROVINCES
}
_MUNICIPALITIES = frozenset(p for p in PROVINCES if _PROVINCE_FULL[p].endswith("市"))


def _cities() -> tuple[City, ...]:
    districts: dict[str, list[tuple[str, str]]] = {}
    for row in _csv("districts.csv"):
        districts.setdefault(row["city"], []).append((row["code"], row["district"]))
    cities = []
    for r in _csv("cities.csv"):
        name = r["city"]
        cities.append(
            City(r["province"], name, int(r["tier"]), float(r["weight"]), tuple(districts[name]))
        )
    return tuple(cities)


#: Cities per province with real GB/T 2260 district codes.
CITIES: tuple[City, ...] = _cities()

_CITY_NAMES = np.array([c.name for c in CITIES])
_CITY_PROVINCE = np.array([c.province for c in CITIES])
_CITY_TIER = np.array([c.tier for c in CITIES], dtype=np.int64)
_CITY_INDEX = {c.name: i for i, c in enumerate(CITIES)}
_CITY_PREFIX = np.array(
    [
        ("" if c.province in _MUNICIPALITIES else _PROVINCE_FULL[c.province]) + c.name + "市"
        for c in CITIES
    ]
)
# Flat district table: (city index, region code, district name).
_DIST_CITY = np.array([i for i, c in enumerate(CITIES) for _ in c.districts], dtype=np.int64)
_DIST_CODE = np.array([int(code) for c in CITIES for code, _ in c.districts], dtype=np.int64)
_DIST_NAME = np.array([name for c in CITIES for _, name in c.districts])
_DIST_START = np.searchsorted(_DIST_CITY, np.arange(len(CITIES)))
_DIST_COUNT = np.bincount(_DIST_CITY, minlength=len(CITIES))
_DIST_PROVINCE_CODE = np.array(
    [int(PROVINCE_CODES[_CITY_PROVINCE[i]]) for i in _DIST_CITY], dtype=np.int64
)


_PROV_CITY_ORDER = np.argsort(pd.Index(PROVINCES).get_indexer(_CITY_PROVINCE), kind="stable")
_PROV_OF_CITY = pd.Index(PROVINCES).get_indexer(_CITY_PROVINCE[_PROV_CITY_ORDER])
_PROV_CITY_WEIGHT = np.array([CITIES[i].weight for i in _PROV_CITY_ORDER])
_PROV_CITY_CUM = np.cumsum(_PROV_CITY_WEIGHT)
_PROV_CITY_TOTAL = np.bincount(_PROV_OF_CITY, weights=_PROV_CITY_WEIGHT, minlength=len(PROVINCES))
_PROV_CITY_START = np.searchsorted(_PROV_OF_CITY, np.arange(len(PROVINCES)))
_PROV_CITY_COUNT = np.bincount(_PROV_OF_CITY, minlength=len(PROVINCES))


def _index(values: ArrayLike, table: ArrayLike, what: str, hint: str = "") -> NDArray[np.int64]:
    """Position of each value in ``table``; ValueError naming up to three unknown values."""
    codes = pd.Index(table).get_indexer(np.asarray(values))
    if (codes < 0).any():
        bad = sorted(set(np.asarray(values)[codes < 0].tolist()))[:3]
        raise ValueError(f"unknown {what} {bad}{hint}")
    return codes.astype(np.int64)


def _province_index(provinces: ArrayLike) -> NDArray[np.int64]:
    return _index(provinces, PROVINCES, "province(s)", f"; expected one of {list(PROVINCES)}")


def _city_index(cities: ArrayLike) -> NDArray[np.int64]:
    return _index(cities, _CITY_NAMES, "city/cities")


def sample_cities(
    rng: np.random.Generator, provinces: ArrayLike
) -> tuple[StrArray, NDArray[np.int64]]:
    """Draw a city for each province by population weight; returns ``(cities, city_tiers)``."""
    prov = _province_index(provinces)
    # Inverse-CDF draw over the cities of each row's province (cities grouped by province).
    start, count = _PROV_CITY_START[prov], _PROV_CITY_COUNT[prov]
    base = np.concatenate([[0.0], _PROV_CITY_CUM])[start]
    target = base + rng.random(len(prov)) * _PROV_CITY_TOTAL[prov]
    pos = np.clip(np.searchsorted(_PROV_CITY_CUM, target, side="right"), start, start + count - 1)
    city = _PROV_CITY_ORDER[pos]
    return _CITY_NAMES[city], _CITY_TIER[city]


# --------------------------------------------------------------------------- names

# (surname, pinyin, relative frequency in %), approximate national frequencies.
_SURNAMES: tuple[tuple[str, str, float], ...] = tuple(
    (r["surname"], r["pinyin"], float(r["frequency_percent"])) for r in _csv("surnames.csv")
)
_SURNAME = np.array([s for s, _, _ in _SURNAMES])
_SURNAME_P = np.array([w for _, _, w in _SURNAMES]) / sum(w for _, _, w in _SURNAMES)


def _pool(pool: str) -> tuple[StrArray, dict[str, str]]:
    rows = [r for r in _csv("given_names.csv") if r["pool"] == pool]
    return np.array([r["character"] for r in rows]), {r["character"]: r["pinyin"] for r in rows}


_POOL_M, _PY_M = _pool("M")
_POOL_F, _PY_F = _pool("F")
_POOL_N, _PY_N = _pool("N")
_PINYIN: dict[str, str] = {**_PY_N, **_PY_F, **_PY_M}
_SURNAME_PINYIN: dict[str, str] = {s: p for s, p, _ in _SURNAMES}


def _as_male(gender: ArrayLike, n: int) -> NDArray[np.bool_]:
    g = np.broadcast_to(np.asarray(gender), (n,))
    bad = ~np.isin(g, ["F", "M"])
    if bad.any():
        raise ValueError(f"gender must be 'F' or 'M', got {g[bad][0]!r}")
    return g == "M"


def _given_char(rng: np.random.Generator, male: NDArray[np.bool_]) -> StrArray:
    n = len(male)
    c = np.where(
        male,
        _POOL_M[rng.integers(len(_POOL_M), size=n)],
        _POOL_F[rng.integers(len(_POOL_F), size=n)],
    )
    return np.where(rng.random(n) < 0.2, _POOL_N[rng.integers(len(_POOL_N), size=n)], c)


def chinese_names(rng: np.random.Generator, n: int, gender: ArrayLike) -> StrArray:
    """``n`` names: a frequency-weighted surname and 1–2 given-name characters leaning to
    ``gender`` (``"F"``/``"M"``, scalar or one per row)."""
    male = _as_male(gender, n)
    surname = _SURNAME[rng.choice(len(_SURNAME), size=n, p=_SURNAME_P)]
    first = _given_char(rng, male)
    second = np.where(rng.random(n) < 0.25, "", _given_char(rng, male))
    return np.strings.add(np.strings.add(surname, first), second)


# --------------------------------------------------------------------------- phones

# Real mobile network prefixes (China Mobile / Unicom / Telecom / Broadnet), with weights.
_MOBILE_PREFIXES = np.array(_TABLES["mobile_prefixes"], dtype=np.int64)
_MOBILE_W = np.where(_MOBILE_PREFIXES < 160, 3.0, np.where(_MOBILE_PREFIXES < 180, 1.0, 2.0))
_MOBILE_W = np.where(np.isin(_MOBILE_PREFIXES, [170, 171, 192]), 0.3, _MOBILE_W)


def mobile_numbers(rng: np.random.Generator, n: int) -> StrArray:
    """``n`` 11-digit mainland mobile numbers on real 13x/15x/17x/18x/19x prefixes."""
    prefix = rng.choice(_MOBILE_PREFIXES, size=n, p=_MOBILE_W / _MOBILE_W.sum())
    return (prefix * 10**8 + rng.integers(0, 10**8, size=n)).astype("U11")


# --------------------------------------------------------------------------- national IDs


def _digits(values: NDArray[np.int64], width: int) -> NDArray[np.int64]:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers) % 10


def _date_parts(dates: NDArray[np.datetime64]) -> tuple[NDArray[np.int64], ...]:
    d = dates.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def national_ids(
    rng: np.random.Generator,
    birth_dates: ArrayLike,
    genders: ArrayLike,
    province_codes: ArrayLike,
) -> StrArray:
    """GB 11643 18-character IDs: a real region code within each 2-digit province code
    (e.g. ``"44"``), ``YYYYMMDD`` birth date, gender-parity sequence and MOD 11-2 check."""
    dates = np.asarray(birth_dates, dtype="datetime64[D]")
    n = len(dates)
    male = _as_male(genders, n)
    prov = np.broadcast_to(np.asarray(province_codes).astype(np.int64), (n,))
    # Region: a random district of the province (districts sorted by province code).
    order = np.argsort(_DIST_PROVINCE_CODE, kind="stable")
    dist_prov = _DIST_PROVINCE_CODE[order]
    start = np.searchsorted(dist_prov, prov, side="left")
    count = np.searchsorted(dist_prov, prov, side="right") - start
    if (count == 0).any():
        raise ValueError(f"unknown province code {prov[count == 0][0]}")
    region = _DIST_CODE[order[start + (rng.random(n) * count).astype(np.int64)]]
    year, month, day = _date_parts(dates)
    # Sequence 001–999: last digit odd for men, even for women (never 000).
    last = 2 * rng.integers(0, 5, size=n) + male
    seq = 10 * rng.integers(0, 100, size=n) + last
    seq = np.where(seq == 0, 2, seq)
    body = region * 10**11 + (year * 10000 + month * 100 + day) * 1000 + seq
    check = national_id_check_chars(_digits(body, 17))
    return np.strings.add(body.astype("U17"), check)


# --------------------------------------------------------------------------- emails

_EMAIL_DOMAINS = np.array(list(_TABLES["email_domains"]))
_EMAIL_DOMAIN_P = np.array(list(_TABLES["email_domains"].values()))


def emails(rng: np.random.Generator, names: ArrayLike) -> StrArray:
    """One email per name: QQ mail with a 6–10 digit QQ number, or pinyin of the name
    (full surname, given-name initials or full) plus optional digits on a common domain."""
    s = pd.Series(np.asarray(names, dtype=str))
    n = len(s)
    compound = s.str.len() >= 3
    compound &= s.str[:2].isin([x for x in _SURNAME_PINYIN if len(x) == 2])
    sur = np.where(compound, s.str[:2], s.str[:1])
    given = pd.Series(np.where(compound, s.str[2:], s.str[1:]))
    sur_py = pd.Series(sur).map(_SURNAME_PINYIN).fillna("x").to_numpy(dtype=str)
    g1 = given.str[0].map(_PINYIN).fillna("").to_numpy(dtype=str)
    g2 = given.str[1].map(_PINYIN).fillna("").to_numpy(dtype=str)
    full = np.strings.add(g1, g2)
    initials = np.strings.add(np.strings.slice(g1, 0, 1), np.strings.slice(g2, 0, 1))
    style = rng.integers(0, 3, size=n)
    local = np.where(
        style == 0,
        np.strings.add(sur_py, full),
        np.where(
            style == 1,
            np.strings.add(sur_py, initials),
            np.strings.add(np.strings.add(full, "."), sur_py),
        ),
    )
    number = rng.integers(0, 10000, size=n)
    digits = np.where(number < 5000, (number % 100).astype("U4"), number.astype("U4"))
    local = np.where(rng.random(n) < 0.7, np.strings.add(local, digits), local)
    domain = rng.choice(_EMAIL_DOMAINS, size=n, p=_EMAIL_DOMAIN_P)
    qq = domain == "qq.com"
    qq_number = rng.integers(10**5, 10**10, size=n).astype("U10")
    local = np.where(qq & (rng.random(n) < 0.7), qq_number, local)
    return np.strings.add(np.strings.add(local, "@"), domain)


# --------------------------------------------------------------------------- addresses

_ROADS = np.array(_TABLES["roads"])
_ROAD_SUFFIX = np.array(_TABLES["road_suffixes"])


def addresses(rng: np.random.Generator, cities: ArrayLike) -> StrArray:
    """Street addresses in each city: ``广东省深圳市南山区科技路88号6栋1203室``
    (municipalities start at the city: ``北京市朝阳区…``)."""
    city = _city_index(cities)
    n = len(city)
    dist = _DIST_START[city] + (rng.random(n) * _DIST_COUNT[city]).astype(np.int64)
    road = np.strings.add(
        _ROADS[rng.integers(len(_ROADS), size=n)],
        _ROAD_SUFFIX[rng.integers(len(_ROAD_SUFFIX), size=n)],
    )
    number = np.strings.add(rng.integers(1, 999, size=n).astype("U3"), "号")
    building = rng.integers(1, 30, size=n).astype("U2")
    room = (rng.integers(1, 33, size=n) * 100 + rng.integers(1, 7, size=n)).astype("U4")
    unit = np.strings.add(np.strings.add(np.strings.add(building, "栋"), room), "室")
    unit = np.where(rng.random(n) < 0.8, unit, "")
    out = np.strings.add(_CITY_PREFIX[city], _DIST_NAME[dist])
    for part in (road, number, unit):
        out = np.strings.add(out, part)
    return out


# --------------------------------------------------------------------------- bank cards

# UnionPay debit BINs of large Chinese banks with their card lengths.
_BINS = np.array([b["bin"] for b in _TABLES["bank_bins"]], dtype=np.int64)
_BIN_LEN = np.array([b["length"] for b in _TABLES["bank_bins"]], dtype=np.int64)
_BIN_P = np.array([b["weight"] for b in _TABLES["bank_bins"]])


def bank_cards(rng: np.random.Generator, n: int) -> StrArray:
    """``n`` Luhn-valid UnionPay card numbers (BIN ``62…``, 16 or 19 digits)."""
    k = rng.choice(len(_BINS), size=n, p=_BIN_P / _BIN_P.sum())
    length = _BIN_LEN[k]
    body_width = length - 7  # digits between the 6-digit BIN and the check digit
    body = rng.integers(0, 10**12, size=n) % (10**body_width)
    payload = _BINS[k] * 10**body_width + body
    out = np.empty(n, dtype="U19")
    for width in np.unique(length):
        m = length == width
        full = payload[m] * 10 + luhn_check_digits(_digits(payload[m], int(width) - 1))
        out[m] = full.astype(f"U{width}")
    return out
