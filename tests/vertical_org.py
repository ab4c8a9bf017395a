"""A small vertical federation laid out as a user would (``--config-dir DIR federation=vbank
task=vchurn``): a bank with two features and the label, a shop with two features, partial
overlap, join keys that differ only by full-width characters and spaces between the nodes.

The label follows a logistic ground truth over both nodes' features, so joining helps."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

__all__ = ["TASK", "bank_policy", "shop_policy", "write_vertical_org"]

TASK = {
    "name": "vchurn",
    "label": {"name": "churned", "positive": 1, "negative": 0},
    "features": [
        {"name": "tenure", "type": "numeric", "min": 0, "max": 10},
        {"name": "delays", "type": "numeric", "min": 0, "max": 10},
        {"name": "spend", "type": "numeric", "min": 0, "max": 10},
        {"name": "visits", "type": "numeric", "min": 0, "max": 10},
    ],
}
_DP = {"max_epsilon_per_run": 3.0, "lifetime_epsilon": 10.0, "max_delta": 1.0e-5}


def bank_policy() -> dict:
    """The bank's policy: join key core-sensitive (pseudonymised), two features and the label."""
    return {
        "version": 1,
        "dataset": "vbank",
        "unknown_columns": "refuse",
        "columns": {
            "customer_id": {"tier": "core_sensitive", "role": "id", "transform": "pseudonymize"},
            "tenure": {"tier": "general_sensitive", "role": "feature"},
            "delays": {"tier": "general_sensitive", "role": "feature"},
            "churned": {"tier": "general_sensitive", "role": "label"},
        },
        "dp": dict(_DP),
    }


def shop_policy() -> dict:
    """The shop's policy: join key core-sensitive, two features, no label."""
    return {
        "version": 1,
        "dataset": "vshop",
        "unknown_columns": "refuse",
        "columns": {
            "customer_id": {"tier": "core_sensitive", "role": "id", "transform": "pseudonymize"},
            "spend": {"tier": "general_sensitive", "role": "feature"},
            "visits": {"tier": "general_sensitive", "role": "feature"},
        },
        "dp": dict(_DP),
    }


def _full_width(text: str) -> str:
    """The full-width form of ASCII letters and digits (NFKC maps it back)."""
    out = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    assert unicodedata.normalize("NFKC", out) == text
    return out


def write_vertical_org(
    root: Path,
    bank_rows: int = 1200,
    shop_rows: int = 1000,
    overlap: int = 800,
    seed: int = 5,
    min_overlap: int = 100,
    protocol: str = "split_learning",
) -> Path:
    """Write both nodes' CSVs, policies, keys and ``conf/{federation,task}`` under ``root``;
    returns the config dir. Customer ``i`` is in both when ``i < overlap``. ``protocol``:
    the federation's ``vertical.protocol`` (split learning with its release epsilons, or
    secure_linear with the default row clips)."""
    from confide.privacy.keys import new_keyring_file

    rng = np.random.default_rng(seed)
    total = bank_rows + shop_rows - overlap
    feats = rng.uniform(0, 10, size=(total, 4)).round(3)
    logit = -0.6 * (feats[:, 0] - 5) + 0.5 * (feats[:, 1] - 5) - 0.7 * (feats[:, 2] - 5)
    logit += 0.6 * (feats[:, 3] - 5)
    churned = (rng.uniform(size=total) < 1 / (1 + np.exp(-0.6 * logit))).astype(int)
    ids = [f"C{100000 + i}" for i in range(total)]
    bank_idx = np.r_[0:overlap, overlap : overlap + bank_rows - overlap]
    shop_idx = np.r_[0:overlap, bank_rows : bank_rows + shop_rows - overlap]
    bank = pd.DataFrame(
        {
            "customer_id": [ids[i] for i in bank_idx],
            "tenure": feats[bank_idx, 0],
            "delays": feats[bank_idx, 1],
            "churned": churned[bank_idx],
        }
    )
    shop_ids = [
        _full_width(ids[i]) if k % 7 == 0 else (f" {ids[i]} " if k % 7 == 1 else ids[i])
        for k, i in enumerate(shop_idx)
    ]
    shop = pd.DataFrame(
        {"customer_id": shop_ids, "spend": feats[shop_idx, 2], "visits": feats[shop_idx, 3]}
    )
    shop = shop.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    entries = []
    for name, frame, policy in (("bank", bank, bank_policy()), ("shop", shop, shop_policy())):
        folder = root / name
        folder.mkdir(parents=True)
        frame.to_csv(folder / "customers.csv", index=False)
        (folder / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
        new_keyring_file(folder / "keys.json")
        entries.append(
            {
                "name": name,
                "data": str(folder / "customers.csv"),
                "policy": str(folder / "policy.yaml"),
                "keys": str(folder / "keys.json"),
                "ledger": str(folder / "ledger.json"),
            }
        )
    conf = root / "conf"
    (conf / "federation").mkdir(parents=True)
    (conf / "task").mkdir(parents=True)
    federation = {
        "name": "vbank",
        "kind": "vertical",
        "join_key": "customer_id",
        "label_node": "bank",
        "psi": {"reveal_to": "label_node", "pad_to": None, "min_overlap": min_overlap},
        "vertical": (
            {
                "protocol": "split_learning",
                "label_dp_epsilon": 1.0,
                "embedding_dp_epsilon": 2.0,
                "embedding_clip": 1.0,
            }
            if protocol == "split_learning"
            else {"protocol": protocol}
        ),
        "nodes": entries,
    }
    (conf / "federation" / "vbank.yaml").write_text(
        yaml.safe_dump(federation, allow_unicode=True), encoding="utf-8"
    )
    (conf / "task" / "vchurn.yaml").write_text(yaml.safe_dump(TASK), encoding="utf-8")
    return conf
