"""A model file is data: a registered name, validated hyper-parameters, matching finite weights.

Every hostile file is refused with one line naming the file, the field and the rule, and
nothing it names is imported or run."""

from __future__ import annotations

import math
import os

import pytest
import torch

from confide.config import compose_config, to_container
from confide.core.errors import ConfideError
from confide.modeling.errors import ModelFileError
from confide.modeling.factory import build_model, parse_model_spec
from confide.modeling.model_io import FORMAT, load_model, save_model
from confide.modeling.models import MLP, LogisticRegression
from confide.modeling.task_spec import parse_task_spec


@pytest.fixture(scope="module")
def task_config():
    return to_container(compose_config())["task"]


def width_of(task_config) -> int:
    return parse_task_spec(task_config).input_dim


def logreg_state(task_config, fill: float | None = None):
    state = build_model("logreg", {}, width_of(task_config), seed=3).state_dict()
    if fill is not None:
        state["linear.weight"][0, 0] = fill
    return state


def write(path, payload):
    torch.save(payload, path)
    return path


def attack_net(target_file):
    return {
        "_target_": "builtins.print",
        "_args_": ["x"],
        "file": {"_target_": "builtins.open", "_args_": [str(target_file), "a"]},
    }


def test_a_saved_model_loads_back_with_its_registry_name(tmp_path, task_config):
    spec = parse_model_spec("mlp", {"hidden": [8, 4]})
    width = width_of(task_config)
    model = spec.build(width, seed=5)
    save_model(tmp_path / "model.pt", model, task_config, spec, {"run_id": "r1"})
    loaded, task, payload = load_model(tmp_path / "model.pt")
    assert isinstance(loaded, MLP) and not loaded.training
    assert payload["format"] == FORMAT == "confide-model-v2"
    assert payload["model"] == {"name": "mlp", "net": {"hidden": [8, 4], "dropout": 0.0}}
    assert task.input_dim == width
    want = model.state_dict()
    assert all(torch.equal(loaded.state_dict()[k], want[k]) for k in want)
    with pytest.raises(TypeError):  # only a validated spec is ever written
        save_model(tmp_path / "x.pt", model, task_config, {"name": "mlp", "net": {}})  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["confide-model-v1", FORMAT])
def test_a_class_path_in_the_file_is_refused_and_never_run(tmp_path, task_config, fmt):
    victim = tmp_path / "written-by-the-model-file.txt"
    path = write(
        tmp_path / "model.pt",
        {
            "format": fmt,
            "state_dict": logreg_state(task_config),
            "task": task_config,
            "model": {"name": "logreg", "net": attack_net(victim)},
            "extra": {},
        },
    )
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    assert not victim.exists()
    message = str(err.value)
    assert "\n" not in message and str(victim) not in message
    if fmt == FORMAT:
        assert message == (
            f"{path}: field 'model.net._target_': a model file names a registered model, never "
            "a class path (rule: model registry)"
        )
    else:  # legacy: only net._target_ may be a (compared, never imported) string
        assert message == (
            f"{path}: field 'model.net._args_': a model file names a registered model, "
            "never a class path (rule: model registry)"
        )


def test_a_legacy_file_naming_another_class_is_refused(tmp_path, task_config):
    path = write(
        tmp_path / "model.pt",
        {
            "format": "confide-model-v1",
            "state_dict": logreg_state(task_config),
            "task": task_config,
            "model": {"name": "logreg", "net": {"_target_": "torch.nn.Linear"}},
            "extra": {},
        },
    )
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    assert str(err.value) == (
        f"{path}: field 'model.net._target_' is not a registered model (legacy confide-model-v1 "
        "file); retrain to write a confide-model-v2 file (rule: model registry)"
    )


