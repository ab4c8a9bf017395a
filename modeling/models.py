"""Opacus-compatible models (no BatchNorm; Linear layers only): one logit per row for a binary
task, ``out_dim`` logits (one per interval) for a survival task."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "LogisticRegression"]


class LogisticRegression(nn.Module):
    """A single linear layer producing one logit (``out_dim`` logits for a survival head)."""

    def __init__(self, input_dim: int, out_dim: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(input_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class MLP(nn.Module):
    """A small multilayer perceptron producing one logit (``out_dim`` for a survival head)."""

    def __init__(
        self,
        input_dim: int,
        hidden: tuple[int, ...] = (32,),
        dropout: float = 0.0,
        out_dim: int = 1,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
