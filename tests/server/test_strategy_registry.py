"""Strategies by registry name: the same Flower objects as the former ``_target_`` configs,
validated keyword arguments, no class path in any config, no silent re-registration."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate

from confide import conf
from confide.config import compose_config, to_container
from confide.job import JobError, parse_job
from confide.modeling.factory import find_instantiation_key
from confide.server.aggregation import aggregate_eval_metrics, aggregate_train_metrics
from confide.server.strategy import STRATEGY_CLASSES, build_strategy
from confide.settings import SecureConfigError, parse_secure
from confide.strategy_spec import (
    COMMON_PARAMS,
    STRATEGIES,
    StrategyConfigError,
    StrategyEntry,
    StrategyRegistry,
    StrategyRegistryError,
)

RULE = "(rule: strategy registry)"
ROOT = Path(conf.__file__).parent.parent
NODES = {"min_train_nodes": 2, "min_evaluate_nodes": 2, "min_available_nodes": 2}
FRACTIONS = {"fraction_train": 1.0, "fraction_evaluate": 1.0}

#: The strategy configs as they were before the registry, each with its class path. Building
#: them with Hydra (here, in the test, on our own literal) is the reference the registry matches.
FORMER = {
    "fedavg": {"_target_": "flwr.serverapp.strategy.FedAvg", **FRACTIONS, **NODES},
    "fedprox": {
        "_target_": "flwr.serverapp.strategy.FedProx",
        **FRACTIONS,
        **NODES,
        "proximal_mu": 0.1,
    },
    "fedadam": {
        "_target_": "flwr.serverapp.strategy.FedAdam",
        **FRACTIONS,
        **NODES,
        "eta": 0.05,
        "eta_l": 0.5,
        "beta_1": 0.9,
        "beta_2": 0.99,
        "tau": 0.001,
    },
}


def strategy_section(name: str) -> dict:
    return to_container(compose_config([f"strategy={name}"]))["strategy"]


@pytest.mark.parametrize("name", sorted(FORMER))
def test_each_strategy_builds_the_same_flower_object_as_before(name):
    section = strategy_section(name)
    assert section["algorithm"] == {k: v for k, v in FORMER[name].items() if k != "_target_"}
    built = build_strategy(section)
    before = instantiate(
        FORMER[name],
        train_metrics_aggr_fn=aggregate_train_metrics,
        evaluate_metrics_aggr_fn=aggregate_eval_metrics,
    )
    assert type(built) is type(before)
    assert vars(built) == vars(before)


def test_control_a_changed_argument_gives_a_different_object():
    """The comparison above has power: one argument off and the attributes differ."""
    section = strategy_section("fedprox")
    section["algorithm"]["proximal_mu"] = 0.2
    before = instantiate(
        FORMER["fedprox"],
        train_metrics_aggr_fn=aggregate_train_metrics,
        evaluate_metrics_aggr_fn=aggregate_eval_metrics,
    )
    assert vars(build_strategy(section)) != vars(before)


def test_an_unknown_strategy_name_is_refused():
    section = strategy_section("fedavg")
    section["name"] = "flwr.serverapp.strategy.FedAvg"
    with pytest.raises(StrategyConfigError) as err:
        build_strategy(section)
    assert str(err.value) == (
        f"strategy.name: not a registered strategy (registered: fedadam, fedavg, fedprox) {RULE}"
    )


@pytest.mark.parametrize(
    ("name", "key", "value", "message"),
    [
        ("fedavg", "fraction_train", 0.0, "must be a finite number in (0, 1]"),
        ("fedavg", "fraction_evaluate", 1.5, "must be a finite number in (0, 1]"),
        ("fedavg", "fraction_train", "1.0", "must be a finite number in (0, 1]"),
        ("fedavg", "fraction_train", True, "must be a finite number in (0, 1]"),
        ("fedavg", "min_train_nodes", 0, "must be an integer >= 1"),
        ("fedavg", "min_available_nodes", 2.0, "must be an integer >= 1"),
        ("fedavg", "min_evaluate_nodes", True, "must be an integer >= 1"),
        ("fedprox", "proximal_mu", -0.1, "must be a finite number >= 0"),
        ("fedprox", "proximal_mu", float("inf"), "must be a finite number >= 0"),
        ("fedprox", "proximal_mu", float("nan"), "must be a finite number >= 0"),
        ("fedadam", "eta", float("inf"), "must be a finite number > 0"),
        ("fedadam", "eta_l", 0.0, "must be a finite number > 0"),
        ("fedadam", "beta_1", 1.0, "must be a finite number in [0, 1)"),
        ("fedadam", "beta_2", -0.5, "must be a finite number in [0, 1)"),
        ("fedadam", "tau", float("-inf"), "must be a finite number > 0"),
    ],
)
def test_a_bad_argument_is_refused(name, key, value, message):
    section = strategy_section(name)
    section["algorithm"][key] = value
    with pytest.raises(StrategyConfigError) as err:
        build_strategy(section)
    assert str(err.value) == f"strategy.algorithm.{key}: {message} {RULE}"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("fedavg", "proximal_mu"),  # FedProx's argument is not FedAvg's
        ("fedprox", "eta"),
        ("fedavg", "weighted_by_key"),  # set by Confide (client DP), never by a config
        ("fedadam", "train_metrics_aggr_fn"),
        ("fedavg", "arrayrecord_key"),
    ],
)
def test_an_argument_not_on_the_allow_list_is_refused(name, key):
    section = strategy_section(name)
    section["algorithm"][key] = 1.0
    allowed = ", ".join(STRATEGIES.get(name).params)
    with pytest.raises(StrategyConfigError) as err:
        build_strategy(section)
    assert str(err.value) == (
        f"strategy.algorithm.{key}: not an argument of strategy '{name}' (allowed: {allowed}) "
        f"{RULE}"
    )


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (("algorithm", "_target_"), "algorithm._target_"),
        (("_target_",), "_target_"),
        (("algorithm", "_partial_"), "algorithm._partial_"),
    ],
)
def test_a_class_path_in_the_strategy_is_refused_on_the_coordinator(where, field):
    section = strategy_section("fedavg")
    here = section
    for key in where[:-1]:
        here = here[key]
    here[where[-1]] = "flwr.serverapp.strategy.FedAvg"
    with pytest.raises(StrategyConfigError) as err:
        build_strategy(section)
    assert str(err.value) == (
        f"strategy.{field}: a strategy is named from the registry, never by a class path {RULE}"
    )


def test_control_the_shipped_configs_build():
    """The refusals above can fail: every shipped option and scenario builds."""
    for name in sorted(FORMER):
        assert build_strategy(strategy_section(name)).min_train_nodes == 2
    sampled = to_container(compose_config(["scenario=sampled"]))["strategy"]
    assert build_strategy(sampled).fraction_train == 0.5


def test_a_registration_never_replaces_another():
    registry = StrategyRegistry()
    first = registry.register(StrategyEntry("mine", COMMON_PARAMS, secagg=True))
    with pytest.raises(StrategyRegistryError) as err:
        registry.register(StrategyEntry("mine", {}, secagg=False))
    assert str(err.value) == (
        f"strategy 'mine' is already registered; a registration never replaces another {RULE}"
    )
    assert registry.get("mine") is first
    with pytest.raises(StrategyRegistryError):
        STRATEGIES.register(StrategyEntry("fedavg", {}, secagg=True))
    assert STRATEGIES.get("fedavg").params is COMMON_PARAMS
    registry.register(StrategyEntry("other", COMMON_PARAMS, secagg=True))  # control
    assert list(registry) == ["mine", "other"]


def _yaml_files() -> list[Path]:
    files = [*(ROOT / "conf").rglob("*.yaml"), *(ROOT / "examples").rglob("*.yaml")]
    return sorted(files)


def test_no_shipped_config_carries_an_instantiation_key():
    files = _yaml_files()
    assert len([f for f in files if f.parent.name == "strategy"]) == 3
    found = {}
    for path in files:
        hidden = find_instantiation_key(yaml.safe_load(path.read_text(encoding="utf-8")))
        if hidden is not None:
            found[str(path.relative_to(ROOT))] = hidden
    assert found == {}
    control = copy.deepcopy(FORMER["fedavg"])  # the former shape is caught
    assert find_instantiation_key({"strategy": {"algorithm": control}}) == (
        "strategy.algorithm._target_"
    )


def test_secagg_refuses_a_strategy_that_needs_more_than_the_mean_at_build_time():
    cfg = to_container(compose_config(["secure=secagg", "strategy=fedadam"]))
    with pytest.raises(SecureConfigError) as err:
        build_strategy(cfg["strategy"], parse_secure(cfg))
    assert str(err.value) == (
        "secure.secagg works with strategy fedavg or fedprox, not 'fedadam': SecAgg+ reveals "
        "only the weighted mean of the nodes' weights (rule: secure aggregation)"
    )
    for name in ("fedavg", "fedprox"):  # control: the mean-only strategies build with SecAgg+
        ok = to_container(compose_config(["secure=secagg", f"strategy={name}"]))
        assert type(build_strategy(ok["strategy"], parse_secure(ok))).__name__.lower() == name


def test_every_registered_name_has_its_flower_class():
    assert list(STRATEGIES) == ["fedadam", "fedavg", "fedprox"]
    assert set(STRATEGY_CLASSES) == set(STRATEGIES)
    assert [STRATEGY_CLASSES[n].__name__ for n in STRATEGIES] == ["FedAdam", "FedAvg", "FedProx"]


def test_the_job_parser_checks_the_strategy_before_anything_starts():
    """preflight (parse_job) refuses a bad strategy with the registry's sentence as a JobError,
    so no engine starts and nothing is written (this module is Flower-free)."""
    cfg = to_container(compose_config(["strategy=fedprox"]))
    parse_job(cfg)  # control: the shipped config parses
    cfg["strategy"]["algorithm"]["proximal_mu"] = float("inf")
    with pytest.raises(JobError) as err:
        parse_job(cfg)
    assert str(err.value) == f"strategy.algorithm.proximal_mu: must be a finite number >= 0 {RULE}"
    cfg = to_container(compose_config([]))
    cfg["strategy"]["name"] = "fedyogi"
    with pytest.raises(JobError) as err:
        parse_job(cfg)
    assert str(err.value) == (
        f"strategy.name: not a registered strategy (registered: fedadam, fedavg, fedprox) {RULE}"
    )
