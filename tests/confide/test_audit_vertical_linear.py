"""``confide audit`` of the secure linear vertical job (the default protocol): the steps that
cross each boundary with the run's own sigma and row bound, the non-colluding dealer among the
disclosures, the same review in every format; with DP off the review says so and VFL-DP-OFF
refuses."""

from __future__ import annotations

import copy
import json

import pytest

from confide.audit import audit, audit_config, render
from confide.audit.vertical import VerticalAudit
from confide.config import compose_config, to_container
from confide.modeling.vertical_dp import release_sigma_for
from confide.modeling.vertical_linear import row_bound

OVERRIDES = ["federation=bank_ecommerce", "task=joint_churn"]
STEPS = [
    "psi-blind",
    "psi-reblind",
    "dealer",
    "psi-match",
    "vertical-share",
    "vertical-solve",
    "vertical-score",
    "vertical-evaluate",
]
SIGMA = release_sigma_for(3.0, 1e-5, "rdp", False)
BOUND = row_bound(2.5, 2.0)
TRUST = (
    "trust: the coordinator deals the masks of the secure products; it must not collude with a node"
)


@pytest.fixture(scope="module")
def report() -> VerticalAudit:
    out = audit(OVERRIDES)
    assert isinstance(out, VerticalAudit)
    return out


@pytest.fixture(scope="module")
def config() -> dict:
    return to_container(compose_config(OVERRIDES))


def test_the_secure_linear_job_passes_with_no_error(report):
    assert [f.rule_id for f in report.all_findings if f.severity == "ERROR"] == []
    assert report.exit_code == 0
    assert not [f for f in report.all_findings if f.rule_id.startswith("VFL-")]


def test_the_crossings_are_the_secure_linear_steps(report):
    assert [c.step for c in report.crossings] == STEPS
    dealer = report.crossings[2]
    assert (dealer.sender, dealer.receiver) == ("the coordinator", "each node")
    assert "must not collude with a node" in dealer.protection
    for crossing in report.crossings[3:5]:
        assert "unreadable to the coordinator" in crossing.protection


def test_sigma_and_row_bound_are_the_runs_own(report):
    noise = f"sigma {SIGMA:.3g}, row bound B = {BOUND:.4g} (row clips 2.5 / 2)"
    share, solve = report.crossings[4], report.crossings[5]
    assert share.protection.endswith(
        f"feature DP: N(0, (sigma B)^2) on each entry, {noise}; one Gaussian release at "
        "epsilon 3, accounted in the node's budget ledger"
    )
    assert solve.protection.startswith("label DP: ") and noise in solve.protection
    assert report.dp["label_sigma"] == SIGMA and report.dp["embedding_sigma"] == SIGMA
    assert report.dp["moment_sigma"] is None and report.dp["row_bound"] == BOUND
    assert [(n.release_epsilon, n.release_sigma) for n in report.nodes] == [(3.0, SIGMA)] * 2
    assert report.dp["summary"].startswith("every node spends epsilon 3.0 per run")
    assert "DP-SGD model" not in report.dp["summary"]  # not the split-learning text
    # control: split learning's label release is calibrated differently
    assert release_sigma_for(0.8, 1e-5, "rdp", False, 1) != SIGMA


def test_the_disclosures_name_the_non_colluding_dealer(report):
    assert any(line.startswith(TRUST) for line in report.disclosures)
    assert "test (and scored) positions: revealed to the feature node that scores them" in (
        report.disclosures
    )


def test_markdown_html_and_json_show_the_same_review(report):
    md = render(report, "md")
    for crossing in report.crossings:
        row = f"| {crossing.step} | {crossing.sender} | {crossing.receiver} | {crossing.what} |"
        assert row in md, crossing.step
    assert f"- {report.disclosures[5]}" in md and "**PASS: 0 error(s)" in md
    assert f"- DP: {report.dp['summary']}" in md
    html = render(report, "html")
    for step in STEPS:
        assert f">{step}<" in html, step
    assert "must not collude with a node" in html and "<script" not in html
    data = json.loads(render(report, "json"))
    assert [c["step"] for c in data["crossings"]] == STEPS
    assert data["disclosures"] == report.disclosures
    assert data["dp"]["label_sigma"] == SIGMA and data["dp"]["row_bound"] == BOUND
    assert data["exit_code"] == 0


def test_dp_off_crosses_without_dp_and_is_refused(config):
    off = copy.deepcopy(config)
    off["dp"] = {**off["dp"], "enabled": False, "epsilon": None, "delta": None}
    report = audit_config(off)
    vfl = [(f.rule_id, f.node) for f in report.all_findings if f.rule_id.startswith("VFL-")]
    assert sorted(vfl) == [("VFL-DP-OFF", "bank"), ("VFL-DP-OFF", "ecommerce")]
    assert report.exit_code == 1
    assert [c.step for c in report.crossings] == STEPS
    share, solve = report.crossings[4], report.crossings[5]
    assert share.protection.endswith(
        "NONE: statistics WITHOUT differential privacy (dp.enabled=false)"
    )
    assert solve.protection == (
        "NONE: weights from statistics WITHOUT differential privacy (dp.enabled=false)"
    )
    assert report.dp["summary"] == "OFF: statistics and weights cross WITHOUT differential privacy"
    assert [n.release_sigma for n in report.nodes] == [None, None]
