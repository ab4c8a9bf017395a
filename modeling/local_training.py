"""Local training with Opacus DP-SGD; the accountant's state persists across federated rounds.

Each step's privacy cost is charged against a cap the caller passes (the node's reservation for
the run, its lifetime remainder and its per-run maximum): training stops before the step that
would take the run's epsilon above it. Accounting lives in :mod:`confide.modeling.dp_accounting`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from confide.modeling.dp_accounting import DPState, max_steps_within, steps_per_epoch
from confide.modeling.errors import BudgetExceeded, ConfideError
from confide.modeling.training_settings import DPSettings, TrainSettings

__all__ = ["LocalTrainResult", "TrainSettings", "train_local"]


@contextlib.contextmanager
def _without_backward_hook_note() -> Iterator[None]:
    """During one backward pass, hide torch's note that Opacus's per-sample hooks fire although
    the inputs need no gradient (expected for a first layer). Only that torch note is filtered,
    only here; Opacus's own warnings stay, and nothing changes warning filters at import."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Full backward hook is firing", category=UserWarning
        )
        yield


@dataclass(frozen=True)
class LocalTrainResult:
    """Outcome of one round of local training (``steps`` below the round's when the cap hit)."""

    mean_loss: float
    steps: int
    state: DPState | None


class _BatchedTensorDataset(TensorDataset):
    """A TensorDataset the DataLoader reads one whole batch at a time (one indexing operation
    per batch instead of one per row plus a stack); batches are identical to row-wise reads."""

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, ...]]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return [tuple(t[index] for t in self.tensors)]


def _whole_batch(batch: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    return batch[0]


def _make_loader(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> DataLoader:
    dataset = _BatchedTensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=generator, collate_fn=_whole_batch
    )


def _privacy_engine(dp: DPSettings) -> PrivacyEngine:
    if dp.secure_mode:
        try:
            import torchcsprng  # noqa: F401
        except ImportError as exc:
            raise ConfideError(
                "dp.secure_mode=true needs the torchcsprng package, which is not installed; "
                "install it or set dp.secure_mode=false for development (rule: secure RNG)"
            ) from exc
    return PrivacyEngine(accountant=dp.accountant, secure_mode=dp.secure_mode)


def train_local(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    train: TrainSettings,
    dp: DPSettings,
    state: DPState | None,
    seed: int,
    max_epsilon: float | None = None,
) -> LocalTrainResult:
    """Train ``model`` in place for ``train.local_epochs``; DP state is advanced and returned.

    With DP on and a ``max_epsilon``, every step is charged against it: training stops before
    the step that would take the run's epsilon above ``max_epsilon``, and a round in which not
    even one step fits is refused before training (``BudgetExceeded``).
    """
    torch.manual_seed(seed)
    loader = _make_loader(x, y, train.batch_size, seed)
    global_params = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=train.learning_rate, momentum=train.momentum)
    loss_fn = nn.BCEWithLogitsLoss()
    module: nn.Module = model
    engine = None
    ghost = dp.enabled and dp.grad_sample_mode == "ghost"
    round_steps = train.local_epochs * steps_per_epoch(len(x), train.batch_size)
    limit = round_steps
    if dp.enabled:
        if state is None:
            raise ConfideError("DP is on but the node has no calibrated DP state (rule: DP)")
        if max_epsilon is not None:
            limit = max_steps_within(
                state.history,
                state.noise_multiplier,
                1.0 / steps_per_epoch(len(x), train.batch_size),  # the loader's sample rate
                round_steps,
                max_epsilon,
                dp.delta,
                dp.accountant,
            )
            if limit == 0:
                raise BudgetExceeded(
                    "one more DP step would raise the run's epsilon above the node's cap of "
                    f"{max_epsilon:.3f} (reservation, lifetime remainder and per-run maximum); "
                    "the run's budget is exhausted (rule: budget per step)"
                )
        engine = _privacy_engine(dp)
        engine.accountant.history = list(state.history)
        private = engine.make_private(
            module=model,
            optimizer=optimizer,
            criterion=loss_fn,
            data_loader=loader,
            noise_multiplier=state.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode=dp.grad_sample_mode,
        )
        if ghost:  # ghost clipping: the wrapped criterion runs both backward passes
            module, optimizer, loss_fn, loader = private
        else:
            module, optimizer, loader = private
    module.train()
    total_loss, batches, steps = 0.0, 0, 0
    for _ in range(train.local_epochs):
        if steps >= limit:
            break
        for xb, yb in loader:
            if steps >= limit:  # the next step would cross the cap: stop before it
                break
            optimizer.zero_grad(set_to_none=True)
            if len(xb) == 0:  # Poisson sampling may draw an empty batch: still a DP step
                if ghost:  # the ghost optimizer accumulates .grad: a zero sum, then noise
                    for param in model.parameters():
                        param.grad = torch.zeros_like(param)
                optimizer.step()
                steps += 1
                continue
            loss = loss_fn(module(xb), yb)
            with _without_backward_hook_note():
                loss.backward()
            optimizer.step()
            if train.proximal_mu > 0:
                _proximal_step(model, global_params, train.learning_rate * train.proximal_mu)
            total_loss += float(loss.detach())
            batches += 1
            steps += 1
    new_state = None
    if engine is not None and state is not None:
        new_state = DPState(
            state.noise_multiplier,
            state.sample_rate,
            state.planned_steps,
            [tuple(h) for h in engine.accountant.history],
        )
        _unwrap(module)
    return LocalTrainResult(total_loss / max(batches, 1), steps, new_state)


@torch.no_grad()
def _proximal_step(model: nn.Module, anchor: list[torch.Tensor], rate: float) -> None:
    """FedProx's proximal pull towards the global weights (data-independent: no privacy cost)."""
    for param, ref in zip(model.parameters(), anchor, strict=True):
        param.sub_(rate * (param - ref))


def _unwrap(module: nn.Module) -> None:
    """Remove Opacus hooks so the plain model can be reused or serialised."""
    remove = getattr(module, "_close", None)
    if callable(remove):
        remove()
