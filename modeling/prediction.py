"""Prediction with a trained model: positive-class probabilities, batched, no gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["predict_proba"]


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Positive-class probabilities for rows ``x``."""
    model.eval()
    out = [
        torch.sigmoid(model(torch.from_numpy(x[i : i + batch_size]))).numpy()
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)
