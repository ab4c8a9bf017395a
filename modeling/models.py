"""Opacus-compatible binary classifiers (no BatchNorm; Linear layers only)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "LogisticRegression"]


class LogisticRegression(nn.Module):
    """A single linear layer producing one logit."""

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class MLP(nn.Module):
    """A small multilayer perceptron producing one logit."""

    def __init__(self, input_dim: int, hidden: tuple[int, ...] = (32,), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
