"""DP-SGD for stacks of Linear layers and row-wise activations, without Opacus's hooks.

For a Linear layer with input ``a_i`` and output gradient ``g_i`` (of sample i's own loss), the
per-sample weight gradient is the outer product ``g_i a_i^T``, whose norm is ``|g_i| |a_i|``, and
the bias gradient is ``g_i``. So every sample's total gradient norm comes from two row norms per
layer (the ghost-norm identity), no per-sample gradient is ever materialised, and the clipped
sum ``sum_i c_i g_i a_i^T`` is one matmul. The clip factor, the noise and the scaling are Opacus's
``DPOptimizer`` with ``loss_reduction="mean"``: ``c_i = min(1, C / (norm_i + 1e-6))``, Gaussian
noise of std ``sigma * C`` added to the clipped sum (one draw over the flat parameter vector from
the node's :class:`~confide.modeling.noise.NoiseSource`), then division by the expected batch
size ``int(n * q)``. Models of any other shape are refused by :func:`unsupported_reason`; the
caller then trains them with Opacus.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from confide.modeling.errors import ConfideError
from confide.modeling.models import MLP, LogisticRegression
from confide.modeling.noise import NoiseSource

__all__ = ["ROW_WISE_MODULES", "ClosedFormDPSGD", "DPEngineError", "unsupported_reason"]

#: Parameter-free modules that act on each row alone: they keep the per-sample structure.
ROW_WISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Identity,
    nn.Dropout,
)
# Models whose forward is known to apply their layers row by row and return one logit per row
# (Confide's own); inside them only Sequential containers, Linear layers and row-wise modules.
_MODELS: tuple[type[nn.Module], ...] = (LogisticRegression, MLP)


class DPEngineError(ConfideError):
    """A model cannot be trained by the closed-form engine (the caller uses Opacus instead)."""


def _flatten(container: nn.Sequential) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for module in container:
        layers += _flatten(module) if type(module) is nn.Sequential else [module]
    return layers


def _layer_sequence(model: nn.Module) -> list[nn.Module]:
    """The layers a supported model's forward applies, in order (then it squeezes the logit)."""
    if type(model) is LogisticRegression:
        return [model.linear]
    return _flatten(model.net)  # MLP


def unsupported_reason(model: nn.Module) -> str | None:
    """Why ``model`` cannot use the closed-form engine (``None`` when it can)."""
    if type(model) not in _MODELS:  # exact types: a subclass may override forward
        return f"model class {type(model).__name__} is not one of Confide's Linear stacks"
    for name, module in model.named_modules():
        kind = type(module)
        if module is model or kind is nn.Sequential:
            if next(module.parameters(recurse=False), None) is not None:
                return f"module '{name or kind.__name__}' holds parameters outside a Linear layer"
        elif kind is not nn.Linear and kind not in ROW_WISE_MODULES:
            return f"layer '{name}' ({kind.__name__}) has no closed-form per-sample gradient"
    layers = _layer_sequence(model)
    linears = [m for m in layers if type(m) is nn.Linear]
    if not linears:
        return "the model has no Linear layer"
    if len({id(m) for m in layers}) != len(layers):
        return "a layer is applied more than once (shared weights)"
    params = list(model.parameters())
    if any(not p.requires_grad for p in params):
        return "some parameters are frozen"
    if any(p.dtype != torch.float32 for p in params):
        return "parameters are not float32"
    return None


