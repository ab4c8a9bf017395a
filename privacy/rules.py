"""Job-level rule engine: is this training job allowed by the node's policy?

Used at node job start (before any training) and by the compliance review. The job rules are
listed in :data:`RULE_DEFINITIONS`; :data:`confide.privacy.registry.RULES` assembles every
module's definitions into the one registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import RuleViolation
from .findings import Finding, Rule, by_id
from .policy import Policy
from .tiers import Tier

__all__ = [
    "RULE_BY_ID",
    "RULE_DEFINITIONS",
    "Finding",
    "JobUsage",
    "Rule",
    "enforce",
    "evaluate_job",
]

_PIPL_SENS = "PIPL art. 28-29 and GB/T 35273-2020 §5.5/§6.3"


@dataclass(frozen=True)
class JobUsage:
    """What a training job intends to do on a node (task names, DP settings, data size).

    ``data_columns`` (optional) are the raw data's columns, for the schema rules.
    """

    node: str
    features: list[str]
    label: str
    dp_enabled: bool
    epsilon_per_run: float | None
    delta: float | None
    n_train_rows: int | None
    lifetime_spent: float = 0.0
    data_columns: list[str] | None = field(default=None)

    @property
    def task_fields(self) -> list[tuple[str, str]]:
        """(kind, task name) pairs: every feature, then the label."""
        return [("feature", f) for f in self.features] + [("label", self.label)]


def _f(rule_id: str, usage: JobUsage, fld: str | None, message: str) -> Finding:
    return Finding(RULE_BY_ID[rule_id].severity, rule_id, usage.node, fld, message)


def _resolved(policy: Policy, usage: JobUsage):
    for kind, name in usage.task_fields:
        col = policy.column_for(name)
        if col is not None:
            yield kind, name, col


def _task_column_missing(policy: Policy, usage: JobUsage) -> list[Finding]:
    return [
        _f(
            "TASK-COLUMN-MISSING",
            usage,
            name,
            f"task {kind} '{name}' does not resolve to any column of policy {policy.source} "
            "(no column with that name or maps_to)",
        )
        for kind, name in usage.task_fields
        if policy.column_for(name) is None
    ]


def _cs_feature(policy: Policy, usage: JobUsage) -> list[Finding]:
    return [
        _f(
            "CS-FEATURE",
            usage,
            name,
            f"task {kind} '{name}' resolves to column '{col.name}', which is core_sensitive; "
            "core-sensitive fields are never model inputs or labels",
        )
        for kind, name, col in _resolved(policy, usage)
        if col.tier is Tier.CORE_SENSITIVE
    ]


def _role_mismatch(policy: Policy, usage: JobUsage) -> list[Finding]:
    return [
        _f(
            "ROLE-MISMATCH",
            usage,
            name,
            f"task {kind} '{name}' resolves to column '{col.name}' whose policy role is "
            f"'{col.role}'; set role: {kind} in the policy to allow it",
        )
        for kind, name, col in _resolved(policy, usage)
        if col.tier is not Tier.CORE_SENSITIVE and col.role != kind
    ]


def _tier_transform(policy: Policy, usage: JobUsage) -> list[Finding]:
    return [
        _f(
            "TIER-TRANSFORM",
            usage,
            name,
            f"task {kind} '{name}' resolves to column '{col.name}' with transform "
            f"{col.transform}; only keep or generalize:* columns can be model inputs",
        )
        for kind, name, col in _resolved(policy, usage)
        if col.spec.family not in ("keep", "generalize")
    ]


def _gs_no_dp(policy: Policy, usage: JobUsage) -> list[Finding]:
    if usage.dp_enabled:
        return []
    return [
        _f(
            "GS-NO-DP",
            usage,
            name,
            f"task {kind} '{name}' resolves to general_sensitive column '{col.name}' but DP is "
            "disabled; enable DP-SGD or remove the field",
        )
        for kind, name, col in _resolved(policy, usage)
        if col.tier is Tier.GENERAL_SENSITIVE
    ]


def _dp_required(policy: Policy, usage: JobUsage) -> list[Finding]:
    if usage.dp_enabled or not policy.dp.require_dp:
        return []
    return [
        _f(
            "DP-REQUIRED",
            usage,
            None,
            f"DP is disabled but policy {policy.source} sets dp.require_dp: true",
        )
    ]


def _dp_eps_run(policy: Policy, usage: JobUsage) -> list[Finding]:
    if not usage.dp_enabled:
        return []
    eps = usage.epsilon_per_run
    if eps is None or not eps > 0:
        return [
            _f(
                "DP-EPS-RUN",
                usage,
                None,
                "DP is enabled but the job states no positive epsilon for the run",
            )
        ]
    if eps > policy.dp.max_epsilon_per_run:
        return [
            _f(
                "DP-EPS-RUN",
                usage,
                None,
                f"run epsilon {eps:g} exceeds the node limit dp.max_epsilon_per_run="
                f"{policy.dp.max_epsilon_per_run:g}",
            )
        ]
    return []


def _dp_delta(policy: Policy, usage: JobUsage) -> list[Finding]:
    if not usage.dp_enabled:
        return []
    d = usage.delta
    if d is None or not 0 < d < 1:
        return [_f("DP-DELTA", usage, None, "DP is enabled but the job states no delta in (0, 1)")]
    if d > policy.dp.max_delta:
        return [
            _f(
                "DP-DELTA",
                usage,
                None,
                f"delta {d:g} exceeds the node limit dp.max_delta={policy.dp.max_delta:g}",
            )
        ]
    return []


def _dp_delta_n(policy: Policy, usage: JobUsage) -> list[Finding]:
    if not usage.dp_enabled or usage.delta is None:
        return []
    n = usage.n_train_rows
    if n is None or n <= 0:
        return [
            Finding(
                "WARN",
                "DP-DELTA-N",
                usage.node,
                None,
                "number of training rows unknown; cannot check delta < 1/n",
            )
        ]
    if usage.delta >= 1.0 / n:
        return [
            _f(
                "DP-DELTA-N",
                usage,
                None,
                f"delta {usage.delta:g} is not below 1/n = {1.0 / n:g} for n={n} training "
                "rows; such a delta permits releasing whole records",
            )
        ]
    return []


def _dp_lifetime(policy: Policy, usage: JobUsage) -> list[Finding]:
    if not usage.dp_enabled or usage.epsilon_per_run is None:
        return []
    total = usage.lifetime_spent + usage.epsilon_per_run
    if total > policy.dp.lifetime_epsilon:
        return [
            _f(
                "DP-LIFETIME",
                usage,
                None,
                f"spent {usage.lifetime_spent:g} + this run {usage.epsilon_per_run:g} = "
                f"{total:g} exceeds dp.lifetime_epsilon={policy.dp.lifetime_epsilon:g}",
            )
        ]
    return []


def _unlisted(policy: Policy, usage: JobUsage) -> list[Finding]:
    cols = usage.data_columns or []
    return [
        _f(
            "UNLISTED-COLUMN",
            usage,
            c,
            f"column '{c}' is not listed in policy {policy.source} (rule: unknown_columns=refuse)",
        )
        for c in cols
        if c not in policy.columns
    ]


def _schema_missing(policy: Policy, usage: JobUsage) -> list[Finding]:
    if usage.data_columns is None:
        return []
    present = set(usage.data_columns)
    return [
        _f(
            "SCHEMA-MISSING",
            usage,
            c,
            f"column '{c}' listed in policy {policy.source} is missing from the data",
        )
        for c in policy.columns
        if c not in present
    ]


def _usage_summary(policy: Policy, usage: JobUsage) -> list[Finding]:
    out = []
    for kind, name, col in _resolved(policy, usage):
        dp = (
            f"under DP (epsilon {usage.epsilon_per_run:g}, delta {usage.delta:g})"
            if usage.dp_enabled and usage.epsilon_per_run and usage.delta
            else "without DP"
        )
        out.append(
            _f(
                "FIELD-USE",
                usage,
                name,
                f"task {kind} '{name}' <- column '{col.name}' ({col.tier.value}, "
                f"{col.transform}) {dp}",
            )
        )
    return out


_JOB_CHECKS = tuple(
    Rule(_rid, _sev, _title, _why, _check, scope="job")
    for _rid, _sev, _title, _why, _check in (
        (
            "TASK-COLUMN-MISSING",
            "ERROR",
            "Every task feature and label resolves to a policy column",
            "Fail closed: a field the node's policy does not describe cannot be classified, so it "
            "is "
            "not used.",
            _task_column_missing,
        ),
        (
            "CS-FEATURE",
            "ERROR",
            "Core-sensitive fields never become features or labels",
            "National IDs, phone numbers, bank cards, exact addresses are sensitive personal "
            f"information ({_PIPL_SENS}; GDPR art. 9 special categories); models can memorise "
            f"them.",
            _cs_feature,
        ),
        (
            "ROLE-MISMATCH",
            "ERROR",
            "A field is used only in the role the policy grants it",
            "The node's policy is law on the node: only columns with role feature (label) may feed "
            "features (the label); purpose limitation, PIPL art. 6 / GDPR art. 5(1)(b).",
            _role_mismatch,
        ),
        (
            "TIER-TRANSFORM",
            "ERROR",
            "Model inputs come from kept or generalised columns only",
            "Dropped, masked, encrypted or pseudonymised columns must not reach training.",
            _tier_transform,
        ),
        (
            "GS-NO-DP",
            "ERROR",
            "General-sensitive fields are features only under DP",
            "Consumption habits, spend and age may be used only when training is differentially "
            f"private within the node's budget ({_PIPL_SENS}; GDPR art. 25 data protection by "
            f"design).",
            _gs_no_dp,
        ),
        (
            "DP-REQUIRED",
            "ERROR",
            "DP is on when the policy requires it",
            "The node owner decided that nothing trains on this data without DP (require_dp).",
            _dp_required,
        ),
        (
            "DP-EPS-RUN",
            "ERROR",
            "Run epsilon within the node's per-run limit",
            "The server may propose, never override: a proposal above the node's limit is refused.",
            _dp_eps_run,
        ),
        (
            "DP-DELTA",
            "ERROR",
            "Delta within the node's limit",
            "delta bounds the probability the epsilon guarantee fails; the node caps it.",
            _dp_delta,
        ),
        (
            "DP-DELTA-N",
            "ERROR",
            "Delta well below 1/n",
            "A delta of 1/n or more allows mechanisms that publish an entire record with that "
            "probability (Dwork & Roth 2014, §2.3).",
            _dp_delta_n,
        ),
        (
            "DP-LIFETIME",
            "ERROR",
            "Lifetime epsilon budget not exceeded",
            "Privacy loss composes across runs; a run that would exceed the lifetime budget is "
            "refused "
            "before training starts.",
            _dp_lifetime,
        ),
        (
            "UNLISTED-COLUMN",
            "ERROR",
            "Every data column is listed in the policy",
            "unknown_columns: refuse - an unclassified column could hold identity data (fail "
            "closed).",
            _unlisted,
        ),
        (
            "SCHEMA-MISSING",
            "ERROR",
            "Every policy column is present in the data",
            "A schema drift means the policy no longer describes the data it governs.",
            _schema_missing,
        ),
        (
            "FIELD-USE",
            "INFO",
            "Which field is used, at which tier, with which transform",
            "For the compliance review: a record of every field's use and its DP guarantee.",
            _usage_summary,
        ),
    )
)

_JOB_REFUSALS = (
    Rule(
        "POLICY-MISSING",
        "ERROR",
        "A policy exists for the dataset",
        "No policy, no processing: without a data contract nothing may run.",
        None,
        scope="job",
    ),
)

RULE_DEFINITIONS = (*_JOB_CHECKS, *_JOB_REFUSALS)
RULE_BY_ID = by_id(RULE_DEFINITIONS)


def evaluate_job(policy: Policy | None, usage: JobUsage) -> list[Finding]:
    """Run every job-scope rule; returns all findings (ERROR, WARN and INFO)."""
    if policy is None:
        return [
            _f(
                "POLICY-MISSING",
                usage,
                None,
                "no policy was given for this dataset; every node needs a policy file",
            )
        ]
    findings: list[Finding] = []
    for rule in _JOB_CHECKS:
        if rule.check is not None:
            findings.extend(rule.check(policy, usage))
    return findings


def enforce(findings: list[Finding]) -> None:
    """Raise RuleViolation (one line: rule ids, node, fields) if any finding is an ERROR."""
    errors = [f for f in findings if f.severity == "ERROR"]
    if not errors:
        return
    parts = []
    for f in errors:
        parts.append(f"{f.rule_id}" + (f" ({f.field})" if f.field else ""))
    nodes = sorted({f.node for f in errors})
    raise RuleViolation(
        f"job refused on node {', '.join(nodes)}: "
        + "; ".join(parts)
        + f" - first: {errors[0].message}",
        findings,
    )
