"""Scenarios: every option composes into a valid job, a partitioned federation is materialised
into per-node CSVs that pass the node pipeline, a user's single CSV can be split, and simulated
dropout is deterministic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from confide import conf
from confide.config import compose_config, to_container
from confide.job import JobError, parse_job, resolve_path
from confide.modeling.dp_accounting import DPSettings
from confide.modeling.local_training import TrainSettings
from confide.simulations.dropout import DropoutRuntime, dropout_rate, drops_out
from confide.simulations.federation import PARTITION_FILE, materialize_synthetic_nodes
from confide.simulations.node_profiles import get_profile
from confide.simulations.privacy_audit import load_nodes
from confide.simulations.synth import generate_customers, write_node_csv
from confide.wire import Proposal

CONF_DIR = Path(conf.__file__).parent
SCENARIOS = sorted(p.stem for p in (CONF_DIR / "scenario").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
SHIPPED_POLICY = "pkg://confide.simulations/policies/synthetic_customers.yaml"


def _job(overrides):
    return parse_job(to_container(compose_config(overrides)))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_materialises_nodes_that_pass_the_node_pipeline(scenario, tmp_path):
    job = _job(
        [f"scenario={scenario}", "federation.source.rows=2000", "federation.partition.min_rows=50"]
    )
    spec = job.config["federation"]["partition"]
    assert [n.part for n in job.nodes] == list(range(spec["num_nodes"]))
    assert all(n.data is None for n in job.nodes)
    ready = materialize_synthetic_nodes(job, tmp_path / "nodes")
    summary = json.loads((tmp_path / "nodes" / PARTITION_FILE).read_text())
    assert sum(n["rows"] for n in summary["nodes"].values()) == 2000
    nodes = load_nodes(ready)
    assert [n.name for n in nodes] == [n.name for n in job.nodes]
    assert sum(n.n_rows for n in nodes) == 2000
    assert all(spec.keys is not None and spec.keys.exists() for spec in ready.nodes)


def test_scenarios_set_participation_knobs():
    sampled = _job(["scenario=sampled"]).config
    assert sampled["strategy"]["algorithm"]["fraction_train"] == 0.5
    assert sampled["federation"]["name"] == "sampled"
    assert sampled["federation"]["partition"]["scheme"] == "iid"
    assert sampled["federation"]["partition"]["num_nodes"] == 10
    assert sampled["strategy"]["algorithm"]["min_train_nodes"] == 2
    dropped = _job(["scenario=dropout", "strategy=fedprox"]).config
    assert dropout_rate(dropped) == 0.2 and dropped["strategy"]["name"] == "fedprox"
    assert dropped["strategy"]["algorithm"]["min_train_nodes"] == 1


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_each_experiment_composes_and_validates(experiment):
    job = _job([f"experiment={experiment}"])
    assert job.nodes and job.task.input_dim > 0


def test_explicit_nodes_and_a_source_are_exclusive_and_validated():
    assert _job([]).nodes[0].part is None  # the explicit-nodes path is unchanged
    cfg = to_container(compose_config(["scenario=iid"]))
    cfg["federation"]["source"]["data"] = "customers.csv"
    with pytest.raises(JobError, match="exactly one of 'data'"):
        parse_job(cfg)
    cfg = to_container(compose_config(["scenario=iid"]))
    cfg["federation"]["source"] = {"data": "customers.csv"}
    with pytest.raises(JobError, match="'policy' is required"):
        parse_job(cfg)
    cfg = to_container(compose_config(["scenario=iid"]))
    cfg["federation"]["partition"]["scheme"] = "stripes"
    with pytest.raises(JobError, match="scheme must be one of"):
        parse_job(cfg)


def test_a_users_single_csv_is_split_by_a_column(tmp_path):
    from confide.privacy.keys import new_keyring_file

    org = tmp_path / "org"
    data = write_node_csv(
        generate_customers(get_profile("ecommerce", 2400), 7), org / "customers.csv"
    )
    policy = org / "policy.yaml"
    shutil.copy(resolve_path(SHIPPED_POLICY, "test"), policy)
    keys = org / "keys.json"
    new_keyring_file(keys)
    cfg = to_container(compose_config(["scenario=by_channel"]))
    cfg["federation"]["source"] = {"data": str(data), "policy": str(policy), "keys": str(keys)}
    cfg["federation"]["partition"]["min_rows"] = 20
    ready = materialize_synthetic_nodes(parse_job(cfg), tmp_path / "run" / "nodes")
    summary = json.loads((tmp_path / "run" / "nodes" / PARTITION_FILE).read_text())
    assert summary["source"] == str(data)
    channels = [set(n["values"]) for n in summary["nodes"].values()]
    assert set().union(*channels) == {"store", "app", "mini_program", "web"}
    assert all(len(c) == 1 for c in channels)
    assert all(spec.keys == keys for spec in ready.nodes)  # the user's key file, shared
    assert sum(n.n_rows for n in load_nodes(ready)) == 2400


def test_a_source_csv_breaking_its_policy_is_refused(tmp_path):
    org = tmp_path / "org"
    node = generate_customers(get_profile("ecommerce", 300), 7)
    frame = node.frame.assign(loyalty_segment="x")
    org.mkdir()
    frame.to_csv(org / "customers.csv", index=False)
    cfg = to_container(compose_config(["scenario=iid"]))
    cfg["federation"]["source"] = {
        "data": str(org / "customers.csv"),
        "policy": SHIPPED_POLICY,
    }
    from confide.privacy.errors import PrivacyError

    with pytest.raises(PrivacyError, match="loyalty_segment"):
        materialize_synthetic_nodes(parse_job(cfg), tmp_path / "nodes")


def test_dropout_is_deterministic_and_close_to_its_rate(churn_task):
    draws = [drops_out(42, f"node_{n}", r, 0.2) for n in range(20) for r in range(1, 51)]
    assert draws == [drops_out(42, f"node_{n}", r, 0.2) for n in range(20) for r in range(1, 51)]
    assert 0.15 < np.mean(draws) < 0.25
    assert not any(drops_out(42, "node_0", r, 0.0) for r in range(1, 100))
    with pytest.raises(Exception, match="dropout_rate must be in"):
        dropout_rate({"simulation": {"dropout_rate": 1.0}})

    job = _job(["scenario=dropout"])
    runtime = DropoutRuntime(job.nodes[0], churn_task, job.model_net, 0.2, rate=0.99)
    proposal = Proposal("r", 1, 3, 42, DPSettings(), TrainSettings())
    with pytest.raises(Exception, match="simulated dropout in round 1"):
        runtime.train({}, proposal, None)
    with pytest.raises(Exception, match="simulated dropout"):
        runtime.evaluate({}, proposal)


def test_splitting_by_a_core_sensitive_column_is_refused(tmp_path):
    from confide.modeling.errors import DataError

    cfg = to_container(
        compose_config(["scenario=by_region", "federation.partition.column=national_id"])
    )
    with pytest.raises(DataError, match="'national_id' is core-sensitive"):
        materialize_synthetic_nodes(parse_job(cfg), tmp_path / "nodes")
    assert not (tmp_path / "nodes" / PARTITION_FILE).exists()
