"""A model's weights saved as a plain state dict of one-dimensional tensors (data only), and
read back with strict checks: exactly the expected keys, floating-point tensors, finite vectors.
Shared by the vertical models (the top model and the secure linear model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from confide.modeling.errors import ModelFileError

__all__ = ["read_vectors"]


def read_vectors(
    state: Any, keys: Sequence[str], where: str, rule: str, *, float64: bool = False
) -> dict[str, np.ndarray]:
    """``state[key]`` as a float64 NumPy vector for every key in ``keys``; a
    :class:`ModelFileError` naming ``where``, the field and ``rule`` unless ``state`` holds
    exactly ``keys``, each a finite 1-D floating-point tensor (``float64``: exactly float64)."""
    if not isinstance(state, Mapping) or set(state) != set(keys):
        raise ModelFileError(
            f"{where}: field 'state' must hold exactly {', '.join(keys)} (rule: {rule})"
        )
    kind = "float64" if float64 else "floating-point"
    arrays = {}
    for key in keys:
        value = state[key]
        if not isinstance(value, torch.Tensor) or not (
            value.dtype == torch.float64 if float64 else torch.is_floating_point(value)
        ):
            raise ModelFileError(
                f"{where}: field 'state.{key}' is not a {kind} tensor (rule: {rule})"
            )
        if value.ndim != 1 or not bool(torch.isfinite(value).all()):
            raise ModelFileError(
                f"{where}: field 'state.{key}' is not a finite vector (rule: {rule})"
            )
        arrays[key] = value.detach().cpu().numpy().astype(np.float64)
    return arrays
