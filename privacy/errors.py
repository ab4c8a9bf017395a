"""Typed exceptions of the privacy package.

Every message is one line that names the file or source, the field (column) and the rule
that was broken. Messages never contain raw data values or key material.
"""

from __future__ import annotations

from confide.core.errors import ConfideError

__all__ = [
    "DecryptionError",
    "KeyMaterialError",
    "PolicyError",
    "PrivacyError",
    "RuleViolation",
    "SchemaError",
    "TransformError",
]


class PrivacyError(ConfideError):
    """Base class of the privacy package's errors; ``str(err)`` is a single actionable line."""


class PolicyError(PrivacyError):
    """Malformed or missing policy file, unknown key/tier/transform/role, disallowed combination."""


class SchemaError(PrivacyError):
    """Data columns do not match the policy (unlisted column or missing listed column)."""


class KeyMaterialError(PrivacyError):
    """Missing or invalid key file, key environment variable or key id."""


class DecryptionError(PrivacyError):
    """Any decryption or verification failure; the message is deliberately the same for all."""


class TransformError(PrivacyError):
    """Values a transform cannot accept (e.g. a float where a string rule applies)."""


class RuleViolation(PrivacyError):
    """Raised by :func:`privacy.rules.enforce` when a job breaks an ERROR rule.

    ``findings`` holds every finding (all severities) that led to the refusal.
    """

    def __init__(self, message: str, findings: list | tuple = ()) -> None:
        super().__init__(message)
        self.findings = list(findings)