@pytest.mark.parametrize(
    ("target", "net", "cls"),
    [
        ("modeling.models.LogisticRegression", {}, LogisticRegression),
        ("confide.modeling.models.LogisticRegression", {}, LogisticRegression),
        ("confide.modeling.models.MLP", {"hidden": [6]}, MLP),
        ("modeling.models.MLP", {"hidden": [6], "dropout": 0.0}, MLP),
    ],
)
def test_a_round_one_file_maps_to_the_registry_by_exact_name(
    tmp_path, task_config, target, net, cls
):
    width = width_of(task_config)
    name = "logreg" if cls is LogisticRegression else "mlp"
    state = build_model(name, net, width, seed=1).state_dict()
    path = write(
        tmp_path / "model.pt",
        {
            "format": "confide-model-v1",
            "state_dict": state,
            "task": task_config,
            "model": {"name": name, "learning_rate": 0.5, "net": {"_target_": target, **net}},
            "extra": {},
        },
    )
    model, _, _ = load_model(path)
    assert type(model) is cls
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in state)


def _payload(task_config, **changes):
    base = {
        "format": FORMAT,
        "state_dict": logreg_state(task_config),
        "task": task_config,
        "model": {"name": "logreg", "net": {}},
        "extra": {},
    }
    base.update(changes)
    return base


def test_a_file_without_net_is_refused(tmp_path, task_config):
    for fmt in ("confide-model-v1", FORMAT):
        path = write(tmp_path / "model.pt", _payload(task_config, format=fmt, model={"name": "x"}))
        with pytest.raises(ModelFileError) as err:
            load_model(path)
        assert str(err.value) == f"{path}: field 'model.net' is missing (rule: model)"


def test_an_unregistered_name_or_bad_hyper_parameter_in_a_file_is_refused(tmp_path, task_config):
    path = write(tmp_path / "m.pt", _payload(task_config, model={"name": "resnet", "net": {}}))
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    assert str(err.value) == (
        f"{path}: field model.name: not a registered model (registered: logreg, mlp) "
        "(rule: model registry)"
    )
    path = write(
        tmp_path / "m.pt", _payload(task_config, model={"name": "mlp", "net": {"hidden": [0]}})
    )
    with pytest.raises(ModelFileError, match=r"field model.net.hidden: must be a list"):
        load_model(path)


def test_mismatching_weights_are_refused(tmp_path, task_config):
    state = logreg_state(task_config)
    renamed = {"fc.weight": state["linear.weight"], "linear.bias": state["linear.bias"]}
    path = write(tmp_path / "m.pt", _payload(task_config, state_dict=renamed))
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    assert str(err.value) == (
        f"{path}: field 'state_dict' does not hold exactly the model's weights (1 missing: "
        "linear.weight; 1 unexpected) (rule: weights match the model)"
    )
    wide = dict(state, **{"linear.weight": torch.zeros(1, state["linear.weight"].shape[1] + 1)})
    path = write(tmp_path / "m.pt", _payload(task_config, state_dict=wide))
    width = state["linear.weight"].shape[1]
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    assert str(err.value) == (
        f"{path}: field 'state_dict.linear.weight' has shape (1, {width + 1}), model needs "
        f"(1, {width}) (rule: weights match the model)"
    )
    ints = dict(state, **{"linear.bias": torch.zeros(1, dtype=torch.int64)})
    path = write(tmp_path / "m.pt", _payload(task_config, state_dict=ints))
    with pytest.raises(ModelFileError, match=r"'state_dict.linear.bias' is not a floating-point"):
        load_model(path)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(tmp_path, task_config, bad):
    state = logreg_state(task_config, bad)
    path = write(tmp_path / "m.pt", _payload(task_config, state_dict=state))
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    assert str(err.value) == (
        f"{path}: field 'state_dict.linear.weight' holds NaN or infinite weights "
        "(rule: finite weights)"
    )


def test_unreadable_or_foreign_files_are_refused(tmp_path, task_config):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match=r"not a readable Confide model file"):
        load_model(junk)
    other = write(tmp_path / "other.pt", {"format": "something-else"})
    with pytest.raises(ModelFileError) as err:
        load_model(other)
    assert str(err.value) == f"{other}: field 'format': not a Confide model file (rule: model)"
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    with pytest.raises(ConfideError, match=r"is not a regular file"):  # no hang on a FIFO
        load_model(fifo)
    with pytest.raises(ConfideError, match=r"not found"):
        load_model(tmp_path / "missing.pt")
