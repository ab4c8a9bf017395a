"""Shared builders for the analytics tests: the built-in spec and small spec mappings."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from confide.analytics.spec import AnalysisSpec, load_analysis_spec

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ROOT / "conf" / "analysis" / "customer_profile.yaml"
POLICY = ROOT / "simulations" / "policies" / "synthetic_customers.yaml"


def builtin_raw() -> dict[str, Any]:
    """A fresh copy of the built-in analysis mapping."""
    return copy.deepcopy(yaml.safe_load(BUILTIN.read_text(encoding="utf-8")))


def builtin_spec() -> AnalysisSpec:
    """The built-in analysis, validated."""
    return load_analysis_spec(builtin_raw(), str(BUILTIN))


def single_query(
    query: dict[str, Any], columns: dict[str, Any], k: int = 1, id_column: str = "customer_id"
) -> AnalysisSpec:
    """A spec with one query whose epsilon is the whole analysis's."""
    raw = {
        "name": "t",
        "epsilon": query["epsilon"],
        "unit": {"id_column": id_column, "max_rows_per_customer": k},
        "columns": columns,
        "queries": [query],
    }
    return load_analysis_spec(raw, "test")
