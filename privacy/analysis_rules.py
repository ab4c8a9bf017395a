"""Rules of DP analyses (``confide analyze``), in the single rule registry.

An analysis releases DP statistics (queries, RFM cells, k-means segments, data quality) from
each node. Two kinds of rule guard it, on the node before anything is computed and in the review
(``confide audit analysis=NAME``) before anything runs:

* spec and column rules, which :func:`confide.analytics.spec.load_analysis_spec` and
  :func:`confide.analytics.policy_check.check_spec_against_policy` produce
  (it owns that logic: a core-sensitive column queried, grouped or filtered on, a used column
  without declared bounds or categories, a column the node's policy does not list);
* budget rules, checked here by :func:`analysis_budget_findings` from plain numbers: the
  analysis's epsilon and delta against the node's per-run limits and its remaining lifetime
  budget (the same budget ledger training draws on).

No pandas, no torch, no Flower: plain numbers in, :class:`~privacy.findings.Finding` out.
"""

from __future__ import annotations

from dataclasses import dataclass

from .findings import Finding, Rule, by_id

__all__ = [
    "RULE_DEFINITIONS",
    "AnalysisBudget",
    "analysis_budget_findings",
]

_TOLERANCE = 1e-9  # epsilons are sums of decimal parts: 0.1 + 0.2 must not exceed 0.3


@dataclass(frozen=True)
class AnalysisBudget:
    """One node's budget facts for one analysis: what it asks and what the node allows.

    ``max_epsilon_per_run`` is the node's effective per-run cap (policy, lowered by a node cap);
    ``lifetime_spent`` is the budget ledger's charge of earlier runs, training and analyses.
    """

    node: str
    epsilon: float
    delta: float
    max_epsilon_per_run: float
    max_delta: float
    lifetime_epsilon: float
    lifetime_spent: float

    @property
    def remaining(self) -> float:
        """Lifetime epsilon left before this analysis."""
        return self.lifetime_epsilon - self.lifetime_spent

    @property
    def remaining_after(self) -> float:
        """Lifetime epsilon left after this analysis."""
        return self.remaining - self.epsilon


def _f(rule_id: str, node: str, fld: str | None, message: str) -> Finding:
    return Finding(_RULE_BY_ID[rule_id].severity, rule_id, node, fld, message)


def analysis_budget_findings(budget: AnalysisBudget) -> list[Finding]:
    """ERROR findings when the analysis's epsilon or delta exceeds the node's per-run limits or
    its remaining lifetime budget; none when it fits."""
    b, out = budget, []
    if b.epsilon > b.max_epsilon_per_run + _TOLERANCE:
        out.append(
            _f(
                "ANALYSIS-EPS-RUN",
                b.node,
                "epsilon",
                f"node '{b.node}': analysis epsilon {b.epsilon:g} exceeds the node's per-run "
                f"limit {b.max_epsilon_per_run:g} (dp.max_epsilon_per_run or the node's cap)",
            )
        )
    if b.delta > b.max_delta:
        out.append(
            _f(
                "ANALYSIS-DELTA",
                b.node,
                "delta",
                f"node '{b.node}': analysis delta {b.delta:g} exceeds the node's limit "
                f"dp.max_delta={b.max_delta:g}",
            )
        )
    if b.lifetime_spent + b.epsilon > b.lifetime_epsilon + _TOLERANCE:
        out.append(
            _f(
                "ANALYSIS-LIFETIME",
                b.node,
                "epsilon",
                f"node '{b.node}': spent {b.lifetime_spent:g} + this analysis {b.epsilon:g} = "
                f"{b.lifetime_spent + b.epsilon:g} exceeds dp.lifetime_epsilon="
                f"{b.lifetime_epsilon:g} (remaining {max(b.remaining, 0.0):g})",
            )
        )
    return out


_PIPL_SENS = "PIPL art. 28-29 and GB/T 35273-2020 §5.5/§6.3"

RULE_DEFINITIONS = tuple(
    Rule(_rid, _sev, _title, _why, None, scope="analysis")
    for _rid, _sev, _title, _why in (
        (
            "ANALYSIS-SPEC",
            "ERROR",
            "The analysis spec is valid",
            "Fail closed: unknown keys or statistics, inverted bounds, empty or duplicate "
            "categories, non-positive epsilons or parts that do not sum to the analysis's "
            "epsilon stop the analysis with one line before anything is written or spent "
            "(confide.analytics.spec.load_analysis_spec, on the coordinator and again on "
            "every node).",
        ),
        (
            "ANALYSIS-CS-COLUMN",
            "ERROR",
            "No query, group-by, filter or segment feature on a core-sensitive column",
            "Identity data (IDs, phone numbers, cards, exact addresses) is never an analysis "
            f"input, not even under DP ({_PIPL_SENS}); a group key or filter on it would single "
            "customers out.",
        ),
        (
            "ANALYSIS-UNBOUNDED",
            "ERROR",
            "Every column an analysis uses has declared bounds or categories",
            "DP noise is calibrated to the declared range (sensitivity); bounds taken from the "
            "data would leak it, and group keys come only from declared categories, never from "
            "the data.",
        ),
        (
            "ANALYSIS-UNKNOWN-COLUMN",
            "ERROR",
            "Every column an analysis uses is listed in the node's policy",
            "Fail closed: a column the node's policy does not classify cannot be released.",
        ),
        (
            "ANALYSIS-EPS-RUN",
            "ERROR",
            "Analysis epsilon within the node's per-run limit",
            "An analysis is a run like any other: the coordinator may propose, never override "
            "the node's dp.max_epsilon_per_run.",
        ),
        (
            "ANALYSIS-DELTA",
            "ERROR",
            "Analysis delta within the node's limit",
            "delta bounds the probability the epsilon guarantee fails (Gaussian mechanism); "
            "the node caps it.",
        ),
        (
            "ANALYSIS-LIFETIME",
            "ERROR",
            "Analysis epsilon within the node's remaining lifetime budget",
            "Analyses and training draw on one budget ledger per node; privacy loss composes "
            "across them, so a release that would exceed the lifetime budget is refused before "
            "anything is computed.",
        ),
        (
            "ANALYSIS-STEP",
            "ERROR",
            "Each step of an analysis is charged once, in order, against its reservation",
            "A k-means iteration or release replayed or sent out of order would be computed "
            "without being charged; the node's ledger holds the run's step count and refuses "
            "it (compare-and-set under the ledger's lock).",
        ),
        (
            "ANALYSIS-RELEASE",
            "ERROR",
            "The coordinator uses a node's release only after checking it against the spec",
            "A reply is data, never trusted: its format, analysis, vector lengths (from the spec, "
            "never from the reply) and finite values and noise scales are checked before it is "
            "combined; group keys, bins and cells come from the spec, never from a release.",
        ),
    )
)

_RULE_BY_ID = by_id(RULE_DEFINITIONS)
