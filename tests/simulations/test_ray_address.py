"""``simulation.ray_address``: a simulation joins a running Ray cluster through Flower's
backend config (``init_args.address``); null keeps a private Ray on this machine's cores."""

from __future__ import annotations

import pytest

from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.simulations import simulate as sim

ADDRESS = "127.0.0.1:6379"


def _backend(*overrides: str) -> dict:
    job = parse_job(to_container(compose_config(list(overrides), [])))
    return sim.engine_backend_config(job, verbose=False)[1]


@pytest.fixture(scope="module")
def joined() -> dict:
    return _backend(f"simulation.ray_address='{ADDRESS}'")


@pytest.fixture(scope="module")
def default() -> dict:
    return _backend()


def test_default_starts_a_private_ray_with_this_machines_cpus(default):
    assert "address" not in default["init_args"]
    assert default["init_args"]["num_cpus"] >= 1


def test_address_reaches_the_backend_config_without_local_cpu_counts(joined):
    assert joined["init_args"]["address"] == ADDRESS
    # Ray refuses num_cpus when it connects to an existing cluster
    assert "num_cpus" not in joined["init_args"]
    assert joined["client_resources"] == {"num_cpus": 1.0, "num_gpus": 0.0}


def test_flowers_ray_backend_passes_the_address_to_ray_init(monkeypatch, joined, default):
    from flwr.server.superlink.fleet.vce.backend import raybackend

    calls: list[dict] = []
    monkeypatch.setattr(raybackend.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(raybackend.ray, "init", lambda **kwargs: calls.append(kwargs))
    raybackend.RayBackend(joined)
    raybackend.RayBackend(default)  # control: no address, Ray starts locally
    assert calls[0]["address"] == ADDRESS
    assert "address" not in calls[1]


def test_confides_engine_start_joins_the_same_address(monkeypatch, joined):
    import ray

    calls: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    sim.start_engine(joined)
    assert calls[0]["address"] == ADDRESS
    assert "num_cpus" not in calls[0]


@pytest.mark.parametrize(
    "value", [42, "", "127.0.0.1", "head node:6379", "127.0.0.1:6379; rm -rf /", True]
)
def test_a_malformed_address_is_one_line_naming_the_field(value):
    with pytest.raises(sim.SimulationEngineError) as info:
        sim.ray_address({"ray_address": value})
    message = str(info.value)
    assert "\n" not in message
    assert "simulation.ray_address" in message
    assert "rm -rf" not in message  # the raw value is never echoed


@pytest.mark.parametrize("value", [ADDRESS, "auto", "ray://10.0.0.5:10001", "head-1.lan:6380"])
def test_well_formed_addresses_pass(value):
    assert sim.ray_address({"ray_address": value}) == value
