"""Local DP-SGD training; Opacus's accountant state persists across federated rounds.

Batches are Poisson-subsampled (:mod:`confide.modeling.poisson_sampling`) from the node's noise
source. Confide's own models (Linear layers and row-wise activations) are trained by the
closed-form engine (:mod:`confide.modeling.fast_dp`); any other model by Opacus's PrivacyEngine
(its ``grad_sample_mode`` from the model config) on the same batches and noise source, with a
warning in the run log. Without DP, batches are shuffled at the fixed batch size.

Each step's privacy cost is charged against a cap the caller passes (the node's reservation for
the run, its lifetime remainder and its per-run maximum): training stops before the step that
would take the run's epsilon above it. Accounting lives in :mod:`confide.modeling.dp_accounting`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants import create_accountant
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from confide.modeling.dp_accounting import DPState, max_steps_within, steps_per_epoch
from confide.modeling.errors import BudgetExceeded, ConfideError
from confide.modeling.fast_dp import ClosedFormDPSGD, unsupported_reason
from confide.modeling.noise import NoiseSource, SeededNoise
from confide.modeling.poisson_sampling import PoissonBatchSampler
from confide.modeling.training_settings import DPSettings, TrainSettings

__all__ = ["DP_ENGINES", "DP_ENGINE_LOGGER", "LocalTrainResult", "TrainSettings", "train_local"]

#: ``"auto"``: closed-form DP-SGD for Confide's Linear stacks, Opacus for any other model;
#: ``"opacus"``: Opacus for every model (the reference the closed-form engine is tested against).
DP_ENGINES = ("auto", "opacus")
#: A child of Flower's logger, so the fallback note lands in the node's run log (Flower's log)
#: wherever the node runs; the name is a string, nothing here imports Flower.
DP_ENGINE_LOGGER = "flwr.confide.dp_engine"
_log = logging.getLogger(DP_ENGINE_LOGGER)


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
    engine: str = "none"  # "closed-form", "opacus", or "none" without DP


class _BatchedTensorDataset(TensorDataset):
    """A TensorDataset the DataLoader reads one whole batch at a time (one indexing operation
    per batch instead of one per row plus a stack); batches are identical to row-wise reads."""

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, ...]]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return [tuple(t[index] for t in self.tensors)]


def _whole_batch(batch: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    return batch[0]


def _shuffled_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled fixed-size batches (the last one smaller), read by one indexing
    operation each, as the DP path reads its Poisson batches: no DataLoader machinery on either
    side, so the DP / non-private epoch ratio compares the training work only."""
    for index in torch.randperm(len(x), generator=generator).split(batch_size):
        yield x[index], y[index]


def _check_engine(dp_engine: str) -> None:
    if dp_engine not in DP_ENGINES:
        raise ConfideError(
            f"train_local: dp_engine must be one of {', '.join(DP_ENGINES)} (rule: DP engine)"
        )


def train_local(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    train: TrainSettings,
    dp: DPSettings,
    state: DPState | None,
    seed: int,
    max_epsilon: float | None = None,
    *,
    noise: NoiseSource | None = None,
    dp_engine: str = "auto",
    loss: nn.Module | None = None,
) -> LocalTrainResult:
    """Train ``model`` in place for ``train.local_epochs``; DP state is advanced and returned.

    With DP on and a ``max_epsilon``, every step is charged against it: training stops before
    the step that would take the run's epsilon above ``max_epsilon``, and a round in which not
    even one step fits is refused before training (``BudgetExceeded``). The DP noise and the
    Poisson batches come from ``noise`` (``SeededNoise(seed)`` when ``None``). ``dp_engine``:
    ``"auto"`` trains Confide's Linear stacks with the closed-form engine and anything else with
    Opacus (saying so in the log); ``"opacus"`` always uses Opacus (the reference).
    ``loss`` replaces binary cross-entropy: a criterion of one term per row (the DP unit),
    ``reduction`` "mean" and settable to "sum"/"none" (e.g. the survival task's hazard loss).
    """
    _check_engine(dp_engine)
    # CPU generator only: torch.manual_seed also queues lazy seeding of every accelerator
    # backend with a captured stack (~0.2 ms a call on this CPU-only build).
    torch.default_generator.manual_seed(seed)
    if not dp.enabled:
        return _train_plain(model, x, y, train, seed, loss)
    if state is None:
        raise ConfideError("DP is on but the node has no calibrated DP state (rule: DP)")
    per_epoch = steps_per_epoch(len(x), train.batch_size)
    sample_rate = 1.0 / per_epoch  # Opacus's: 1 / len(data_loader)
    round_steps = train.local_epochs * per_epoch
    limit = round_steps
    if max_epsilon is not None:
        limit = max_steps_within(
            state.history,
            state.noise_multiplier,
            sample_rate,
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
    source = SeededNoise(seed) if noise is None else noise
    sampler = PoissonBatchSampler(len(x), sample_rate, per_epoch, source.sampling_generator())
    reason = unsupported_reason(model) if dp_engine == "auto" else None
    if dp_engine == "auto" and reason is None:
        run = _ClosedFormRun(model, x, y, train, dp, state, sample_rate, source, loss)
    else:
        if reason is not None:
            _log.warning(
                "DP-SGD falls back to Opacus (grad_sample_mode=%s) for this model: %s",
                dp.grad_sample_mode,
                reason,
            )
        run = _OpacusRun(model, x, y, train, dp, state, sampler, source, loss)
    global_params = [p.detach().clone() for p in model.parameters()]
    model.train()
    total_loss, batches, steps = 0.0, 0, 0
    try:
        for _ in range(train.local_epochs):
            for indices in sampler:
                if steps >= limit:  # the next step would cross the cap: stop before it
                    break
                batch_loss = run.step(indices)
                steps += 1
                if batch_loss is None:  # an empty Poisson batch: noise only, still a DP step
                    continue
                if train.proximal_mu > 0:
                    _proximal_step(model, global_params, train.learning_rate * train.proximal_mu)
                total_loss += batch_loss
                batches += 1
    finally:
        run.close()
    new_state = DPState(
        state.noise_multiplier,
        state.sample_rate,
        state.planned_steps,
        [tuple(h) for h in run.accountant.history],
    )
    return LocalTrainResult(total_loss / max(batches, 1), steps, new_state, run.name)


def _train_plain(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    train: TrainSettings,
    seed: int,
    loss: nn.Module | None = None,
) -> LocalTrainResult:
    """Non-private training: shuffled batches of the fixed batch size."""
    generator = torch.Generator().manual_seed(seed)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    global_params = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=train.learning_rate, momentum=train.momentum)
    loss_fn = nn.BCEWithLogitsLoss() if loss is None else loss
    model.train()
    total_loss, batches = 0.0, 0
    for _ in range(train.local_epochs):
        for xb, yb in _shuffled_batches(xs, ys, train.batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            if train.proximal_mu > 0:
                _proximal_step(model, global_params, train.learning_rate * train.proximal_mu)
            total_loss += float(loss.detach())
            batches += 1
    return LocalTrainResult(total_loss / max(batches, 1), batches, None, "none")


class _ClosedFormRun:
    """DP-SGD steps by :class:`ClosedFormDPSGD`, charged to Opacus's accountant."""

    name = "closed-form"

    def __init__(self, model, x, y, train, dp, state, sample_rate, source, loss=None) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.sigma, self.sample_rate = state.noise_multiplier, sample_rate
        self.engine = ClosedFormDPSGD(
            model,
            state.noise_multiplier,
            dp.max_grad_norm,
            int(len(x) * sample_rate),  # Opacus's expected batch size
            source,
            loss=loss,
        )
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=train.learning_rate, momentum=train.momentum
        )
        self.accountant = create_accountant(mechanism=dp.accountant)
        self.accountant.history = list(state.history)

    def step(self, indices: np.ndarray) -> float | None:
        index = torch.from_numpy(indices)
        xb, yb = self.x.index_select(0, index), self.y.index_select(0, index)
        loss = self.engine.step(xb, yb)
        self.optimizer.step()
        self.accountant.step(noise_multiplier=self.sigma, sample_rate=self.sample_rate)
        return loss

    def close(self) -> None:
        self.engine.close()


