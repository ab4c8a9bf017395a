"""The `secure` config group: composed, validated, and wrapping the strategy as documented."""

from __future__ import annotations

import pytest
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
)

from confide.config import compose_config, to_container
from confide.server.client_dp import UNIT_WEIGHT_KEY, UniformWeights
from confide.server.secagg import check_secagg_strategy
from confide.server.strategy import build_strategy
from confide.settings import SecureConfigError, parse_secure

GROUP = ["off", "secagg", "client_dp", "secagg_client_dp"]


@pytest.mark.parametrize("choice", GROUP)
def test_every_secure_choice_composes_and_builds(choice):
    cfg = to_container(compose_config([f"secure={choice}"]))
    strategy = build_strategy(cfg["strategy"], parse_secure(cfg))
    if choice == "client_dp":
        assert isinstance(strategy, DifferentialPrivacyClientSideFixedClipping)
        assert isinstance(strategy.strategy, UniformWeights)
        assert strategy.strategy.inner.weighted_by_key == UNIT_WEIGHT_KEY
        assert strategy.num_sampled_clients == 2
    else:  # with SecAgg+ the legacy wrapper adds the noise (server.secagg)
        assert isinstance(strategy, FedAvg) and strategy.weighted_by_key == "num-examples"


def test_default_is_off():
    assert to_container(compose_config([]))["secure"]["secagg"]["enabled"] is False


def test_server_side_clipping_option_and_refusals():
    cfg = to_container(compose_config(["secure=client_dp", "secure.client_dp.clipping=server"]))
    strategy = build_strategy(cfg["strategy"], parse_secure(cfg))
    assert isinstance(strategy, DifferentialPrivacyServerSideFixedClipping)
    bad = to_container(
        compose_config(["secure=secagg_client_dp", "secure.client_dp.clipping=server"])
    )
    with pytest.raises(SecureConfigError, match="never sees one node's update"):
        parse_secure(bad)
    with pytest.raises(SecureConfigError, match="fedavg or fedprox"):
        check_secagg_strategy(to_container(compose_config(["strategy=fedadam"]))["strategy"])
