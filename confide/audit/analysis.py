"""The review of a DP analysis (``confide audit analysis=NAME``), before it runs.

Composed like a training review (:func:`confide.audit.review.audit` hands a config with an
``analysis`` section here). It shows the analysis's columns with each node's tier and the
declared bounds or categories, every part's epsilon and the total per node against the node's
per-run limit and its remaining lifetime budget (its budget ledger, read only), and where noise
is added. Findings come from the shared rules: the spec loader and
:func:`confide.analytics.policy_check.check_spec_against_policy` (spec and column rules),
:func:`confide.privacy.analysis_rules.analysis_budget_findings` (budget rules) and
:func:`confide.privacy.evaluate_config` (transport, secrets, overrides, node files). No data
value is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from confide.analytics.policy_check import check_spec_against_policy
from confide.analytics.spec import AnalysisSpec, AnalysisSpecError, load_analysis_spec
from confide.privacy import (
    RULES,
    ConfigReview,
    Finding,
    JobUsage,
    NodeFacts,
    Policy,
    evaluate_config,
)
from confide.privacy.analysis_rules import AnalysisBudget, analysis_budget_findings
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.review_rules import FEDERATION

from .facts import (
    config_sha256,
    data_facts,
    keys_status,
    ledger_path,
    load_node_policy,
    node_ledger,
    raw_policy,
    tolerant_nodes,
    transport_text,
)
from .verdict import Verdict

__all__ = [
    "AnalysisAudit",
    "AnalysisNodeView",
    "DeclView",
    "PartView",
    "audit_analysis_config",
    "noise_lines",
]

_SOURCE = "analysis config"
# Config sections only training reads; config findings about them do not concern an analysis.
_SCHEMA_RULES = ("UNLISTED-COLUMN", "SCHEMA-MISSING")  # the one node loader refuses both
_TRAINING_SECTIONS = ("dp.", "task.", "strategy.", "secure.", "train.")


@dataclass(frozen=True)
class PartView:
    """One part of the analysis (a query, rfm, segments, quality) and its epsilon."""

    name: str
    what: str
    columns: str
    epsilon: float
    expected_error: str = "reported beside each number with the release (depends on the rows)"


@dataclass(frozen=True)
class DeclView:
    """One declared column: its bounds or categories and the parts that use it."""

    name: str
    declared: str
    used_by: str


@dataclass
class AnalysisNodeView:
    """One node: its policy, the tier of each used column, its budget and its findings."""

    name: str
    source: str
    policy_path: str
    policy_error: str | None = None
    tiers: dict[str, str] = field(default_factory=dict)
    budget: AnalysisBudget | None = None
    ledger: str = ""
    spent_by_kind: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class AnalysisAudit(Verdict):
    """Everything the analysis review found; rendered by :mod:`confide.audit.analysis_render`."""

    analysis: str
    federation: str
    overrides: list[str]
    config_dirs: list[str]
    config_sha256: str
    epsilon: float | None
    delta: float | None
    transport: str
    noise: list[str]
    parts: list[PartView]
    columns: list[DeclView]
    nodes: list[AnalysisNodeView]
    findings: list[Finding]

    @property
    def errors(self) -> list[str]:
        """Rule ids of every ERROR finding, federation and nodes."""
        return sorted({f.rule_id for f in self.all_findings if f.severity == "ERROR"})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        out = dataclasses.asdict(self)
        for node, view in zip(out["nodes"], self.nodes, strict=True):
            b = view.budget
            node["remaining_before"] = b.remaining if b else None
            node["remaining_after"] = b.remaining_after if b else None
        out["summary"] = {s: self.count(s) for s in ("ERROR", "WARN", "INFO")}
        out["exit_code"] = self.exit_code
        return out


# --------------------------------------------------------------------------- spec views


def _declared(spec: AnalysisSpec, name: str) -> str:
    decl = spec.columns.get(name)
    if decl is None:
        return "NOT DECLARED"
    if decl.kind == "categorical":
        return f"{len(decl.categories or ())} categories: {', '.join(decl.categories or ())}"
    if decl.kind == "format":
        return f"format {decl.format}"
    return f"[{decl.min:g}, {decl.max:g}]"


def part_views(spec: AnalysisSpec) -> list[PartView]:
    """Every part with what it releases, the columns it reads and its epsilon."""
    out = []
    for q in spec.queries:
        what = q.stat + (f" of {q.column}" if q.column else "")
        if q.group_by:
            what += f" by {', '.join(q.group_by)}"
        if q.where:
            what += " where " + "; ".join(f"{c} in {', '.join(v)}" for c, v in q.where)
        cols = [c for c in (q.column, *q.group_by, *(c for c, _ in q.where)) if c]
        out.append(PartView(f"query:{q.name}", what, ", ".join(cols), q.epsilon))
    if spec.rfm is not None:
        dims = spec.rfm.dimensions()
        cols = ", ".join(d.column for d in dims.values())
        out.append(
            PartView(
                "rfm", "RFM scores by declared bins: cell counts and values", cols, spec.rfm.epsilon
            )
        )
    if spec.segments is not None:
        s = spec.segments
        cols = [*s.features, *(c for c in (s.outcome, s.value) if c)]
        what = (
            f"DP k-means (k={s.k}, {s.iterations} iterations): noisy per-cluster counts and "
            "sums; segment sizes, churn rate and average value"
        )
        out.append(PartView("segments", what, ", ".join(dict.fromkeys(cols)), s.epsilon))
    if spec.quality is not None:
        out.append(
            PartView(
                "quality",
                "data quality: missing, out-of-bounds and invalid-format rates",
                ", ".join(spec.quality.columns),
                spec.quality.epsilon,
            )
        )
    return out


_DATA_FREE = ("count", "sum", "histogram")  # their noise does not depend on the node's rows


def expected_errors(spec: AnalysisSpec, nodes: Sequence[str]) -> dict[str, str]:
    """Before anything runs: the expected 95% error of every part whose numbers' noise does not
    depend on the data (counts, sums, histogram bins, RFM cell counts), per node and federated
    over ``nodes``. Computed by the library's own release and combine on zero rows, so the
    calibration is the one the nodes use; the noise values drawn are discarded."""
    if not nodes:
        return {}
    from confide.analytics.combine import combine_releases  # loads OpenDP: only when needed
    from confide.analytics.mechanisms import SeededLaplace
    from confide.analytics.node import release_node

    columns = [spec.unit.id_column, *spec.columns_used()]
    empty = pd.DataFrame({c: pd.Series([], dtype=str) for c in columns})
    sampler = SeededLaplace(0)  # values discarded: only the error95 fields are read
    releases = {n: release_node(spec, empty, n, sampler=sampler) for n in nodes}
    combined = combine_releases(spec, releases)
    first = nodes[0]

    def num(x: float) -> str:
        return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"

    def text(per_node: float, federated: float) -> str:
        return f"± {num(per_node)} per node, ± {num(federated)} federated ({len(nodes)} node(s))"

    out = {}
    for q in spec.queries:
        if q.stat in _DATA_FREE:
            rows = combined["queries"][q.name]
            node_err = rows["per_node"][first][0]["error95"]
            out[f"query:{q.name}"] = text(node_err, rows["federated"][0]["error95"])
    if spec.rfm is not None:
        node_cell = combined["rfm"]["per_node"][first]["cells"][0]
        fed_cell = combined["rfm"]["federated"]["cells"][0]
        counts = text(node_cell["count"]["error95"], fed_cell["count"]["error95"])
        sums = text(node_cell["monetary_sum"]["error95"], fed_cell["monetary_sum"]["error95"])
        out["rfm"] = f"cell counts {counts}; cell monetary sums {sums}"
    return out


def decl_views(spec: AnalysisSpec) -> list[DeclView]:
    """Every used column (and the unit's id column) with its declaration and its parts."""
    parts: dict[str, list[str]] = {}
    for column, part, use in spec.column_uses():
        entry = f"{part} ({use})"
        if entry not in parts.setdefault(column, []):
            parts[column].append(entry)
    out = [
        DeclView(
            spec.unit.id_column,
            f"customer id: at most {spec.unit.max_rows_per_customer} row(s) per customer",
            "contribution bound only (never released)",
        )
    ]
    out += [DeclView(c, _declared(spec, c), "; ".join(p)) for c, p in parts.items()]
    return out


def noise_lines(spec: AnalysisSpec | None) -> list[str]:
    """Where noise is added and what leaves each node, in words."""
    lines = [
        "Laplace noise from OpenDP's floating-point-safe sampler is added AT EACH NODE to its "
        "own release, before anything leaves it (local DP: a node's guarantee does not depend "
        "on trusting the coordinator or the other nodes); see docs/analytics.md",
        "the coordinator only sums the nodes' noisy releases and derives each number's "
        "expected 95% error from the known noise scales; every number it publishes is a DP "
        "release",
        "never leaves a node: rows, ids, raw values, the policy; group keys come only from "
        "declared categories, never from the data",
    ]
    if spec is not None:
        lines.insert(
            2,
            f"contribution bound: at most {spec.unit.max_rows_per_customer} row(s) per "
            f"customer ('{spec.unit.id_column}'), enforced by each node; noise is calibrated to "
            "the declared bounds and this bound",
        )
        if spec.segments is not None:
            lines.append(
                "segment assignments stay on each node; only noisy per-cluster counts and sums "
                "leave it"
            )
    return lines


# --------------------------------------------------------------------------- review


def _spec(config: Mapping[str, Any]) -> tuple[AnalysisSpec | None, Finding | None]:
    raw = config.get("analysis")
    if not isinstance(raw, Mapping):
        return None, Finding(
            "ERROR", "ANALYSIS-SPEC", FEDERATION, "analysis", "the analysis must be a mapping"
        )
    try:
        return load_analysis_spec(raw, _SOURCE), None
    except AnalysisSpecError as exc:
        return None, Finding("ERROR", exc.rule_id, FEDERATION, "analysis", str(exc))


def _schema(node: str, policy: Policy, header: list[str] | None) -> list[Finding]:
    """The node loader's schema rules on the data header (the registry's own checks): a data
    column the policy does not list, a policy column missing from the data."""
    if header is None:
        return []
    usage = JobUsage(node, [], "", True, None, None, None, data_columns=header)
    return [f for rid in _SCHEMA_RULES for f in RULES[rid].check(policy, usage)]


def _spent_by_kind(node, policy: Policy, generated: bool) -> dict[str, float]:
    """Lifetime charges of earlier runs by kind (training, analysis): one ledger, read only."""
    path = None if generated and node.ledger is None else ledger_path(node)
    if path is None:
        return {}
    out: dict[str, float] = {}
    for run in BudgetLedger(path, node.name, policy.dp.lifetime_epsilon).runs():
        out[run.kind] = out.get(run.kind, 0.0) + run.charge
    return out


def _effective_cap(policy: Policy, node_cap: float | None) -> float:
    cap = policy.dp.max_epsilon_per_run
    return min(cap, node_cap) if node_cap is not None else cap


def _node_view(node, config: Mapping[str, Any], spec: AnalysisSpec | None):
    generated = node.profile is not None or node.part is not None
    status, source, header, _rows, _basis = data_facts(node, config, 0, 0.0)
    policy, policy_finding = load_node_policy(node)
    view = AnalysisNodeView(node.name, source, raw_policy(config, node))
    view.ledger, spent, ledger_error = node_ledger(node, generated, policy)
    if generated and node.ledger is None:  # confide analyze keeps node files beside the run
        view.ledger = f"new for every run: <run dir>.nodes/{node.name}/ledger.json (synthetic)"
    crypto = tuple(c.name for c in policy.columns.values() if c.spec.needs_key) if policy else ()
    facts = NodeFacts(node.name, status, keys_status(node, generated), crypto, ledger_error)
    if policy_finding is not None:
        view.policy_error = policy_finding.message
        view.findings = [policy_finding]
        return view, facts
    if policy is None or spec is None:
        return view, facts
    for column in [spec.unit.id_column, *spec.columns_used()]:
        rule = policy.column_for(column)
        view.tiers[column] = rule.tier.value if rule else "not in policy"
    view.findings = check_spec_against_policy(spec, policy, node.name) + _schema(
        node.name, policy, header
    )
    view.budget = AnalysisBudget(
        node=node.name,
        epsilon=spec.epsilon,
        delta=spec.delta,
        max_epsilon_per_run=_effective_cap(policy, node.max_epsilon_per_run),
        max_delta=policy.dp.max_delta,
        lifetime_epsilon=policy.dp.lifetime_epsilon,
        lifetime_spent=spent,
    )
    if ledger_error is None:  # an unreadable ledger is LEDGER-INTEGRITY, not a budget number
        view.findings += analysis_budget_findings(view.budget)
        view.spent_by_kind = _spent_by_kind(node, policy, generated)
    return view, facts


def audit_analysis_config(
    config: Mapping[str, Any],
    *,
    raw_config: Mapping[str, Any] | None = None,
    baseline: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    config_dirs: Sequence[str | Path] = (),
) -> AnalysisAudit:
    """Review a resolved config whose ``analysis`` section is set (plain dicts)."""
    config = dict(config)
    spec, spec_finding = _spec(config)
    views, facts = [], []
    for node in tolerant_nodes(config):
        view, fact = _node_view(node, config, spec)
        views.append(view)
        facts.append(fact)
    review = ConfigReview(
        config=config,
        raw_config=raw_config,
        baseline=baseline,
        overrides=tuple(overrides),
        nodes=tuple(facts),
    )
    by_node = {v.name: v for v in views}
    findings = [spec_finding] if spec_finding else []
    for finding in evaluate_config(review):
        if (finding.field or "").startswith(_TRAINING_SECTIONS):
            continue  # a training setting (DP-SGD, task, strategy): not used by an analysis
        if finding.node in by_node:
            by_node[finding.node].findings.append(finding)
        else:
            findings.append(finding)
    parts = part_views(spec) if spec else []
    if spec is not None and not spec_finding:
        errors = expected_errors(spec, [v.name for v in views])
        parts = [
            dataclasses.replace(p, expected_error=errors.get(p.name, p.expected_error))
            for p in parts
        ]
    raw = config.get("analysis")
    name = spec.name if spec else str(raw.get("name", "?") if isinstance(raw, Mapping) else "?")
    return AnalysisAudit(
        analysis=name,
        federation=str((config.get("federation") or {}).get("name", "?")),
        overrides=list(overrides),
        config_dirs=[str(d) for d in config_dirs],
        config_sha256=config_sha256(config),
        epsilon=spec.epsilon if spec else None,
        delta=spec.delta if spec else None,
        transport=transport_text(config),
        noise=noise_lines(spec),
        parts=parts,
        columns=decl_views(spec) if spec else [],
        nodes=views,
        findings=findings,
    )
