"""End to end through Flower's simulation engine: the main job's must-show properties."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from confide.config import compose_config, to_container
from confide.modeling.dp_accounting import epsilon_for_history, steps_per_epoch
from confide.modeling.errors import ConfideError
from confide.privacy.errors import SchemaError
from confide.simulations.simulate import simulate
from tests.epsilon_checks import assert_run_epsilon

pytestmark = pytest.mark.e2e

SMALL = ["federation.nodes.0.rows=2400", "federation.nodes.1.rows=600", "rounds=2"]


def run(tmp_path: Path, overrides: list[str]):
    config = to_container(compose_config([f"run.root={tmp_path / 'runs'}", *overrides]))
    return simulate(config)


def read(run_dir: Path, name: str):
    return json.loads((run_dir / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default federation exactly as `confide simulate` runs it (DP at epsilon 3)."""
    return run(tmp_path_factory.mktemp("default"), [])


def test_default_run_writes_every_output(default_run):
    assert default_run.status == "completed"
    for name in (
        "config.yaml",
        "model.pt",
        "history.json",
        "metrics.json",
        "curves.json",
        "outcome.json",
        "logs/run.log",
        "ledgers/retailer.json",
        "ledgers/ecommerce.json",
    ):
        assert (default_run.run_dir / name).is_file(), name
    history = read(default_run.run_dir, "history.json")
    rounds = to_container(compose_config())["rounds"]  # the shipped default
    assert [r["round"] for r in history["rounds"]] == list(range(1, rounds + 1))
    assert set(history["rounds"][-1]["evaluate"]) == {"retailer", "ecommerce"}


def test_federated_dp_model_is_close_to_centralised_and_beats_small_nodes(default_run):
    metrics = default_run.metrics
    central = metrics["baselines"]["centralised"]["pooled"]["roc_auc"]
    glob = metrics["global"]["roc_auc"]
    assert glob >= central - 0.02
    total = sum(n["rows"] for n in metrics["nodes"].values())
    small = [name for name, n in metrics["nodes"].items() if n["rows"] < 0.2 * total]
    assert small == ["ecommerce"]
    for name in small:
        assert glob > metrics["baselines"][f"local_only:{name}"]["pooled"]["roc_auc"]


def test_reported_epsilon_is_the_accountants_for_all_steps_of_the_run(default_run):
    history = read(default_run.run_dir, "history.json")
    config = to_container(compose_config())
    batch = config["train"]["batch_size"]
    for node, info in default_run.metrics["nodes"].items():
        per_round = [r["train"][node] for r in history["rounds"]]
        steps = sum(int(r["steps"]) for r in per_round)
        sigma = per_round[-1]["noise_multiplier"]
        q = 1.0 / steps_per_epoch(info["train_rows"], batch)
        expected = epsilon_for_history([(sigma, q, steps)], 1e-5, "rdp")
        assert per_round[-1]["epsilon"] == pytest.approx(expected, rel=1e-9)
        one_round = epsilon_for_history([(sigma, q, int(per_round[0]["steps"]))], 1e-5, "rdp")
        assert per_round[-1]["epsilon"] > one_round
        assert_run_epsilon(
            per_round[-1]["epsilon"],
            target=3.0,
            delta=1e-5,
            train_rows=info["train_rows"],
            batch_size=batch,
            local_epochs=config["train"]["local_epochs"],
            rounds=config["rounds"],
            noise_multiplier=sigma,
            steps_taken=steps,
        )
        ledger = read(default_run.run_dir, f"ledgers/{node}.json")
        assert ledger["runs"][0]["spent_epsilon"] == pytest.approx(expected)


def test_ten_node_federation_completes(tmp_path):
    rows = [1800, 1080, 780, 600, 480, 420, 300, 240, 180, 120]
    overrides = ["federation=ten_nodes", "rounds=2", "baselines.enabled=false"]
    overrides += [f"federation.nodes.{i}.rows={n}" for i, n in enumerate(rows)]
    result = run(tmp_path, overrides)
    assert result.status == "completed"
    assert len(result.metrics["nodes"]) == 10
    history = read(result.run_dir, "history.json")["rounds"]
    last = history[-1]
    assert len(last["train"]) == 10 and not last["refused"]
    for name, info in result.metrics["nodes"].items():  # every node at the run's target
        assert_run_epsilon(
            info["epsilon"],
            target=3.0,
            delta=1e-5,
            train_rows=info["train_rows"],
            batch_size=256,
            local_epochs=2,
            rounds=2,
            noise_multiplier=last["train"][name]["noise_multiplier"],
            steps_taken=sum(int(r["train"][name]["steps"]) for r in history),
        )


def test_node_refusal_lets_others_continue_when_the_minimum_allows(tmp_path):
    strict = "+federation.nodes.1.max_epsilon_per_run=1.0"
    result = run(
        tmp_path / "continue",
        [
            *SMALL,
            strict,
            "strategy.algorithm.min_train_nodes=1",
            "strategy.algorithm.min_evaluate_nodes=1",
            "strategy.algorithm.min_available_nodes=1",
        ],
    )
    assert result.status == "completed"
    rounds = read(result.run_dir, "history.json")["rounds"]
    assert all(list(r["train"]) == ["retailer"] for r in rounds)
    assert all("DP-EPS-RUN" in r["refused"]["ecommerce"] for r in rounds)

    stopped = run(tmp_path / "stop", [*SMALL, strict])
    assert stopped.status == "stopped"
    outcome = read(stopped.run_dir, "outcome.json")
    assert "DP-EPS-RUN" in outcome["reasons"]["ecommerce"]
    assert not (stopped.run_dir / "model.pt").exists()


def test_dp_off_is_refused_by_the_shipped_policy_before_anything_is_written(tmp_path):
    with pytest.raises(ConfideError) as err:
        run(tmp_path, [*SMALL, "dp=off"])
    message = str(err.value)
    assert "retailer" in message and "GS-NO-DP" in message and "DP-REQUIRED" in message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_score_new_records_with_the_run_model(default_run, tmp_path):
    from confide.clients.scoring import score_file
    from confide.job import resolve_path
    from confide.simulations.node_profiles import get_profile
    from confide.simulations.synth import generate_customers, write_node_csv

    node_dir = default_run.run_dir / "nodes" / "ecommerce"
    fresh = write_node_csv(
        generate_customers(get_profile("ecommerce", 50), seed=99), tmp_path / "new.csv"
    )
    out = tmp_path / "scores.csv"
    policy = resolve_path("pkg://confide.simulations/policies/synthetic_customers.yaml", "test")
    count = score_file(default_run.run_dir, fresh, policy, out, keys=node_dir / "keys.json")
    scores = pd.read_csv(out)
    assert count == 50 and list(scores.columns) == ["customer_id", "churn_probability"]
    assert scores["churn_probability"].between(0, 1).all()
    raw_ids = set(pd.read_csv(fresh, dtype=str)["customer_id"])
    assert not raw_ids & set(scores["customer_id"].astype(str))  # pseudonyms, not raw ids
    broken = tmp_path / "broken.csv"
    pd.read_csv(fresh, dtype=str).drop(columns=["age"]).to_csv(broken, index=False)
    with pytest.raises(SchemaError, match="'age'"):
        score_file(default_run.run_dir, broken, policy, tmp_path / "x.csv", node_dir / "keys.json")
    assert not (tmp_path / "x.csv").exists()
