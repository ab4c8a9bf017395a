"""`confide deploy`: the shared job carries no node-local path; TLS unless --insecure."""

from __future__ import annotations

import json
import tomllib

import pytest

from confide.config import compose_config, to_container
from confide.deploy import DeployError, deployment_job, flwr_env
from confide.job import parse_job
from tests.byo_data import write_user_federation


def test_deployment_job_validates_and_strips_node_local_paths(tmp_path):
    conf = write_user_federation(tmp_path / "org", {"shop_a": 50, "shop_b": 50})
    overrides = ["federation=mine", "secure=secagg", "dp.noise=secure"]
    config = to_container(compose_config(overrides, [conf]))
    job = deployment_job(config)
    text = json.dumps(job)
    assert str(tmp_path) not in text  # no data, policy, key or ledger path of any node
    parsed = parse_job(job)
    assert parsed.dp.epsilon == 3.0 and job["secure"]["secagg"]["enabled"] is True


def test_tls_is_the_default_and_insecure_is_explicit(tmp_path):
    with pytest.raises(DeployError, match="TLS is on by default"):
        flwr_env(tmp_path / "h", "127.0.0.1:9093", None, insecure=False)
    (tmp_path / "ca.crt").write_text("x")
    env = flwr_env(tmp_path / "h", "127.0.0.1:9093", tmp_path / "ca.crt", insecure=False)
    cfg = tomllib.loads((tmp_path / "h" / "config.toml").read_text())
    conn = cfg["superlink"]["confide"]
    assert conn["root-certificates"] == str((tmp_path / "ca.crt").resolve())
    assert "insecure" not in conn and env["FLWR_HOME"] == str(tmp_path / "h")
    flwr_env(tmp_path / "i", "127.0.0.1:9093", None, insecure=True)
    assert (
        tomllib.loads((tmp_path / "i" / "config.toml").read_text())["superlink"]["confide"][
            "insecure"
        ]
        is True
    )
