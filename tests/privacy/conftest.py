"""Shared fixtures for the privacy tests."""

from __future__ import annotations

import secrets
import textwrap

import pytest

from confide.privacy.keys import Keyring
from confide.privacy.policy import load_policy

POLICY_YAML = textwrap.dedent("""\
    version: 1
    dataset: retailer_customers
    unknown_columns: refuse
    columns:
      customer_id: {tier: core_sensitive, role: id, transform: pseudonymize}
      national_id: {tier: core_sensitive, transform: drop}
      mobile:      {tier: core_sensitive, transform: "mask:mobile"}
      email:       {tier: core_sensitive, transform: "encrypt:deterministic"}
      bank_card:   {tier: core_sensitive, transform: "encrypt:randomized"}
      age:         {tier: general_sensitive, role: feature}
      monetary_12m: {tier: general_sensitive, role: feature, maps_to: spend}
      province:    {tier: non_sensitive, role: feature}
      churned:     {tier: general_sensitive, role: label}
    dp: {max_epsilon_per_run: 3.0, lifetime_epsilon: 10.0, max_delta: 1.0e-5, require_dp: true}
""")


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({"k1": secrets.token_bytes(32)}, "k1", "test-keys")


@pytest.fixture
def other_keyring() -> Keyring:
    return Keyring({"k1": secrets.token_bytes(32)}, "k1", "other-keys")


@pytest.fixture
def policy_path(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY_YAML, encoding="utf-8")
    return p


@pytest.fixture
def policy(policy_path):
    return load_policy(policy_path)
