"""An analysis spec against one node's policy: which uses the node must refuse, with rule ids.

The node runs this before it reads a row (and the review runs it before anything starts):

* ``ANALYSIS-UNKNOWN-COLUMN``: a used column (or the unit's id column) that the node's policy
  does not list, by name or by ``maps_to``;
* ``ANALYSIS-CS-COLUMN``: a core-sensitive column used as a value, a group key, a filter, a
  segment feature or outcome. Only the data-quality profile may look at a core-sensitive column
  (it releases noisy missing / invalid-format rates, never a value);
* ``ANALYSIS-UNBOUNDED``: a used column without the declaration its use needs (bounds for
  values, categories for group keys and filters). :func:`confide.analytics.spec.load_analysis_spec`
  already refuses these; the check is repeated here so a spec built any other way is caught too.

The rule ids and their rationale are registered in :mod:`confide.privacy.analysis_rules`.
"""

from __future__ import annotations

from confide.core.errors import ConfideError
from confide.privacy.findings import Finding
from confide.privacy.policy import Policy
from confide.privacy.tiers import Tier

from .spec import AnalysisSpec

__all__ = ["AnalysisPolicyError", "check_spec_against_policy", "require_policy_ok"]

CS_COLUMN = "ANALYSIS-CS-COLUMN"
UNBOUNDED = "ANALYSIS-UNBOUNDED"
UNKNOWN_COLUMN = "ANALYSIS-UNKNOWN-COLUMN"

_NEEDS = {"value": "numeric", "feature": "numeric", "outcome": "numeric"}
_NEEDS.update({"group_by": "categorical", "where": "categorical"})


class AnalysisPolicyError(ConfideError):
    """The node's policy refuses the analysis (the message lists every ERROR finding)."""


def check_spec_against_policy(
    spec: AnalysisSpec, policy: Policy, node: str | None = None
) -> list[Finding]:
    """ERROR findings for every use of a column that ``policy`` forbids (empty: allowed)."""
    who = node or policy.dataset
    out: list[Finding] = []
    if policy.column_for(spec.unit.id_column) is None:
        out.append(
            Finding(
                "ERROR",
                UNKNOWN_COLUMN,
                who,
                spec.unit.id_column,
                f"unit.id_column '{spec.unit.id_column}' is not listed in policy "
                f"{policy.source}; the contribution bound needs the customer id",
            )
        )
    seen: set[tuple[str, str, str]] = set()
    for column, part, use in spec.column_uses():
        if (column, part, use) in seen:
            continue
        seen.add((column, part, use))
        rule = policy.column_for(column)
        if rule is None:
            out.append(
                Finding(
                    "ERROR",
                    UNKNOWN_COLUMN,
                    who,
                    column,
                    f"{part} uses column '{column}' ({use}), which policy {policy.source} "
                    "does not list",
                )
            )
            continue
        if rule.tier is Tier.CORE_SENSITIVE and use != "quality":
            out.append(
                Finding(
                    "ERROR",
                    CS_COLUMN,
                    who,
                    column,
                    f"{part} uses core_sensitive column '{column}' as {use}; core-sensitive "
                    "columns may only enter the data-quality profile",
                )
            )
        decl = spec.columns.get(column)
        need = _NEEDS.get(use)
        if decl is None or (need is not None and decl.kind != need):
            what = "declared bounds (min, max)" if need == "numeric" else "declared categories"
            if need is None:
                what = "a declaration"
            out.append(
                Finding(
                    "ERROR",
                    UNBOUNDED,
                    who,
                    column,
                    f"{part} uses column '{column}' ({use}) without {what}",
                )
            )
    return out


def require_policy_ok(spec: AnalysisSpec, policy: Policy, node: str | None = None) -> None:
    """Raise :class:`AnalysisPolicyError` (one line, every ERROR with its rule id) if the node's
    policy refuses any use; return quietly otherwise."""
    errors = [f for f in check_spec_against_policy(spec, policy, node) if f.severity == "ERROR"]
    if errors:
        who = node or policy.dataset
        detail = "; ".join(f"{f.message} (rule {f.rule_id})" for f in errors)
        raise AnalysisPolicyError(f"node '{who}' refuses analysis '{spec.name}': {detail}")
