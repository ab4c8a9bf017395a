"""A vertical run's directory and report through the one finaliser (confide.rundir.
finalise_vertical), from a coordinator record as server/vertical_app.py builds it (no engine);
a secure linear record shows one statistics DP release per node, a split learning one (the
control) keeps its label DP / embedding DP columns."""

from __future__ import annotations

import html
import json

import numpy as np
import pytest

from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.modeling.metrics import binary_metrics, score_histograms
from confide.modeling.vertical_dp import release_sigma_for
from confide.privacy.run_ledger import RunLedger
from confide.reports import write_report
from confide.rundir import finalise_vertical
from confide.server.vertical_app import CROSSED, CROSSED_SECURE_LINEAR
from tests.vertical_org import write_vertical_org


def _record(completed: bool) -> dict:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=400) < 0.3).astype(float)
    top = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 400), 0.01, 0.99)
    alone = np.clip(0.3 + 0.1 * y + rng.normal(0, 0.2, 400), 0.01, 0.99)
    dp = {"epsilon": 3.0, "sgd_sigma": 1.1, "secure_noise": 0.0}
    record = {
        "kind": "vertical",
        "join_key": "customer_id",
        "label_node": "bank",
        "feature_nodes": ["shop"],
        "psi_settings": {"reveal_to": "label_node", "pad_to": None, "min_overlap": 100},
        "nodes": {
            "bank": {
                "role": "label",
                "crossed": CROSSED["label"],
                "features": ["tenure"],
                "dp": {**dp, "release_epsilon": 1.0, "release_sigma": 4.05},
            },
            "shop": {
                "role": "feature",
                "crossed": CROSSED["feature"],
                "features": ["spend"],
                "dp": {**dp, "release_epsilon": 2.0, "release_sigma": 2.2},
            },
        },
        "psi": {
            "label_set_size": 1200,
            "label_elements": 1200,
            "feature_elements": {"shop": 1000},
            "intersection": 800,
            "train_rows": 640,
            "test_rows": 160,
            "seconds": 0.5,
        },
    }
    if completed:
        pos, neg = score_histograms(y, top)
        apos, aneg = score_histograms(y, alone)
        record.update(
            {
                "global": binary_metrics(y, top),
                "label_alone": binary_metrics(y, alone),
                "curves": {
                    "global": {"pos": list(pos), "neg": list(neg)},
                    "label_alone": {"pos": list(apos), "neg": list(aneg)},
                },
            }
        )
    return record


@pytest.mark.parametrize("completed", [True, False])
def test_finalise_vertical_writes_metrics_report_and_one_ledger_record(tmp_path, completed):
    conf = write_vertical_org(tmp_path / "org", bank_rows=300, shop_rows=250, overlap=200)
    cfg = to_container(
        compose_config(["federation=vbank", "task=vchurn", f"run.root={tmp_path / 'runs'}"], [conf])
    )
    job = parse_job(cfg)
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(json.dumps(cfg), encoding="utf-8")
    status = {
        "status": "completed" if completed else "stopped",
        "reasons": {} if completed else {"shop": "node 'shop': no overlap (rule: VFL-NO-OVERLAP)"},
        "message": "",
    }
    baselines = {"centralised_no_dp": {"roc_auc": 0.9}} if completed else None
    metrics = finalise_vertical(
        run_dir,
        job=job,
        run_id="r1",
        outcome=status,
        record=_record(completed),
        baselines=baselines,
        epsilon={"bank": 3.0, "shop": 3.0},
        policy_sha256={},
        ledger_path=tmp_path / "runs" / "run-ledger.jsonl",
        write_report=write_report,
        ledgers={"bank": {"runs": []}, "shop": {"runs": []}},
    )
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert metrics["kind"] == "vertical" and metrics["nodes"]["shop"]["epsilon"] == 3.0
    assert '<section id="vertical">' in report and "intersection (aligned customers)" in report
    assert "vertical federation &#x27;vbank&#x27; · label node &#x27;bank&#x27;" in report
    (record,) = RunLedger(tmp_path / "runs" / "run-ledger.jsonl").records()
    assert record["run_id"] == "r1" and record["outcome"] == status["status"]
    if completed:
        gain = metrics["comparison"]["global_auc_minus_label_alone_auc"]
        assert gain == pytest.approx(
            metrics["global"]["roc_auc"]
            - metrics["baselines"]["local_only:bank"]["pooled"]["roc_auc"]
        )
        assert gain > 0
        curves = json.loads((run_dir / "curves.json").read_text(encoding="utf-8"))
        assert set(curves["pooled_test"]) == {"global", "local_only:bank"}
        for section in ("summary", "discrimination", "calibration", "ks", "gains", "privacy"):
            assert f'<section id="{section}">' in report
    else:
        assert "global" not in metrics and not (run_dir / "curves.json").exists()
        assert "VFL-NO-OVERLAP" in report and '<section id="discrimination">' not in report


