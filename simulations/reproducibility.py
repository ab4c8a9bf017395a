"""What a results file records so a run can be repeated: seed, config fingerprint, versions.

The fingerprint covers the whole composed config except the ``run`` block (where outputs go
and how they are displayed), so two runs with the same settings share it wherever they ran.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

__all__ = ["config_fingerprint", "reproducibility_record"]

_PACKAGES = ("confide", "torch", "opacus", "flwr", "numpy", "scikit-learn")


def config_fingerprint(config: dict[str, Any]) -> str:
    """SHA-256 of the config without its ``run`` block (sorted-key JSON)."""
    settings = {k: v for k, v in config.items() if k != "run"}
    text = json.dumps(settings, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def reproducibility_record(config: dict[str, Any], started: datetime) -> dict[str, Any]:
    """Seed, fingerprint, package versions and wall time of a run started at ``started``."""
    finished = datetime.now(UTC)
    return {
        "seed": config.get("seed"),
        "config_sha256": config_fingerprint(config),
        "started_utc": started.isoformat(),
        "wall_s": round((finished - started).total_seconds(), 3),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in _PACKAGES},
    }
