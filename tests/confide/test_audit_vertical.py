"""``confide audit`` of a vertical job: the join key's tier at every node, who holds which field,
what crosses each boundary with its sigma and epsilon, what is disclosed; each VFL rule refuses
(exit 1) and the shipped configuration has none."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from confide.audit import audit, audit_config, render
from confide.audit.vertical import VerticalAudit
from confide.cli import app
from confide.config import compose_config, to_container
from confide.modeling.vertical_dp import MOMENT_SIGMA_RATIO, release_sigma_for

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "simulations" / "policies"
OVERRIDES = ["federation=bank_ecommerce_split", "task=joint_churn"]
VFL_RULES = (
    "VFL-JOIN-KEY-TIER",
    "VFL-JOIN-KEY-MISSING",
    "VFL-FEATURE-TWICE",
    "VFL-FEATURE-UNHELD",
    "VFL-LABEL-AT-FEATURE-NODE",
    "VFL-LABEL-MISSING",
    "VFL-NODE-WITHOUT-FEATURES",
    "VFL-DP-OFF",
)


@pytest.fixture(scope="module")
def report() -> VerticalAudit:
    out = audit(OVERRIDES)
    assert isinstance(out, VerticalAudit)
    return out


@pytest.fixture(scope="module")
def config() -> dict:
    return to_container(compose_config(OVERRIDES))


def _ids(report, severity: str = "ERROR") -> list[str]:
    return sorted(f.rule_id for f in report.all_findings if f.severity == severity)


def test_the_shipped_vertical_job_passes_with_no_vfl_finding(report):
    assert _ids(report) == [] and report.exit_code == 0
    assert not [f for f in report.all_findings if f.rule_id.startswith("VFL-")]
    assert [report.node_errors(n.name) for n in report.nodes] == [[], []]


def test_the_review_shows_the_join_key_tier_and_who_holds_what(report):
    assert (report.join_key, report.label_node, report.label) == ("customer_id", "bank", "churned")
    assert [(n.name, n.role, n.join_key_tier) for n in report.nodes] == [
        ("bank", "label", "core_sensitive"),
        ("ecommerce", "feature", "core_sensitive"),
    ]
    holders = {f.name: f.holders for f in report.fields}
    assert holders["credit_utilisation"] == ("bank",)
    assert holders["wallet_pay_share"] == ("ecommerce",)
    assert holders["churned"] == ("bank",)
    assert all(len(h) == 1 for h in holders.values()) and len(holders) == 16
    assert report.nodes[1].features == (
        "purchases_12m",
        "spend_12m",
        "recency_days",
        "returns_12m",
        "app_sessions_30d",
        "wallet_pay_share",
        "category_pref",
    )


def test_sigmas_are_the_runs_own_calibration(report):
    label = release_sigma_for(0.8, 1e-5, "rdp", False, 1)
    embedding = release_sigma_for(1.0, 1e-5, "rdp", True)
    assert report.dp["label_sigma"] == label and report.dp["embedding_sigma"] == embedding
    assert report.dp["moment_sigma"] == MOMENT_SIGMA_RATIO * embedding
    bank, shop = report.nodes
    assert (bank.release_epsilon, bank.release_sigma) == (0.8, label)
    assert (shop.release_epsilon, shop.release_sigma) == (1.0, embedding)
    steps = [c.step for c in report.crossings]
    assert steps == ["psi-blind", "psi-reblind", "psi-match", "vertical-bottom", "vertical-top"]
    residual = report.crossings[2].protection
    assert f"sigma {label:.3g}, epsilon 0.8 for the label release" in residual
    assert f"sigma {embedding:.3g}" in report.crossings[3].protection
    assert "group elements" in report.crossings[0].protection


def test_markdown_html_and_json_show_the_same_review(report):
    md = render(report, "md")
    for text in (
        "## Join key tier at every node",
        "| bank | label | core_sensitive |",
        "| wallet_pay_share | feature | ecommerce | general_sensitive |",
        "| churned | label | bank | general_sensitive |",
        "## What crosses each boundary",
        "## What is disclosed",
        "set sizes: each node's number of ids is revealed",
        "test (and scored) positions: revealed to the feature node that embeds them",
        "**PASS: 0 error(s)",
    ):
        assert text in md, text
    html = render(report, "html")
    assert "What crosses each boundary" in html and "Join key tier at every node" in html
    assert "<script" not in html
    data = json.loads(render(report, "json"))
    assert data["exit_code"] == 0 and data["join_key"] == "customer_id"
    assert [n["join_key_tier"] for n in data["nodes"]] == ["core_sensitive", "core_sensitive"]


def test_padding_is_shown_as_hiding_the_set_sizes(config):
    padded = copy.deepcopy(config)
    padded["federation"]["psi"]["pad_to"] = 50_000
    report = audit_config(padded)
    assert report.disclosures[0].startswith("every blinded set is padded to 50000")
    assert "padded with random dummies to 50000 elements" in report.crossings[0].what
    assert "aligned training positions" not in report.crossings[2].what
    padded["federation"]["psi"]["reveal_to"] = "all"
    report = audit_config(padded)
    assert report.crossings[2].what.endswith("its aligned training positions (psi.reveal_to: all)")
    assert "every node learns which of its rows matched" in report.disclosures[2]


def _policy(name: str) -> dict:
    return yaml.safe_load((POLICIES / name).read_text(encoding="utf-8"))


def _with_policies(config: dict, tmp_path: Path, bank: dict, shop: dict) -> dict:
    out = copy.deepcopy(config)
    for index, (name, body) in enumerate((("bank", bank), ("ecommerce", shop))):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
        out["federation"]["nodes"][index]["policy"] = str(path)
    return out


def _twice(bank: dict, shop: dict) -> None:
    shop["columns"]["age"] = {"tier": "general_sensitive", "role": "feature"}


def _unheld(bank: dict, shop: dict) -> None:
    shop["columns"]["wallet_pay_share"]["role"] = "none"


def _label_at_feature_node(bank: dict, shop: dict) -> None:
    shop["columns"]["churned"] = {"tier": "general_sensitive", "role": "label"}


def _tier(bank: dict, shop: dict) -> None:
    bank["columns"]["customer_id"] = {"tier": "general_sensitive", "role": "id"}


def _key_missing(bank: dict, shop: dict) -> None:
    del shop["columns"]["customer_id"]


@pytest.mark.parametrize(
    ("change", "rule", "node"),
    [
        (_twice, "VFL-FEATURE-TWICE", "(federation)"),
        (_unheld, "VFL-FEATURE-UNHELD", "(federation)"),
        (_label_at_feature_node, "VFL-LABEL-AT-FEATURE-NODE", "ecommerce"),
        (_tier, "VFL-JOIN-KEY-TIER", "bank"),
        (_key_missing, "VFL-JOIN-KEY-MISSING", "ecommerce"),
    ],
)
def test_each_vertical_rule_refuses(config, tmp_path, change, rule, node):
    bank, shop = _policy("bank_customers.yaml"), _policy("ecommerce_customers.yaml")
    change(bank, shop)
    report = audit_config(_with_policies(config, tmp_path, bank, shop))
    vfl = [f for f in report.all_findings if f.rule_id.startswith("VFL-")]
    assert [(f.rule_id, f.node, f.severity) for f in vfl] == [(rule, node, "ERROR")]
    assert report.exit_code == 1
    assert f"`{rule}`" in render(report, "md")


def test_a_feature_held_twice_names_both_nodes(config, tmp_path):
    bank, shop = _policy("bank_customers.yaml"), _policy("ecommerce_customers.yaml")
    _twice(bank, shop)
    report = audit_config(_with_policies(config, tmp_path, bank, shop))
    (twice,) = [f for f in report.findings if f.rule_id == "VFL-FEATURE-TWICE"]
    assert "held (role feature) by nodes bank, ecommerce" in twice.message
    assert {f.name: f.holders for f in report.fields}["age"] == ("bank", "ecommerce")


def _research(policy: dict) -> dict:
    out = copy.deepcopy(policy)
    for column in out["columns"].values():
        if column["tier"] == "general_sensitive":
            column["tier"] = "non_sensitive"
    out["dp"] = {"max_epsilon_per_run": 10.0, "lifetime_epsilon": 100.0, "max_delta": 1e-5}
    out["dp"]["require_dp"] = False
    return out


def test_dp_off_is_refused_unless_every_policy_is_a_research_policy(config, tmp_path):
    off = copy.deepcopy(config)
    off["dp"] = {**off["dp"], "enabled": False, "epsilon": None, "delta": None}
    bank, shop = _policy("bank_customers.yaml"), _policy("ecommerce_customers.yaml")
    report = audit_config(_with_policies(off, tmp_path, bank, _research(shop)))
    vfl = [(f.rule_id, f.node) for f in report.all_findings if f.rule_id.startswith("VFL-")]
    assert vfl == [("VFL-DP-OFF", "bank")] and report.exit_code == 1
    # control: research policies at both nodes: DP off is allowed and the review says so
    report = audit_config(_with_policies(off, tmp_path, _research(bank), _research(shop)))
    assert _ids(report) == [] and report.exit_code == 0
    assert report.dp["summary"].startswith("OFF: embeddings and residuals cross WITHOUT")
    assert "WITHOUT differential privacy" in report.crossings[2].protection


def test_an_invalid_vertical_job_is_a_config_error_and_still_renders(config):
    bad = copy.deepcopy(config)
    bad["federation"]["label_node"] = "insurer"
    report = audit_config(bad)
    assert _ids(report) == ["CONFIG-INVALID"] and report.exit_code == 1
    (finding,) = report.findings
    assert "federation.label_node: must name one of the nodes (bank, ecommerce)" in finding.message
    for fmt in ("md", "html", "json"):
        assert render(report, fmt)


def test_the_cli_exits_1_naming_the_rule(tmp_path):
    (tmp_path / "federation").mkdir()
    shop = _policy("ecommerce_customers.yaml")
    _label_at_feature_node({}, shop)
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(shop), encoding="utf-8")
    fed = yaml.safe_load((ROOT / "conf" / "federation" / "bank_ecommerce.yaml").read_text())
    fed["name"] = "bank_shop"
    fed["nodes"][1]["policy"] = str(tmp_path / "shop.yaml")
    (tmp_path / "federation" / "bank_shop.yaml").write_text(yaml.safe_dump(fed))
    done = CliRunner().invoke(
        app, ["audit", "--config-dir", str(tmp_path), "federation=bank_shop", "task=joint_churn"]
    )
    assert done.exit_code == 1, done.output
    assert "VFL-LABEL-AT-FEATURE-NODE" in done.output and "**FAIL: 1 error(s)" in done.output
    ok = CliRunner().invoke(app, ["audit", *OVERRIDES])  # control: the shipped job passes
    assert ok.exit_code == 0 and "**PASS: 0 error(s)" in ok.output
