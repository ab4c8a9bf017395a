"""`confide audit analysis=NAME`: the review of a DP analysis. Each rule fires on a minimal
one-node config and stays silent on its control; the shipped analysis passes; the budget ledger
is read, never written."""

import copy
import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from confide.audit import audit, render
from confide.audit.analysis import AnalysisAudit, audit_analysis_config
from confide.cli import app
from confide.privacy.analysis_rules import AnalysisBudget, analysis_budget_findings
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.registry import RULES, rules_for
from tests.confide.test_audit import POLICY, mini

SPEC = {
    "name": "mini_profile",
    "epsilon": 1.0,
    "delta": 0.0,
    "unit": {"id_column": "customer_id", "max_rows_per_customer": 1},
    "columns": {
        "age": {"min": 18, "max": 90},
        "province": {"categories": ["北京", "上海"]},
        "churned": {"min": 0, "max": 1},
    },
    "queries": [
        {
            "name": "age_by_province",
            "stat": "sum",
            "column": "age",
            "group_by": ["province"],
            "epsilon": 0.5,
        },
        {"name": "churn_rate", "stat": "mean", "column": "churned", "epsilon": 0.5},
    ],
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """The minimal one-node config (composed once) with the clean analysis."""
    cfg = mini(tmp_path_factory.mktemp("mini"))
    cfg["analysis"] = copy.deepcopy(SPEC)
    return cfg


def review(base: dict, **changes) -> AnalysisAudit:
    cfg = copy.deepcopy(base)
    for key, value in changes.items():
        if key == "node":
            node = {**cfg["federation"]["nodes"][0], **value}
            cfg["federation"]["nodes"][0] = {k: v for k, v in node.items() if v is not None}
        else:
            cfg["analysis"][key] = value
    return audit_analysis_config(cfg)


def queries(*extra: dict) -> list[dict]:
    """SPEC's first query at epsilon 0.5 plus ``extra`` (0.5 split among them)."""
    share = 0.5 / len(extra)
    return [SPEC["queries"][0], *({**q, "epsilon": share} for q in extra)]


def with_spent(tmp_path: Path, spent: float) -> str:
    """A real budget ledger of node 'shop' with ``spent`` epsilon of training already charged."""
    path = tmp_path / "shop.ledger.json"
    book = BudgetLedger(path, "shop", 10.0)
    book.reserve("earlier-training", spent, 1e-5)
    book.record("earlier-training", spent, 10)
    return str(path)


def test_the_clean_analysis_passes_and_shows_columns_parts_and_budget(base):
    report = review(base)
    assert report.errors == [] and report.exit_code == 0
    node = report.nodes[0]
    assert node.tiers == {
        "customer_id": "core_sensitive",
        "age": "general_sensitive",
        "province": "non_sensitive",
        "churned": "general_sensitive",
    }
    assert [(p.name, p.epsilon) for p in report.parts] == [
        ("query:age_by_province", 0.5),
        ("query:churn_rate", 0.5),
    ]
    # before anything runs: Laplace noise of scale k * bound / epsilon = 1 * 90 / 0.5 has its
    # 95% |error| at scale * ln(20) = 539.2 (one node: federated = per node); a mean's error
    # depends on the rows, so it is reported with the release
    errors = {p.name: p.expected_error for p in report.parts}
    assert errors["query:age_by_province"] == (
        f"± {180 * math.log(20):,.0f} per node, ± 539 federated (1 node(s))"
    )
    assert errors["query:churn_rate"].startswith("reported beside each number with the release")
    five = review(base, unit={"id_column": "customer_id", "max_rows_per_customer": 5})
    assert five.parts[0].expected_error.startswith(f"± {5 * 180 * math.log(20):,.0f} per node")
    declared = {c.name: c.declared for c in report.columns}
    assert declared["age"] == "[18, 90]" and declared["province"] == "2 categories: 北京, 上海"
    b = node.budget
    assert (b.epsilon, b.max_epsilon_per_run, b.lifetime_epsilon, b.lifetime_spent) == (
        1.0,
        3.0,
        10.0,
        0.0,
    )
    assert b.remaining_after == 9.0
    text = render(report, "md")
    assert "AT EACH NODE" in text and "| total per node | delta 0 |  | 1 |" in text
    assert "lifetime budget: epsilon 10; spent before this analysis 0" in text


@pytest.mark.parametrize(
    ("query", "control"),
    [
        (
            {"name": "by_phone", "stat": "count", "group_by": ["mobile"]},
            {"name": "by_phone", "stat": "count", "group_by": ["province"]},
        ),
        (
            {"name": "phone_sum", "stat": "sum", "column": "mobile"},
            {"name": "phone_sum", "stat": "sum", "column": "age"},
        ),
        (
            {"name": "filtered", "stat": "count", "where": {"mobile": ["a"]}},
            {"name": "filtered", "stat": "count", "where": {"province": ["北京"]}},
        ),
    ],
    ids=["group_by", "query", "filter"],
)
def test_core_sensitive_column_in_a_query_group_by_or_filter_is_refused(base, query, control):
    decl = {"min": 0, "max": 1} if "column" in query else {"categories": ["a", "b"]}
    columns = {**SPEC["columns"], "mobile": decl}
    report = review(base, columns=columns, queries=queries(query))
    assert report.errors == ["ANALYSIS-CS-COLUMN"]
    assert report.node_errors("shop") == ["ANALYSIS-CS-COLUMN"]
    assert "mobile" in report.nodes[0].findings[0].message
    # control: the same query on a non-sensitive or general column passes
    assert review(base, columns=columns, queries=queries(control)).errors == []


def test_a_used_column_without_bounds_or_categories_is_refused(base):
    columns = {k: v for k, v in SPEC["columns"].items() if k != "age"}
    report = review(base, columns=columns)
    assert report.errors == ["ANALYSIS-UNBOUNDED"]
    assert "'age'" in report.findings[0].message and report.findings[0].node == "(federation)"
    assert review(base).errors == []  # control: age declared


def test_a_column_the_policy_does_not_list_is_refused(base):
    columns = {**SPEC["columns"], "income": {"min": 0, "max": 1e6}}
    extra = {"name": "income_sum", "stat": "sum", "column": "income"}
    report = review(base, columns=columns, queries=queries(extra))
    assert report.errors == ["ANALYSIS-UNKNOWN-COLUMN"]
    assert report.nodes[0].tiers["income"] == "not in policy"


def test_an_invalid_spec_is_one_finding_with_the_spec_rule(base):
    columns = {**SPEC["columns"], "age": {"min": 90, "max": 18}}
    report = review(base, columns=columns)
    assert report.errors == ["ANALYSIS-SPEC"] and report.parts == []
    assert "age" in report.findings[0].message and "\n" not in report.findings[0].message


def test_epsilon_beyond_the_node_per_run_limit_is_refused(base):
    parts = [{**q, "epsilon": 2.0} for q in SPEC["queries"]]
    report = review(base, epsilon=4.0, queries=parts)
    assert report.errors == ["ANALYSIS-EPS-RUN"]
    # control: exactly at the policy's limit (3.0) passes
    parts = [{**q, "epsilon": 1.5} for q in SPEC["queries"]]
    assert review(base, epsilon=3.0, queries=parts).errors == []
    # the node's own cap is the stricter limit
    capped = review(base, node={"max_epsilon_per_run": 0.5})
    assert (
        capped.errors == ["ANALYSIS-EPS-RUN"] and capped.nodes[0].budget.max_epsilon_per_run == 0.5
    )


def test_epsilon_beyond_the_remaining_lifetime_budget_is_refused(base, tmp_path):
    over = review(base, node={"ledger": with_spent(tmp_path / "a", 9.5)})
    assert over.errors == ["ANALYSIS-LIFETIME"]
    assert over.nodes[0].budget.lifetime_spent == 9.5
    assert "remaining 0.5" in over.nodes[0].findings[0].message
    # control: 9.0 spent + 1.0 = exactly the lifetime budget
    fits = review(base, node={"ledger": with_spent(tmp_path / "b", 9.0)})
    assert fits.errors == [] and fits.nodes[0].budget.remaining_after == 0.0


def test_one_ledger_training_3_analysis_2_then_6_is_refused_and_5_fits(base, tmp_path):
    """The issue's budget scenario, as the review sees it: lifetime 10, training spent 3 and an
    analysis 2 in the same ledger; an analysis of 6 exceeds the remaining 5 (per-run limit
    raised to 10 so only the lifetime rule is in play), one of 5 fits exactly."""
    path = tmp_path / "shop.ledger.json"
    book = BudgetLedger(path, "shop", 10.0)
    book.reserve("training-run", 3.0, 1e-5)
    book.record("training-run", 3.0, 10)
    book.reserve("analysis-run", 2.0, 0.0, kind="analysis")
    cfg = copy.deepcopy(base)
    policy = {**POLICY, "dp": {**POLICY["dp"], "max_epsilon_per_run": 10.0}}
    Path(cfg["federation"]["nodes"][0]["policy"]).write_text(yaml.safe_dump(policy), "utf-8")
    try:
        for eps, errors in ((6.0, ["ANALYSIS-LIFETIME"]), (5.0, [])):
            cfg["analysis"] = {**SPEC, "epsilon": eps}
            cfg["analysis"]["queries"] = [{**q, "epsilon": eps / 2} for q in SPEC["queries"]]
            cfg["federation"]["nodes"][0]["ledger"] = str(path)
            report = audit_analysis_config(cfg)
            assert report.errors == errors
            node = report.nodes[0]
            assert node.spent_by_kind == {"training": 3.0, "analysis": 2.0}
            assert node.budget.remaining == 5.0
        text = render(report, "md")
        assert "spent before this analysis 5 (analysis 2, training 3: one ledger" in text
    finally:
        Path(cfg["federation"]["nodes"][0]["policy"]).write_text(yaml.safe_dump(POLICY), "utf-8")


def test_the_review_reads_the_ledger_and_never_writes_it(base, tmp_path):
    path = Path(with_spent(tmp_path, 2.0))
    listing = sorted(p.name for p in tmp_path.iterdir())
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    report = review(base, node={"ledger": str(path)})
    assert report.nodes[0].budget.lifetime_spent == 2.0
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_an_unreadable_ledger_is_ledger_integrity_not_a_budget_number(base, tmp_path):
    bad = tmp_path / "ledger.json"
    bad.write_text("{not json", encoding="utf-8")
    report = review(base, node={"ledger": str(bad)})
    assert report.errors == ["LEDGER-INTEGRITY"]


def test_config_findings_on_training_settings_do_not_concern_an_analysis(base):
    """Raising DP-SGD's epsilon widens a training job (OVERRIDE-WIDENS) but not an analysis,
    which never reads dp.*; a node's policy swapped by an override concerns both."""
    from confide.audit import audit_config

    new = copy.deepcopy(base)
    new["dp"]["epsilon"] = float(base["dp"]["epsilon"]) + 2
    training = audit_config(new, baseline=base)  # control: the training review flags it
    assert [f.field for f in training.all_findings if f.rule_id == "OVERRIDE-WIDENS"] == [
        "dp.epsilon"
    ]
    analysis = audit_analysis_config(new, baseline=base)
    assert [f for f in analysis.all_findings if f.rule_id == "OVERRIDE-WIDENS"] == []
    new["federation"]["nodes"][0]["policy"] = base["federation"]["nodes"][0]["policy"] + ".x"
    swapped = audit_analysis_config(new, baseline=base)
    assert "OVERRIDE-WIDENS" in {f.rule_id for f in swapped.all_findings}


def test_delta_above_the_node_limit_is_refused():
    budget = AnalysisBudget("n", 1.0, 1e-4, 3.0, 1e-5, 10.0, 0.0)
    assert [f.rule_id for f in analysis_budget_findings(budget)] == ["ANALYSIS-DELTA"]
    ok = AnalysisBudget("n", 1.0, 1e-5, 3.0, 1e-5, 10.0, 0.0)
    assert analysis_budget_findings(ok) == []


AGREEMENT = {
    "clean": ({}, {}),
    "cs-group-by": (
        {
            "columns": {**SPEC["columns"], "mobile": {"categories": ["a", "b"]}},
            "queries": queries({"name": "by_phone", "stat": "count", "group_by": ["mobile"]}),
        },
        {},
    ),
    "unknown-column": (
        {
            "columns": {**SPEC["columns"], "income": {"min": 0, "max": 1e6}},
            "queries": queries({"name": "income_sum", "stat": "sum", "column": "income"}),
        },
        {},
    ),
    "unbounded": ({"columns": {k: v for k, v in SPEC["columns"].items() if k != "age"}}, {}),
    "inverted": ({"columns": {**SPEC["columns"], "age": {"min": 90, "max": 18}}}, {}),
    "per-run": (
        {"epsilon": 4.0, "queries": [{**q, "epsilon": 2.0} for q in SPEC["queries"]]},
        {},
    ),
    "node-cap": ({}, {"max_epsilon_per_run": 0.5}),
    "lifetime": ({}, {"ledger": 9.5}),
    "unlisted-data-column": ({}, {"extra_column": True}),
    "no-key-file": ({}, {"keys": None}),
    "data-missing": ({}, {"data": "/nonexistent/shop.csv"}),
}


@pytest.mark.parametrize("case", list(AGREEMENT))
def test_the_node_refuses_exactly_when_the_review_shows_an_error(base, tmp_path, case):
    """The node handler's own preflight (clients.analysis_node.preflight_node, run before any
    step) and the review agree on every case, down to the rule id (or, for the data loader's
    schema refusal, the column)."""
    from confide.clients.analysis_node import AnalysisRefusal, preflight_node
    from confide.job import parse_node

    spec_changes, node_changes = AGREEMENT[case]
    if "ledger" in node_changes:
        node_changes = {"ledger": with_spent(tmp_path, node_changes["ledger"])}
    if node_changes.pop("extra_column", False):  # a data file with a column the policy lacks
        base = {**mini(tmp_path, extra_column=True), "analysis": copy.deepcopy(SPEC)}
    report = review(base, node=node_changes, **spec_changes)
    cfg = copy.deepcopy(base)
    cfg["federation"]["nodes"][0].update(node_changes)
    node = cfg["federation"]["nodes"][0]
    cfg["federation"]["nodes"][0] = {k: v for k, v in node.items() if v is not None}
    wire = {**copy.deepcopy(SPEC), **spec_changes}
    node = parse_node(cfg["federation"]["nodes"][0], 0)
    try:
        preflight_node(node, wire)
        refused = None
    except AnalysisRefusal as exc:
        refused = str(exc)
    assert (refused is None) == (report.errors == []), (case, refused, report.errors)
    if refused is not None:  # the rule id, or the column (loader refusals), or the data path
        first = next(f for f in report.all_findings if f.severity == "ERROR")
        named = first.rule_id in refused or f"'{first.field}'" in refused
        assert named or ("(rule: data path)" in refused and "(rule: data path)" in first.message)


def test_every_analysis_rule_is_registered_documented_and_has_a_firing_case():
    ids = {r.rule_id for r in rules_for("analysis")}
    tested = {
        "ANALYSIS-SPEC",
        "ANALYSIS-CS-COLUMN",
        "ANALYSIS-UNBOUNDED",
        "ANALYSIS-UNKNOWN-COLUMN",
        "ANALYSIS-EPS-RUN",
        "ANALYSIS-DELTA",
        "ANALYSIS-LIFETIME",
    }
    # fired by the node handler (a step out of order) and the coordinator (a malformed reply)
    assert tested <= ids and ids - tested == {"ANALYSIS-STEP", "ANALYSIS-RELEASE"}
    docs = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    assert all(f"`{rid}`" in docs and RULES[rid].rationale for rid in ids)


def test_shipped_analysis_passes_and_renders_in_every_format():
    report = audit(["analysis=customer_profile"])
    assert isinstance(report, AnalysisAudit)
    assert report.exit_code == 0, [str(f) for f in report.all_findings]
    assert report.epsilon == pytest.approx(sum(p.epsilon for p in report.parts), abs=1e-12)
    assert {n.name for n in report.nodes} == {"retailer", "ecommerce"}
    tiers = report.nodes[0].tiers
    assert tiers["mobile"] == "core_sensitive" and tiers["province"] == "non_sensitive"
    data = json.loads(render(report, "json"))
    assert data["exit_code"] == 0 and data["nodes"][0]["remaining_after"] == 7.0
    html = render(report, "html")
    assert 'id="parts"' in html and 'id="columns"' in html and "AT EACH NODE" in html


def test_cli_refuses_a_core_sensitive_group_by_with_its_rule_id(tmp_path):
    shipped = Path(__file__).resolve().parents[2] / "conf" / "analysis" / "customer_profile.yaml"
    raw = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    raw["name"] = "by_phone"
    raw["columns"]["mobile"] = {"categories": ["a", "b"]}
    raw["queries"][1]["group_by"] = ["mobile"]
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "by_phone.yaml").write_text(
        yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8"
    )
    args = ["audit", "--config-dir", str(tmp_path), "analysis=by_phone"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "`ANALYSIS-CS-COLUMN` | retailer | mobile" in result.output
    assert "REFUSES this analysis (ANALYSIS-CS-COLUMN)" in result.output
    # control: the shipped analysis this one is copied from passes (test above)


def test_policy_of_the_mini_config_is_the_shared_one():
    """The tiers these tests rely on (a guard against the shared fixture changing)."""
    tiers = {c: v["tier"] for c, v in POLICY["columns"].items()}
    assert tiers["mobile"] == "core_sensitive" and tiers["province"] == "non_sensitive"
