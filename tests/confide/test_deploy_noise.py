"""`confide deploy` proposes secure DP noise by default and refuses a seeded deployment."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from confide import deploy as deploy_module
from confide.cli import app
from confide.config import compose_config, to_container
from confide.deploy import DeployError, DeployResult, deployment_job
from tests.byo_data import write_user_federation


@pytest.fixture
def conf(tmp_path):
    return write_user_federation(tmp_path / "org", {"shop_a": 50})


def test_a_deployment_with_seeded_noise_is_refused_and_secure_passes(conf):
    seeded = to_container(compose_config(["federation=mine"], [conf]))
    assert seeded["dp"]["noise"] == "seeded"  # the shipped default, for simulation
    with pytest.raises(DeployError) as err:
        deployment_job(seeded)
    assert str(err.value) == (
        "dp.noise=seeded: seeded DP noise is for simulation only; a deployment needs "
        "dp.noise=secure (rule: DP-NOISE-NOT-SECURE)"
    )
    # control: the same job with secure noise, and one without DP (no noise at all), pass
    secure = to_container(compose_config(["federation=mine", "dp.noise=secure"], [conf]))
    assert deployment_job(secure)["dp"]["noise"] == "secure"
    no_dp = to_container(compose_config(["federation=mine", "dp=off"], [conf]))
    assert deployment_job(no_dp)["dp"]["enabled"] is False


@pytest.mark.parametrize(
    ("extra", "expected"),
    [([], "secure"), (["dp.noise=seeded"], None)],
    ids=["default-secure", "explicit-seeded-refused"],
)
def test_confide_deploy_composes_secure_noise_first(conf, tmp_path, monkeypatch, extra, expected):
    sent = {}

    def fake_start(config, *args, **kwargs):
        deployment_job(config)  # the real check start_run makes first
        sent.update(config)
        return DeployResult("7", tmp_path / "runs" / "7")

    monkeypatch.setattr(deploy_module, "start_run", fake_start)
    args = ["deploy", "federation=mine", *extra, "--config-dir", str(conf), "--insecure"]
    result = CliRunner().invoke(app, [*args, "--no-wait"])
    if expected is None:
        assert isinstance(result.exception, DeployError) and result.exit_code != 0
        assert "rule: DP-NOISE-NOT-SECURE" in str(result.exception)
        assert sent == {}
    else:
        assert result.exit_code == 0, result.output
        assert sent["dp"]["noise"] == expected
