"""Confide privacy: tiers, policies, masking, field encryption, pseudonyms, PII scan, rules.

Standalone: imports neither torch nor Flower. The package's exports are lazy (PEP 562): ``from
confide.privacy import X`` imports X's module on first use, so a command that needs only the
policy or the ledgers (``confide --help`` included) never loads pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Each public name and the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "ApplyStats": "apply",
    "apply_file": "apply",
    "apply_policy": "apply",
    "decrypt_file": "apply",
    "rotate_file": "apply",
    "check_cardinality": "encryption",
    "decrypt_series": "encryption",
    "encrypt_deterministic_series": "encryption",
    "encrypt_randomized_series": "encryption",
    "rotate_series": "encryption",
    "DecryptionError": "errors",
    "KeyMaterialError": "errors",
    "PolicyError": "errors",
    "PrivacyError": "errors",
    "RuleViolation": "errors",
    "SchemaError": "errors",
    "TransformError": "errors",
    "generalize_series": "generalize",
    "Keyring": "keys",
    "add_key": "keys",
    "new_keyring_file": "keys",
    "mask_series": "masking",
    "ColumnScan": "pii_scan",
    "ScanReport": "pii_scan",
    "scan_dataframe": "pii_scan",
    "scan_file": "pii_scan",
    "ColumnRule": "policy",
    "DPLimits": "policy",
    "Policy": "policy",
    "load_policy": "policy",
    "parse_policy": "policy",
    "pseudonymize_series": "pseudonymize",
    "Finding": "registry",
    "RULES": "registry",
    "Rule": "registry",
    "rule_catalogue_document": "registry",
    "ConfigReview": "review_rules",
    "NodeFacts": "review_rules",
    "evaluate_config": "review_rules",
    "JobUsage": "rules",
    "enforce": "rules",
    "evaluate_job": "rules",
    "RunLedger": "run_ledger",
    "RunLedgerError": "run_ledger",
    "Tier": "tiers",
    "dataset_tier": "tiers",
    "is_email": "validators",
    "is_luhn": "validators",
    "is_mobile": "validators",
    "is_national_id": "validators",
}

__all__ = [
    "RULES",
    "ApplyStats",
    "ColumnRule",
    "ColumnScan",
    "ConfigReview",
    "DPLimits",
    "DecryptionError",
    "Finding",
    "JobUsage",
    "KeyMaterialError",
    "Keyring",
    "NodeFacts",
    "Policy",
    "PolicyError",
    "PrivacyError",
    "Rule",
    "RuleViolation",
    "RunLedger",
    "RunLedgerError",
    "ScanReport",
    "SchemaError",
    "Tier",
    "TransformError",
    "add_key",
    "apply_file",
    "apply_policy",
    "check_cardinality",
    "dataset_tier",
    "decrypt_file",
    "decrypt_series",
    "encrypt_deterministic_series",
    "encrypt_randomized_series",
    "enforce",
    "evaluate_config",
    "evaluate_job",
    "generalize_series",
    "is_email",
    "is_luhn",
    "is_mobile",
    "is_national_id",
    "load_policy",
    "mask_series",
    "new_keyring_file",
    "parse_policy",
    "pseudonymize_series",
    "rotate_file",
    "rotate_series",
    "rule_catalogue_document",
    "scan_dataframe",
    "scan_file",
]

if TYPE_CHECKING:  # static tools see the names; nothing is imported at run time
    from .apply import ApplyStats, apply_file, apply_policy, decrypt_file, rotate_file
    from .encryption import (
        check_cardinality,
        decrypt_series,
        encrypt_deterministic_series,
        encrypt_randomized_series,
        rotate_series,
    )
    from .errors import (
        DecryptionError,
        KeyMaterialError,
        PolicyError,
        PrivacyError,
        RuleViolation,
        SchemaError,
        TransformError,
    )
    from .generalize import generalize_series
    from .keys import Keyring, add_key, new_keyring_file
    from .masking import mask_series
    from .pii_scan import ColumnScan, ScanReport, scan_dataframe, scan_file
    from .policy import ColumnRule, DPLimits, Policy, load_policy, parse_policy
    from .pseudonymize import pseudonymize_series
    from .registry import RULES, Finding, Rule, rule_catalogue_document
    from .review_rules import ConfigReview, NodeFacts, evaluate_config
    from .rules import JobUsage, enforce, evaluate_job
    from .run_ledger import RunLedger, RunLedgerError
    from .tiers import Tier, dataset_tier
    from .validators import is_email, is_luhn, is_mobile, is_national_id


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access and cache the value."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
