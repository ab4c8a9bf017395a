"""Helpers that lay out a user's own federation outside the repository, as the README shows."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from confide.job import resolve_path
from confide.simulations.node_profiles import get_profile
from confide.simulations.synth import generate_customers, write_node_csv

SHIPPED_POLICY = "pkg://confide.simulations/policies/synthetic_customers.yaml"


def write_user_federation(root: Path, nodes: dict[str, int], seed: int = 3) -> Path:
    """Create CSVs, policies, keys and ``conf/federation/mine.yaml`` under ``root``."""
    from confide.privacy.keys import new_keyring_file

    conf = root / "conf" / "federation"
    conf.mkdir(parents=True)
    entries = []
    for name, rows in nodes.items():
        folder = root / name
        folder.mkdir()
        profile = get_profile("retailer" if not entries else "ecommerce", rows)
        data = write_node_csv(generate_customers(profile, seed), folder / "customers.csv")
        policy = folder / "policy.yaml"
        shutil.copy(resolve_path(SHIPPED_POLICY, "test"), policy)
        keys = folder / "keys.json"
        new_keyring_file(keys)
        entries.append(
            {
                "name": name,
                "data": str(data),
                "policy": str(policy),
                "keys": str(keys),
                "ledger": str(folder / "ledger.json"),
            }
        )
    (conf / "mine.yaml").write_text(
        yaml.safe_dump({"name": "mine", "nodes": entries}, allow_unicode=True), encoding="utf-8"
    )
    return root / "conf"
