"""Canary values seeded into a node's CSV, and a search for them in bytes anywhere."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

__all__ = ["CORE_CANARIES", "GENERAL_CANARIES", "canary_patterns", "find_canaries", "seed_canaries"]

# core-sensitive columns: strings that must never leave the node (dropped, masked, pseudonymised,
# generalised); general-sensitive: distinctive raw values that must never appear as such.
CORE_CANARIES = {
    "customer_id": "CID-CANARY-4F7Q",
    "name": "NAME-CANARY-9KX2",
    "national_id": "NID-CANARY-3ZP8",
    "email": "canary-mail-7hd@example.invalid",
    "bank_card": "CARD-CANARY-1QW5",
    "address": "浙江省杭州市西湖区CANARYSTREET-6TY号",
}
GENERAL_CANARIES = {"monetary_12m": 123456.789, "avg_basket_value": 9876.54321, "points": 171717}


def seed_canaries(csv: Path, rows: int = 5) -> None:
    """Overwrite the first ``rows`` rows' sensitive columns with canary values."""
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    for i in range(rows):
        for column, value in CORE_CANARIES.items():
            frame.loc[i, column] = value if column != "customer_id" else f"{value}-{i}"
        for column, value in GENERAL_CANARIES.items():
            frame.loc[i, column] = str(value)
    frame.to_csv(csv, index=False)


def canary_patterns() -> dict[str, bytes]:
    """Every byte pattern whose presence would show a leak."""
    out: dict[str, bytes] = {}
    for column, value in CORE_CANARIES.items():
        out[column] = value.encode("utf-8")
        for part in value.replace("号", "-").split("-"):
            if "CANARY" in part.upper() and len(part) >= 6:
                out[f"{column}:{part}"] = part.encode("utf-8")
    for column, value in GENERAL_CANARIES.items():
        out[column] = str(value).encode()
        out[f"{column}:f64"] = struct.pack("<d", float(value))
        out[f"{column}:f32"] = struct.pack("<f", float(value))
    return out


def find_canaries(paths: Iterable[Path]) -> list[str]:
    """``'file: column'`` for every canary pattern found in any file under ``paths``."""
    patterns = canary_patterns()
    hits = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            data = path.read_bytes()
            hits += [f"{path}: {name}" for name, pat in patterns.items() if pat in data]
    return hits
