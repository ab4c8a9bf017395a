"""Synthetic federations for the analytics tests (generated once per session, seeded)."""

from __future__ import annotations

import pandas as pd
import pytest

from confide.simulations import node_profiles as npf
from confide.simulations import synth


@pytest.fixture(scope="session")
def default_frames() -> dict[str, pd.DataFrame]:
    """The default federation (conf/federation/default.yaml): retailer 20,000 + e-commerce
    3,600 customers, run seed 42."""
    return {
        p.name: synth.generate_customers(p, 42).frame for p in (npf.retailer(), npf.ecommerce())
    }


@pytest.fixture(scope="session")
def three_node_frames() -> dict[str, pd.DataFrame]:
    """22,000 customers across three nodes (retailer, e-commerce, bank), seed 7."""
    profiles = (npf.retailer(12_000), npf.ecommerce(4_000), npf.bank(6_000))
    return {p.name: synth.generate_customers(p, 7).frame for p in profiles}
