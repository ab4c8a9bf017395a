"""A vertical job through the Flower simulation engine (`confide simulate` for kind: vertical).

Default suite: a small user federation from real CSVs (``--config-dir DIR federation=vbank
task=vchurn``): the run completes, the top model is reported against its baselines, each
node's epsilon equals its plan's accountant value over the steps it took and is the spend in
its budget ledger, the run ledger holds the record, and the report has the vertical sections.
Both protocols (secure_linear, split_learning) run the small federation. Slow: the built-in
synthetic ``bank_ecommerce`` federation at full size with each protocol (the must-show)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from confide.config import compose_config, to_container
from confide.modeling.dp_accounting import epsilon_for_history
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.run_ledger import RunLedger
from confide.simulations.simulate import simulate
from tests.vertical_org import write_vertical_org

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))


def _node_epsilon_from_ledger(run_dir: Path, node: str, run_id: str) -> tuple[float, list]:
    snapshot = json.loads((run_dir / "ledgers" / f"{node}.json").read_text(encoding="utf-8"))
    (entry,) = [r for r in snapshot["runs"] if r["run_id"] == run_id]
    acct = entry["accountant"]
    history = list(
        zip(acct["history_sigma"], acct["history_q"], acct["history_steps"], strict=True)
    )
    return float(entry["spent_epsilon"]), history


@pytest.mark.parametrize("protocol", ["secure_linear", "split_learning"])
def test_small_vertical_federation_from_csvs_completes_with_baselines(tmp_path, protocol):
    conf = write_vertical_org(
        tmp_path / "org", bank_rows=900, shop_rows=800, overlap=600, protocol=protocol
    )
    config = to_container(
        compose_config(
            [
                "federation=vbank",
                "task=vchurn",
                "rounds=1",
                "train.local_epochs=2",
                f"run.root={tmp_path / 'runs'}",
            ],
            [conf],
        )
    )
    started = time.monotonic()
    result = simulate(config)
    elapsed = time.monotonic() - started
    assert result.status == "completed"
    metrics = result.metrics
    assert metrics["kind"] == "vertical"
    vertical = metrics["vertical"]
    psi = vertical["psi"]
    assert psi["label_set_size"] == 900 and psi["feature_elements"] == {"shop": 800}
    assert psi["intersection"] == 600  # full-width and spaced ids matched after NFKC + trim
    assert psi["train_rows"] + psi["test_rows"] == 600
    # the top model against the baselines on the same split
    baselines = metrics["baselines"]
    assert set(baselines) == {
        "local_only:bank",
        "centralised_no_dp",
        "vertical_no_dp",
        "label_node_alone",
        "vertical_in_process",
    }
    auc = metrics["global"]["roc_auc"]
    assert metrics["comparison"]["global_auc_minus_label_alone_auc"] == pytest.approx(
        auc - baselines["local_only:bank"]["pooled"]["roc_auc"]
    )
    assert metrics["global"]["n"] == psi["test_rows"]
    # each node's epsilon: its accountant over the steps it took, the ledger's spend, at target
    dp = config["dp"]
    for name in ("bank", "shop"):
        reported = vertical["nodes"][name]["dp"]["epsilon"]
        spent, history = _node_epsilon_from_ledger(result.run_dir, name, metrics["run_id"])
        assert spent == pytest.approx(reported, abs=1e-12)
        assert epsilon_for_history(history, dp["delta"], dp["accountant"]) == pytest.approx(
            reported, abs=1e-9
        )
        assert reported == pytest.approx(dp["epsilon"], abs=1e-3)
        assert BudgetLedger(tmp_path / "org" / name / "ledger.json", name, 10.0).spent() > 0
    assert vertical["protocol"] == protocol
    if protocol == "split_learning":  # label and embedding releases, each with its epsilon
        assert vertical["nodes"]["bank"]["dp"]["release_epsilon"] == pytest.approx(1.0, abs=1e-3)
        assert vertical["nodes"]["shop"]["dp"]["release_epsilon"] == pytest.approx(2.0, abs=1e-3)
    else:  # one release of statistics per node at its whole epsilon, no DP-SGD
        for name in ("bank", "shop"):
            node_dp = vertical["nodes"][name]["dp"]
            assert node_dp["release_epsilon"] == pytest.approx(dp["epsilon"], abs=1e-3)
            assert node_dp["steps"] == 0 and node_dp["sgd_sigma"] == 0.0
    report = (result.run_dir / "report.html").read_text(encoding="utf-8")
    for section in ("summary", "discrimination", "vertical", "privacy"):
        assert f'<section id="{section}">' in report
    assert "Disclosed by design" in report
    (record,) = RunLedger(tmp_path / "runs" / "run-ledger.jsonl").records()
    assert record["run_id"] == metrics["run_id"] and record["outcome"] == "completed"
    assert record["epsilon"] == pytest.approx(
        {n: vertical["nodes"][n]["dp"]["epsilon"] for n in ("bank", "shop")}
    )
    assert not (result.run_dir / "model.pt").exists()  # every model stays at its node
    print(f"small vertical simulation: {elapsed:.1f} s, ROC-AUC {auc:.4f}")
    _score_new_records(tmp_path, conf, result.run_dir)


def _score_new_records(tmp_path: Path, conf: Path, run_dir: Path) -> None:
    """`confide score` of the vertical run: the federation's nodes point at new records (the
    bank's first 200 customers, the shop's all); the label node writes pseudonymised keys and
    probabilities for the 150 customers both hold, and nothing else."""
    import pandas as pd
    import yaml
    from typer.testing import CliRunner

    from confide.cli import app

    fed = yaml.safe_load((conf / "federation" / "vbank.yaml").read_text(encoding="utf-8"))
    for node, rows in zip(fed["nodes"], (200, None), strict=True):
        frame = pd.read_csv(node["data"], dtype=str, keep_default_na=False)
        new = Path(node["data"]).with_name("new_records.csv")
        (frame if rows is None else frame.head(rows)).to_csv(new, index=False)
        node["data"] = str(new)
    fed["name"] = "vbank_new"
    (conf / "federation" / "vbank_new.yaml").write_text(yaml.safe_dump(fed), encoding="utf-8")
    out = tmp_path / "org" / "bank" / "scores.csv"
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--run",
            str(run_dir),
            "--config-dir",
            str(conf),
            "--out",
            str(out),
            "federation=vbank_new",
            "task=vchurn",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "scored 200 of the label node's 200 records" in result.output
    scores = pd.read_csv(out, dtype=str)
    assert list(scores.columns) == ["customer_id", "vchurn_probability"]
    assert len(scores) == 200
    probability = scores["vchurn_probability"].astype(float)
    assert ((probability > 0) & (probability < 1)).all()
    raw = set(pd.read_csv(fed["nodes"][0]["data"], dtype=str)["customer_id"])
    assert not raw & set(scores["customer_id"])  # pseudonymised keys, never the raw ids


def test_a_refusing_node_stops_the_run_with_its_reason_and_spends_nothing(tmp_path):
    """The shop's own per-run maximum is below the proposal: preflight refuses in one line
    before the engine starts; the same check at the node under the engine is the control in
    tests/clients/test_vertical_node.py."""
    conf = write_vertical_org(tmp_path / "org", bank_rows=300, shop_rows=250, overlap=200)
    fed = conf / "federation" / "vbank.yaml"
    fed.write_text(
        fed.read_text(encoding="utf-8").replace(
            "name: shop", "name: shop\n  max_epsilon_per_run: 1.0"
        ),
        encoding="utf-8",
    )
    config = to_container(
        compose_config(["federation=vbank", "task=vchurn", f"run.root={tmp_path / 'runs'}"], [conf])
    )
    from confide.core.errors import ConfideError

    with pytest.raises(ConfideError) as info:
        simulate(config)
    assert "node 'shop'" in str(info.value) and "DP-EPS-RUN" in str(info.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert not (tmp_path / "org" / "shop" / "ledger.json").exists()


@pytest.mark.parametrize(
    ("min_overlap", "shop_ids", "expected"),
    [
        (
            100,
            "disjoint",
            "federation 'vbank': the nodes' join keys 'customer_id' have no overlap "
            "(rule: VFL-NO-OVERLAP)",
        ),
        (
            201,
            "shared",
            "federation 'vbank': 200 aligned customers, below psi.min_overlap=201 "
            "(rule: VFL-MIN-OVERLAP)",
        ),
    ],
)
def test_no_or_too_small_overlap_fails_in_one_line_and_writes_nothing(
    tmp_path, min_overlap, shop_ids, expected
):
    import pandas as pd

    from confide.core.errors import ConfideError

    org = tmp_path / "org"
    conf = write_vertical_org(
        org, bank_rows=300, shop_rows=250, overlap=200, min_overlap=min_overlap
    )
    if shop_ids == "disjoint":
        shop = pd.read_csv(org / "shop" / "customers.csv", dtype=str)
        shop["customer_id"] = [f"S{i}" for i in range(len(shop))]
        shop.to_csv(org / "shop" / "customers.csv", index=False)
    config = to_container(
        compose_config(["federation=vbank", "task=vchurn", f"run.root={tmp_path / 'runs'}"], [conf])
    )
    with pytest.raises(ConfideError) as info:
        simulate(config)
    assert str(info.value) == expected
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert not any(org.rglob("ledger.json")) and not any(org.rglob("models"))


def _full_size(root: Path, federation: str):
    """One built-in synthetic federation at full size, epsilon 3 per node (one run)."""
    config = to_container(
        compose_config([f"federation={federation}", "task=joint_churn", f"run.root={root}"])
    )
    started = time.monotonic()
    result = simulate(config)
    metrics = result.metrics
    aucs = {k: round(v["pooled"]["roc_auc"], 4) for k, v in metrics["baselines"].items()}
    print(
        f"{federation}: {time.monotonic() - started:.0f} s, AUC "
        f"{metrics['global']['roc_auc']:.4f}, baselines {aucs}, PSI {metrics['vertical']['psi']}"
    )
    return result


@pytest.fixture(scope="module")
def bank_ecommerce(tmp_path_factory):
    """The shipped bank_ecommerce: the secure linear protocol."""
    return _full_size(tmp_path_factory.mktemp("bank_ecommerce"), "bank_ecommerce")


@pytest.fixture(scope="module")
def bank_ecommerce_split(tmp_path_factory):
    """The same federation trained by split learning (protocol split_learning)."""
    return _full_size(tmp_path_factory.mktemp("bank_ecommerce_split"), "bank_ecommerce_split")


def _common_must_show(result) -> dict:
    """PSI finds the 28,000 customers both hold (ids differ by full-width characters and
    spaces); each node spends exactly epsilon 3."""
    metrics = result.metrics
    assert result.status == "completed"
    assert metrics["vertical"]["psi"]["intersection"] == 28000
    for name in ("bank", "ecommerce"):
        assert metrics["vertical"]["nodes"][name]["dp"]["epsilon"] == pytest.approx(3.0, abs=1e-3)
    return metrics


@pytest.mark.slow
def test_bank_ecommerce_is_within_002_of_centralised_and_far_above_the_label_node_alone(
    bank_ecommerce,
):
    """Issue 14's utility must-show with the secure linear protocol at epsilon 3 per node
    (ground truth: Bayes ROC-AUC 0.861 with all features, 0.732 with the bank's alone, a gap of
    0.129). Seed 42 (reproducible): 0.8671 against 0.8699 centralised without DP (gap 0.003) and
    0.7331 for the bank alone (+0.134); docs/vertical.md has the other seeds."""
    metrics = _common_must_show(bank_ecommerce)
    assert metrics["vertical"]["protocol"] == "secure_linear"
    central = metrics["baselines"]["centralised_no_dp"]["pooled"]["roc_auc"]
    alone = metrics["baselines"]["local_only:bank"]["pooled"]["roc_auc"]
    auc = metrics["global"]["roc_auc"]
    assert central - auc <= 0.02
    assert auc - alone >= 0.10
    # the DP costs something, so the check can see it: the same protocol without DP is closer
    assert metrics["baselines"]["vertical_no_dp"]["pooled"]["roc_auc"] > auc


@pytest.mark.slow
def test_bank_ecommerce_by_split_learning_joins_clearly_above_the_label_node_alone(
    bank_ecommerce_split,
):
    """The split-learning protocol on the same data: clearly above the bank alone, but not
    within 0.02 of centralised (its per-row label release costs the gap; docs/vertical.md).

    Seed 42 gives 0.7783 against 0.7333 alone (+0.045, reproducible). Over job seeds 42, 1, 2,
    3, 4, 5 the gain on the engine was +0.045, +0.062, +0.117, +0.098, +0.061, +0.108: seed 42
    is the lowest of the six, so the bound is 0.04 — more than five standard errors of a test
    ROC-AUC on 5,600 rows (~0.007)."""
    metrics = _common_must_show(bank_ecommerce_split)
    assert metrics["vertical"]["protocol"] == "split_learning"
    alone = metrics["baselines"]["local_only:bank"]["pooled"]["roc_auc"]
    assert metrics["global"]["roc_auc"] - alone >= 0.04
