"""A small customer CSV matching the privacy CLI tests' policy (one shape for every such test)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_customer_csv(path: Path, n: int = 60) -> None:
    """Write ``n`` fictitious customer rows with the columns the CLI tests' policy lists."""
    pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "national_id": ["11010519491231002X"] * n,
            "mobile": [f"138{i:08d}" for i in range(n)],
            "email": [f"user{i}@example.com" for i in range(n)],
            "bank_card": [f"6222{i:012d}" for i in range(n)],
            "age": ["30"] * n,
            "monetary_12m": ["1.0"] * n,
            "province": ["广东省"] * n,
            "churned": ["0"] * n,
        }
    ).to_csv(path, index=False)
