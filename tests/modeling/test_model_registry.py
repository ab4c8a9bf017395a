"""Models come from a fixed registry by name, with validated hyper-parameters; never by path."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from torch import nn

from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.modeling.factory import (
    MODELS,
    ModelConfigError,
    ModelEntry,
    ModelRegistry,
    ModelRegistryError,
    build_model,
    find_instantiation_key,
    model_spec_from_config,
    parse_model_spec,
)
from confide.modeling.models import MLP, LogisticRegression

RULE = "(rule: model registry)"


def test_registry_holds_exactly_the_shipped_models():
    assert MODELS.names() == ("logreg", "mlp")
    assert MODELS.get("logreg").builder is LogisticRegression
    assert MODELS.get("mlp").builder is MLP


@pytest.mark.parametrize(
    "name", ["resnet", "confide.modeling.models.MLP", "builtins.print", "", None, 3, ["mlp"]]
)
def test_unknown_model_name_is_refused(name):
    with pytest.raises(ModelConfigError) as err:
        parse_model_spec(name, {}, "model")
    assert str(err.value) == (
        f"model.name: not a registered model (registered: logreg, mlp) {RULE}"
    )


HIDDEN_RULE = f"model.net.hidden: must be a list of 1 to 4 integer layer widths in 1..1024 {RULE}"
DROPOUT_RULE = f"model.net.dropout: must be a number in [0, 1) {RULE}"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden": []}, HIDDEN_RULE),
        ({"hidden": [0]}, HIDDEN_RULE),
        ({"hidden": [1025]}, HIDDEN_RULE),
        ({"hidden": [8, 8, 8, 8, 8]}, HIDDEN_RULE),
        ({"hidden": [True]}, HIDDEN_RULE),
        ({"hidden": [8.0]}, HIDDEN_RULE),
        ({"hidden": "32"}, HIDDEN_RULE),
        ({"hidden": 32}, HIDDEN_RULE),
        ({"hidden": {"a": 1}}, HIDDEN_RULE),
        ({"dropout": 1.0}, DROPOUT_RULE),
        ({"dropout": -0.1}, DROPOUT_RULE),
        ({"dropout": math.nan}, DROPOUT_RULE),
        ({"dropout": "0.1"}, DROPOUT_RULE),
        ({"dropout": False}, DROPOUT_RULE),
        (
            {"width": 3},
            f"model.net.width: not a hyper-parameter of model 'mlp' "
            f"(allowed: hidden, dropout) {RULE}",
        ),
        (
            {"_target_": "torch.nn.Linear"},
            f"model.net._target_: a model is named from the registry, never by a class path {RULE}",
        ),
        (
            {"hidden": [{"_target_": "builtins.print"}]},
            f"model.net.hidden[0]._target_: a model is named from the registry, never by a "
            f"class path {RULE}",
        ),
        (["hidden"], f"model.net: hyper-parameters of model 'mlp' must be a mapping {RULE}"),
    ],
)
def test_bad_mlp_hyper_parameters_are_refused(params, message):
    with pytest.raises(ModelConfigError) as err:
        parse_model_spec("mlp", params, "model")
    assert str(err.value) == message
    with pytest.raises(ModelConfigError):  # building directly applies the same rules
        build_model("mlp", params, 5)


def test_logreg_takes_no_hyper_parameters():
    with pytest.raises(ModelConfigError) as err:
        parse_model_spec("logreg", {"hidden": [8]}, "model")
    assert str(err.value) == (
        f"model.net.hidden: not a hyper-parameter of model 'logreg' (allowed: none) {RULE}"
    )
    assert parse_model_spec("logreg", None).params == {}
    assert parse_model_spec("logreg", {}).to_config() == {"name": "logreg", "net": {}}


def test_valid_hyper_parameters_are_normalised_with_defaults():
    spec = parse_model_spec("mlp", {"hidden": [1, 1024, 7, 3]})
    assert dict(spec.params) == {"hidden": (1, 1024, 7, 3), "dropout": 0.0}
    assert parse_model_spec("mlp", {}).to_config() == {
        "name": "mlp",
        "net": {"hidden": [32], "dropout": 0.0},
    }
    assert dict(parse_model_spec("mlp", {"dropout": 0}).params)["dropout"] == 0.0


def test_build_model_refuses_a_bad_input_dim():
    for dim in (0, -1, 2.5, "5"):
        with pytest.raises(ModelConfigError, match=r"input_dim must be a positive integer"):
            build_model("logreg", {}, dim)  # type: ignore[arg-type]


def test_duplicate_registration_is_refused_and_the_entry_is_kept():
    fake = ModelEntry("mlp", nn.Identity, lambda raw, where: {})
    with pytest.raises(ModelRegistryError) as err:
        MODELS.register(fake)
    assert str(err.value) == (
        "model registry: 'mlp' is already registered (rule: no silent overwrite)"
    )
    assert MODELS.get("mlp").builder is MLP
    assert isinstance(build_model("mlp", {}, 4), MLP)
    # control: a new name registers in a registry of its own
    own = ModelRegistry([fake])
    own.register(ModelEntry("other", nn.Identity, lambda raw, where: {}))
    assert own.names() == ("mlp", "other")
    with pytest.raises(ModelRegistryError):
        ModelRegistry([fake, fake])


def test_seeded_init_is_the_plain_torch_init_in_the_same_order():
    """Training results stay as before: the same seed gives the same weights as constructing
    the classes directly after ``torch.manual_seed``."""
    for seed in (0, 7):
        torch.manual_seed(seed)
        want = LogisticRegression(11).state_dict()
        got = build_model("logreg", {}, 11, seed=seed).state_dict()
        assert list(got) == list(want) == ["linear.weight", "linear.bias"]
        assert all(torch.equal(got[k], want[k]) for k in want)
        torch.manual_seed(seed)
        want = MLP(11, (16, 8), 0.0).state_dict()
        got = build_model("mlp", {"hidden": [16, 8]}, 11, seed=seed).state_dict()
        assert list(got) == list(want)
        assert all(torch.equal(got[k], want[k]) for k in want)
    a = build_model("mlp", {}, 11, seed=1).state_dict()["net.0.weight"]
    b = build_model("mlp", {}, 11, seed=2).state_dict()["net.0.weight"]
    assert not torch.equal(a, b)  # control: the seed does change the init


def test_shipped_model_configs_name_the_registry_and_carry_no_class_path():
    for option in ("logreg", "mlp"):
        cfg = to_container(compose_config([f"model={option}"]))
        assert find_instantiation_key(cfg["model"]) is None
        job = parse_job(cfg)
        assert job.model_name == option
        assert job.model_net == model_spec_from_config(cfg["model"])
        assert isinstance(job.model_net.build(job.task.input_dim), MODELS.get(option).builder)


def test_a_job_with_a_class_path_model_is_refused():
    cfg = to_container(compose_config(["model=mlp"]))
    cfg["model"]["net"]["_target_"] = "confide.modeling.models.MLP"
    with pytest.raises(ModelConfigError) as err:
        parse_job(cfg)
    assert str(err.value) == (
        f"model.net._target_: a model is named from the registry, never by a class path {RULE}"
    )
    cfg = to_container(compose_config(["+model.net.hidden=[16]"]))  # logreg takes none
    with pytest.raises(ModelConfigError, match=r"model.net.hidden: not a hyper-parameter"):
        parse_job(cfg)


def test_instantiation_keys_are_found_anywhere():
    tree = {"a": [{"b": 1}, {"c": {"_args_": []}}]}
    assert find_instantiation_key(tree) == "a[1].c._args_"
    assert find_instantiation_key({"x": {"_target_": "y"}}, frozenset({("x", "_target_")})) is None
    assert find_instantiation_key(yaml.safe_load("a: {b: [1, 2]}")) is None
