"""Confide privacy: tiers, policies, masking, field encryption, pseudonyms, PII scan, rules.

Standalone: imports neither torch nor Flower.
"""

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