class _OpacusRun:
    """DP-SGD steps by Opacus's PrivacyEngine on the same Poisson batches and noise source."""

    name = "opacus"

    def __init__(self, model, x, y, train, dp, state, sampler, source, loss=None) -> None:
        self.model = model
        self.ghost = dp.grad_sample_mode == "ghost"
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        loader = DataLoader(
            _BatchedTensorDataset(self.x, self.y),
            batch_sampler=sampler,
            collate_fn=_whole_batch,
        )
        optimizer = torch.optim.SGD(
            model.parameters(), lr=train.learning_rate, momentum=train.momentum
        )
        engine = PrivacyEngine(accountant=dp.accountant)
        engine.accountant.history = list(state.history)
        private = engine.make_private(
            module=model,
            optimizer=optimizer,
            criterion=nn.BCEWithLogitsLoss() if loss is None else loss,
            data_loader=loader,
            noise_multiplier=state.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            poisson_sampling=False,  # the batch sampler above is already Poisson
            grad_sample_mode=dp.grad_sample_mode,
        )
        if self.ghost:  # ghost clipping: the wrapped criterion runs both backward passes
            self.module, self.optimizer, self.loss_fn, _ = private
        else:
            self.module, self.optimizer, _ = private
            self.loss_fn = nn.BCEWithLogitsLoss() if loss is None else loss
        self.module.forbid_grad_accumulation()
        _draw_noise_from(self.optimizer, source)
        self.accountant = engine.accountant

    def step(self, indices: np.ndarray) -> float | None:
        self.optimizer.zero_grad(set_to_none=True)
        if len(indices) == 0:  # no forward pass: zero per-sample gradients, then noise
            for param in self.model.parameters():
                if self.ghost:  # the ghost optimizer clips in backward and sums into .grad
                    param.grad = torch.zeros_like(param)
                else:
                    param.grad_sample = torch.zeros((0, *param.shape), dtype=param.dtype)
            self.optimizer.step()
            return None
        index = torch.from_numpy(indices)
        loss = self.loss_fn(self.module(self.x[index]), self.y[index])
        with _without_backward_hook_note():
            loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def close(self) -> None:
        _unwrap(self.module)


def _draw_noise_from(optimizer: DPOptimizer, source: NoiseSource) -> None:
    """Make Opacus's optimizer take its noise from ``source``: one draw per step over the flat
    parameter vector, of Opacus's std (noise multiplier x clipping norm), added to the clipped
    sums exactly where Opacus's own ``add_noise`` adds its draws."""

    def add_noise() -> None:
        params = optimizer.params
        std = optimizer.noise_multiplier * optimizer.max_grad_norm
        total = sum(p.numel() for p in params)
        flat = source.gaussian(total, std) if std > 0 else torch.zeros(total)
        offset = 0
        for p in params:
            _check_processed_flag(p.summed_grad)
            draw = flat[offset : offset + p.numel()].view_as(p.summed_grad)
            p.grad = (p.summed_grad + draw.to(p.summed_grad.dtype)).view_as(p)
            _mark_as_processed(p.summed_grad)
            offset += p.numel()

    optimizer.add_noise = add_noise  # type: ignore[method-assign]


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
