"""Save and load a trained model together with the task spec it was encoded with.

A model file (``confide-model-v2``) is data only: the weights, the task config, the model's
registry name with its validated hyper-parameters (``{"name", "net"}``) and a few run facts. It
is read with ``torch.load(weights_only=True)`` and checked field by field before any weight is
used: the model must be a registered name (never a class path; no ``_target_`` anywhere in the
file), the weights must match that model's keys and shapes exactly and be finite.

Legacy ``confide-model-v1`` files (round 1) recorded ``net._target_`` as a dotted path. They are
still read when that path is, by exact string match, one of the two shipped classes
(:data:`LEGACY_TARGETS`); the string is only compared, never imported. Any other target is
refused with a request to retrain.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from confide.core.files import atomic_write_bytes, read_regular_file
from confide.modeling.errors import ModelFileError
from confide.modeling.factory import (
    ModelConfigError,
    ModelSpec,
    find_instantiation_key,
    model_spec_from_config,
    parse_model_spec,
)
from confide.modeling.task_spec import TaskSpec
from confide.modeling.tasks import parse_task

__all__ = ["FORMAT", "LEGACY_TARGETS", "MAX_MODEL_BYTES", "load_model", "save_model"]

FORMAT = "confide-model-v2"
_LEGACY_FORMAT = "confide-model-v1"
#: Round-1 class paths mapped to registry names by exact string match (never imported).
LEGACY_TARGETS = {
    "modeling.models.LogisticRegression": "logreg",
    "confide.modeling.models.LogisticRegression": "logreg",
    "modeling.models.MLP": "mlp",
    "confide.modeling.models.MLP": "mlp",
}
MAX_MODEL_BYTES = 256 * 1024 * 1024
_PAYLOAD_KEYS = {"format", "state_dict", "task", "model", "extra"}


def save_model(
    path: Path,
    model_or_state: nn.Module | Mapping[str, torch.Tensor],
    task_config: dict[str, Any],
    model: ModelSpec,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write weights, the task config and the model's registry name + hyper-parameters
    atomically to ``path``."""
    if not isinstance(model, ModelSpec):
        raise TypeError("save_model needs a ModelSpec (a registry name with validated params)")
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
        "task": task_config,
        "model": model.to_config(),
        "extra": extra or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _model_spec(path: Path, payload: Mapping[str, Any]) -> ModelSpec:
    raw = payload.get("model")
    if not isinstance(raw, Mapping):
        raise ModelFileError(f"{path}: field 'model' is missing or not a mapping (rule: model)")
    if "net" not in raw:
        raise ModelFileError(f"{path}: field 'model.net' is missing (rule: model)")
    where = f"{path}: field model"
    if payload["format"] == FORMAT:
        if any(k not in ("name", "net") for k in raw):
            raise ModelFileError(
                f"{path}: field 'model' has keys other than name and net (rule: model)"
            )
        try:
            return model_spec_from_config(raw, where)
        except ModelConfigError as exc:
            raise ModelFileError(str(exc)) from exc
    # Legacy v1: the class path is compared to the shipped ones as a string, never imported.
    net = raw["net"]
    if not isinstance(net, Mapping):
        raise ModelFileError(f"{path}: field 'model.net' is not a mapping (rule: model)")
    name = LEGACY_TARGETS.get(net.get("_target_")) if isinstance(net.get("_target_"), str) else None
    if name is None or raw.get("name") not in (None, name):
        raise ModelFileError(
            f"{path}: field 'model.net._target_' is not a registered model (legacy "
            "confide-model-v1 file); retrain to write a confide-model-v2 file "
            "(rule: model registry)"
        )
    params = {k: v for k, v in net.items() if k != "_target_"}
    try:
        return parse_model_spec(name, params, where)
    except ModelConfigError as exc:
        raise ModelFileError(str(exc)) from exc


def _check_weights(path: Path, model: nn.Module, state: Any) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ModelFileError(f"{path}: field 'state_dict' is not a mapping of names (rule: model)")
    expected = model.state_dict()
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))
        raise ModelFileError(
            f"{path}: field 'state_dict' does not hold exactly the model's weights "
            f"({len(missing)} missing{': ' + ', '.join(missing) if missing else ''}; "
            f"{len(set(state) - set(expected))} unexpected) (rule: weights match the model)"
        )
    for key, want in expected.items():
        got = state[key]
        if not isinstance(got, torch.Tensor) or not torch.is_floating_point(got):
            raise ModelFileError(
                f"{path}: field 'state_dict.{key}' is not a floating-point tensor (rule: weights)"
            )
        if tuple(got.shape) != tuple(want.shape):
            raise ModelFileError(
                f"{path}: field 'state_dict.{key}' has shape {tuple(got.shape)}, model needs "
                f"{tuple(want.shape)} (rule: weights match the model)"
            )
        if not bool(torch.isfinite(got).all()):
            raise ModelFileError(
                f"{path}: field 'state_dict.{key}' holds NaN or infinite weights "
                "(rule: finite weights)"
            )
    return {k: state[k] for k in expected}


def load_model(path: Path) -> tuple[nn.Module, TaskSpec, dict[str, Any]]:
    """Rebuild the model from a file written by :func:`save_model` (or a legacy v1 file).

    Returns (model in eval mode, task spec, the raw payload). Any file that is not exactly a
    Confide model of a registered kind raises :class:`ModelFileError` with one line.
    """
    path = Path(path)
    data = read_regular_file(path, "model file", max_bytes=MAX_MODEL_BYTES)
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(
            f"{path}: not a readable Confide model file ({type(exc).__name__}) (rule: model)"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, _LEGACY_FORMAT):
        raise ModelFileError(f"{path}: field 'format': not a Confide model file (rule: model)")
    unexpected = [k for k in payload if k not in _PAYLOAD_KEYS]
    if unexpected:
        raise ModelFileError(f"{path}: unexpected top-level fields (rule: model format)")
    allowed = frozenset({("model", "net", "_target_")}) if payload["format"] != FORMAT else None
    hidden_key = find_instantiation_key(payload, allowed or frozenset())
    if hidden_key is not None:
        raise ModelFileError(
            f"{path}: field '{hidden_key}': a model file names a registered model, never a "
            "class path (rule: model registry)"
        )
    spec = _model_spec(path, payload)
    if "task" not in payload:
        raise ModelFileError(f"{path}: field 'task' is missing (rule: model)")
    task = parse_task(payload["task"], source=str(path))
    model = spec.build(task.input_dim, out_dim=task.output_dim)
    model.load_state_dict(_check_weights(path, model, payload.get("state_dict")))
    model.eval()
    return model, task, payload
