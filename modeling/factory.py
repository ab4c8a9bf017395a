"""Build a model from its Hydra config (``_target_`` instantiation) with a seeded init."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn

from confide.modeling.errors import ConfideError

__all__ = ["build_model"]


def build_model(net_cfg: Mapping[str, Any], input_dim: int, seed: int = 0) -> nn.Module:
    """Instantiate ``net_cfg`` (a mapping with ``_target_``) for ``input_dim`` inputs."""
    if "_target_" not in net_cfg:
        raise ConfideError("model.net needs a _target_ (rule: model config)")
    cfg = dict(net_cfg)
    if "hidden" in cfg:
        cfg["hidden"] = tuple(int(h) for h in cfg["hidden"])
    torch.manual_seed(seed)
    try:
        model = instantiate(cfg, input_dim=input_dim)
    except InstantiationException as exc:
        raise ConfideError(
            f"model.net: cannot build {cfg['_target_']} (rule: model config)"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ConfideError(f"model.net: {cfg['_target_']} is not a torch module (rule: model)")
    return model
