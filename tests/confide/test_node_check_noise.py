"""`confide node check` knows the node-local noise setting (``dp-noise``) and checks its value."""

from __future__ import annotations

import pytest

from confide import node_check
from confide.node_check import NodeConfigError, parse_node_config

BASE = 'name="shop_a" data-path="d.csv" policy-path="p.yaml"'


@pytest.mark.parametrize("kind", ["secure", "seeded"])
def test_dp_noise_is_a_known_node_config_key(kind):
    parsed = parse_node_config(f'{BASE} dp-noise="{kind}"')
    assert parsed["dp-noise"] == kind
    assert node_check._node_spec(parsed).name == "shop_a"


def test_an_unknown_noise_source_fails_without_echoing_it():
    parsed = parse_node_config(f'{BASE} dp-noise="Zq7rand"')
    with pytest.raises(NodeConfigError) as err:
        node_check._node_spec(parsed)
    assert str(err.value) == (
        "--node-config dp-noise: must be one of seeded, secure (rule: DP noise source)"
    )
    # control: without the key the node config is valid (secure noise, the deployment default)
    assert node_check._node_spec(parse_node_config(BASE)).name == "shop_a"