class ClosedFormDPSGD:
    """One DP-SGD step at a time for a supported model (see :func:`unsupported_reason`).

    ``step`` writes the clipped, noised, scaled gradient into every parameter's ``.grad`` (views
    of one flat buffer) exactly as Opacus's optimizer would; the caller's torch optimizer then
    applies it. The forward pass is the model's own layers applied in order (checked against
    ``model(x)`` at construction), keeping each Linear layer's input and output.
    """

    def __init__(
        self,
        model: nn.Module,
        noise_multiplier: float,
        max_grad_norm: float,
        expected_batch_size: int,
        noise: NoiseSource,
        loss: nn.Module | None = None,
    ) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise DPEngineError(
                f"closed-form DP-SGD cannot train this model: {reason} (rule: DP engine)"
            )
        if expected_batch_size <= 0:
            raise DPEngineError("closed-form DP-SGD: expected batch size must be positive")
        self.model = model
        self.noise_multiplier = float(noise_multiplier)
        self.max_grad_norm = float(max_grad_norm)
        self.expected_batch_size = int(expected_batch_size)
        self.noise = noise
        # A task's own per-row criterion (e.g. the survival hazard loss), summed over rows.
        self.loss_sum = None if loss is None else copy.copy(loss)
        if self.loss_sum is not None:
            self.loss_sum.reduction = "sum"
        self.layers = _layer_sequence(model)
        self.params = list(model.parameters())
        self.flat_grad = torch.zeros(sum(p.numel() for p in self.params), dtype=torch.float32)
        views, offset = {}, 0
        for p in self.params:
            views[id(p)] = self.flat_grad[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        self._grad_views = [(p, views[id(p)]) for p in self.params]
        self._targets = [
            (views[id(m.weight)], None if m.bias is None else views[id(m.bias)])
            for m in self.layers
            if type(m) is nn.Linear
        ]
        self._check_forward()

    def _forward(self, xb: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """The model's logits and every Linear layer's (input, output)."""
        h, records = xb, []
        for layer in self.layers:
            if type(layer) is nn.Linear:
                z = F.linear(h, layer.weight, layer.bias)
                records.append((h, z))
                h = z
            else:
                h = layer(h)
        return h.squeeze(-1), records

    @torch.no_grad()
    def _check_forward(self) -> None:
        first = next(m for m in self.layers if type(m) is nn.Linear)
        probe = torch.linspace(-2.0, 2.0, 3 * first.in_features).reshape(3, first.in_features)
        training = self.model.training
        self.model.eval()
        try:
            same = torch.equal(self.model(probe), self._forward(probe)[0])
        finally:
            self.model.train(training)
        if not same:
            raise DPEngineError(
                "closed-form DP-SGD: the model's forward is not its layers in order "
                "(rule: DP engine)"
            )

    def close(self) -> None:
        """Detach the parameters' ``.grad`` from the engine's buffer."""
        for p, _ in self._grad_views:
            p.grad = None

    def _clipped_sum(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        """Write the sum of clipped per-sample gradients into the flat buffer; the summed loss."""
        logits, records = self._forward(xb)
        if self.loss_sum is not None:
            loss = self.loss_sum(logits, yb)
        elif logits.shape != yb.shape:
            raise DPEngineError("closed-form DP-SGD: the model must return one logit per row")
        else:
            loss = F.binary_cross_entropy_with_logits(logits, yb, reduction="sum")
        out_grads = torch.autograd.grad(loss, [z for _, z in records])  # row i: d loss_i / d z_i
        with torch.no_grad():
            sq_norms = None
            for (a, _), g, (_, bias) in zip(records, out_grads, self._targets, strict=True):
                g_sq = torch.linalg.vecdot(g, g)  # |g_i a_i^T|^2 = |g_i|^2 |a_i|^2; bias: |g_i|^2
                term = g_sq * (torch.linalg.vecdot(a, a) + (0.0 if bias is None else 1.0))
                sq_norms = term if sq_norms is None else sq_norms + term
            factors = (self.max_grad_norm / (sq_norms.sqrt() + 1e-6)).clamp_(max=1.0)  # Opacus's
            for (a, _), g, (weight, bias) in zip(records, out_grads, self._targets, strict=True):
                torch.mm((g * factors.unsqueeze(1)).T, a, out=weight)
                if bias is not None:
                    torch.mv(g.T, factors, out=bias)
        return float(loss.detach())

    @torch.no_grad()
    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> float | None:
        """Set every parameter's ``.grad`` to the DP gradient of batch (xb, yb) (maybe empty):
        (clipped sum + N(0, (sigma C)^2) per coordinate) / expected batch size. Returns the
        batch's mean loss, or ``None`` for an empty batch."""
        if len(xb) == 0:
            self.flat_grad.zero_()
            loss = None
        else:
            with torch.enable_grad():
                loss = self._clipped_sum(xb, yb) / len(xb)
        std = self.noise_multiplier * self.max_grad_norm
        if std > 0:  # one draw over the flat parameter vector
            self.flat_grad.add_(self.noise.gaussian(self.flat_grad.numel(), std))
        self.flat_grad.div_(self.expected_batch_size)
        for p, view in self._grad_views:
            p.grad = view
        return loss