SIGMA = release_sigma_for(3.0, 1e-5, "rdp", False)
LINEAR_HEADER = (
    '<th class="text">node</th><th class="text">role</th><th class="text">features</th>'
    '<th>ε total</th><th>statistics DP ε</th><th>release σ</th><th class="text">noise</th>'
)


def _linear_record(protocol: str) -> dict:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=400) < 0.3).astype(float)
    top = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 400), 0.01, 0.99)
    alone = np.clip(0.3 + 0.1 * y + rng.normal(0, 0.2, 400), 0.01, 0.99)
    linear = protocol == "secure_linear"
    crossed = CROSSED_SECURE_LINEAR if linear else CROSSED
    dp = {"epsilon": 3.0, "release_epsilon": 3.0, "release_sigma": SIGMA, "secure_noise": 0.0}
    pos, neg = score_histograms(y, top)
    apos, aneg = score_histograms(y, alone)
    return {
        "kind": "vertical",
        "protocol": protocol,
        "join_key": "customer_id",
        "label_node": "bank",
        "feature_nodes": ["shop"],
        "psi_settings": {"reveal_to": "label_node", "pad_to": None, "min_overlap": 100},
        "nodes": {
            "bank": {
                "role": "label",
                "crossed": crossed["label"],
                "features": ["tenure"],
                "dp": dp,
            },
            "shop": {
                "role": "feature",
                "crossed": crossed["feature"],
                "features": ["spend"],
                "dp": dp,
            },
        },
        "psi": {
            "label_set_size": 700,
            "label_elements": 700,
            "feature_elements": {"shop": 650},
            "intersection": 600,
            "train_rows": 480,
            "test_rows": 120,
            "seconds": 0.5,
        },
        "global": binary_metrics(y, top),
        "label_alone": binary_metrics(y, alone),
        "curves": {
            "global": {"pos": list(pos), "neg": list(neg)},
            "label_alone": {"pos": list(apos), "neg": list(aneg)},
        },
    }


def _report(tmp_path, protocol: str) -> tuple[dict, str]:
    conf = write_vertical_org(
        tmp_path / "org", bank_rows=300, shop_rows=250, overlap=200, protocol=protocol
    )
    cfg = to_container(
        compose_config(["federation=vbank", "task=vchurn", f"run.root={tmp_path / 'runs'}"], [conf])
    )
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(json.dumps(cfg), encoding="utf-8")
    metrics = finalise_vertical(
        run_dir,
        job=parse_job(cfg),
        run_id="r1",
        outcome={"status": "completed", "reasons": {}, "message": ""},
        record=_linear_record(protocol),
        baselines={"centralised_no_dp": {"roc_auc": 0.9}},
        epsilon={"bank": 3.0, "shop": 3.0},
        policy_sha256={},
        ledger_path=tmp_path / "runs" / "run-ledger.jsonl",
        write_report=write_report,
        ledgers={"bank": {"runs": []}, "shop": {"runs": []}},
    )
    return metrics, (run_dir / "report.html").read_text(encoding="utf-8")


def test_the_secure_linear_section_shows_statistics_dp_per_node(tmp_path):
    metrics, report = _report(tmp_path, "secure_linear")
    assert metrics["vertical"]["protocol"] == "secure_linear"
    assert LINEAR_HEADER in report
    for name, role, feature in (("bank", "label", "tenure"), ("shop", "feature", "spend")):
        # one statistics release per node at its whole epsilon
        row = (
            f'<tr><td class="text">{name}</td><td class="text">{role}</td><td class="text">'
            f'{feature}</td><td>3.000</td><td>3.000</td><td>{SIGMA:.3f}</td><td class="text">'
            "seeded</td></tr>"
        )
        assert row in report, name
    for line in CROSSED_SECURE_LINEAR["label"] + CROSSED_SECURE_LINEAR["feature"]:
        assert html.escape(line) in report, line
    assert "it must not collude with a node" in report
    assert "dealer-assisted secure products" in report and "split learning" not in report
    assert "DP-SGD σ" not in report and "label DP ε" not in report
    assert "with DP-SGD" not in report and "no DP-SGD" in report
    gain = metrics["comparison"]["global_auc_minus_label_alone_auc"]
    assert gain == pytest.approx(
        metrics["global"]["roc_auc"] - metrics["baselines"]["local_only:bank"]["pooled"]["roc_auc"]
    )
    assert f"+{gain:.3f}" in report and "gain over the label node (bank) alone" in report


def test_control_split_learning_keeps_label_and_embedding_dp_columns(tmp_path):
    metrics, report = _report(tmp_path, "split_learning")
    assert metrics["vertical"]["protocol"] == "split_learning"
    assert LINEAR_HEADER not in report and "statistics DP ε" not in report
    assert "<th>label DP ε</th><th>embedding DP ε</th>" in report and "DP-SGD σ" in report
    assert "trained one model by split learning" in report
    assert html.escape(CROSSED["feature"][1]) in report
    assert "must not collude" not in report
