"""Mainland China, Hong Kong, Macao and Taiwan provincial-level divisions and major cities.

The one geography table of the project: :data:`PROVINCES` (full name -> short name) and
:data:`PROVINCE_CODES` (short name -> GB/T 2260 two-digit code, the first two digits of a
national ID) come from ``data/provinces.csv``, the cities from ``data/cities.csv`` (both shipped
as package data). Used by ``generalize:city_to_province`` and ``generalize:address_to_province``
and by the synthetic identity generators. The city list covers prefecture-level cities (not
exhaustive for autonomous prefectures); values that cannot be resolved generalise to
:data:`UNKNOWN`.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

__all__ = ["CITY_TO_PROVINCE", "PROVINCES", "PROVINCE_ALIASES", "PROVINCE_CODES", "UNKNOWN"]

UNKNOWN = "unknown"


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


_PROVINCE_ROWS = _rows("provinces.csv")

#: full name -> short name, e.g. ``"广东省": "广东"``
PROVINCES: dict[str, str] = {r["name"]: r["short_name"] for r in _PROVINCE_ROWS}

#: short name -> GB/T 2260 two-digit province code, e.g. ``"广东": "44"``
PROVINCE_CODES: dict[str, str] = {r["short_name"]: r["code"] for r in _PROVINCE_ROWS}

# province full name -> its prefecture-level cities, space-separated, in file order
_CITIES: dict[str, str] = {}
for _row in _rows("cities.csv"):
    _CITIES[_row["province"]] = " ".join(
        filter(None, (_CITIES.get(_row["province"]), _row["city"]))
    )

# any spelling of a province (full or short) -> full name
PROVINCE_ALIASES: dict[str, str] = {
    **{full: full for full in PROVINCES},
    **{short: full for full, short in PROVINCES.items()},
}

# city (with or without 市) -> province full name; municipalities and SARs map to themselves
CITY_TO_PROVINCE: dict[str, str] = {}
for _prov, _names in _CITIES.items():
    for _c in _names.split():
        CITY_TO_PROVINCE[_c] = _prov
        CITY_TO_PROVINCE[_c + "市"] = _prov
for _full, _short in PROVINCES.items():
    CITY_TO_PROVINCE.setdefault(_short, _full)
    CITY_TO_PROVINCE.setdefault(_full, _full)
    if _full.endswith("市") or _full.endswith("特别行政区"):
        CITY_TO_PROVINCE.setdefault(_short + "市", _full)
