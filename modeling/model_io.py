"""Save and load a trained model together with the task spec it was encoded with."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from confide.modeling.errors import ModelFileError
from confide.modeling.factory import build_model
from confide.modeling.task_spec import TaskSpec, parse_task_spec

__all__ = ["load_model", "save_model"]

_FORMAT = "confide-model-v1"


def save_model(
    path: Path,
    model_or_state: nn.Module | dict[str, torch.Tensor],
    task_config: dict[str, Any],
    model_config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write weights, the task config and the model config atomically to ``path``."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    payload = {
        "format": _FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
        "task": task_config,
        "model": model_config,
        "extra": extra or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_model(path: Path) -> tuple[nn.Module, TaskSpec, dict[str, Any]]:
    """Rebuild the model from a file written by :func:`save_model`."""
    if not path.is_file():
        raise ModelFileError(f"{path}: model file does not exist (rule: run directory)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable Confide model file (rule: model)") from exc
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ModelFileError(f"{path}: not a Confide model file (rule: model format)")
    task = parse_task_spec(payload["task"], source=str(path))
    model = build_model(payload["model"]["net"], task.input_dim)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelFileError(
            f"{path}: weights do not match the model config (rule: model)"
        ) from exc
    model.eval()
    return model, task, payload
