"""Local training with Opacus DP-SGD whose accountant persists across federated rounds.

Noise is calibrated once per run from the target (epsilon, delta), the node's size, the batch
size and the planned number of steps (rounds x local epochs x batches per epoch). The
accountant's history is carried in :class:`DPState` between rounds, so the epsilon a node
reports is always the one for every step it took in the run, never one round's.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants import create_accountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from confide.modeling.errors import BudgetExceeded, ConfideError

__all__ = [
    "RDP_ALPHAS",
    "DPSettings",
    "DPState",
    "LocalTrainResult",
    "TrainSettings",
    "calibrate",
    "epsilon_for_history",
    "planned_steps",
    "predict_proba",
    "steps_per_epoch",
    "train_local",
]


@dataclass(frozen=True)
class TrainSettings:
    """Local optimisation settings shared by the federation."""

    learning_rate: float = 0.5
    batch_size: int = 256
    local_epochs: int = 1
    momentum: float = 0.0
    proximal_mu: float = 0.0


@dataclass(frozen=True)
class DPSettings:
    """Sample-level DP-SGD settings; ``enabled=False`` must be chosen explicitly."""

    enabled: bool = True
    epsilon: float = 3.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    secure_mode: bool = False
    grad_sample_mode: str = "hooks"


@dataclass
class DPState:
    """What a node keeps between rounds of one run: the calibrated noise and the accountant."""

    noise_multiplier: float
    sample_rate: float
    planned_steps: int
    history: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def steps_taken(self) -> int:
        return sum(step for _, _, step in self.history)

    def epsilon(self, delta: float, accountant: str) -> float:
        return epsilon_for_history(self.history, delta, accountant)

    def to_dict(self) -> dict[str, Any]:
        return {
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "planned_steps": self.planned_steps,
            "history_sigma": [float(h[0]) for h in self.history],
            "history_q": [float(h[1]) for h in self.history],
            "history_steps": [int(h[2]) for h in self.history],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DPState:
        history = list(
            zip(
                [float(v) for v in raw["history_sigma"]],
                [float(v) for v in raw["history_q"]],
                [int(v) for v in raw["history_steps"]],
                strict=True,
            )
        )
        return cls(
            float(raw["noise_multiplier"]),
            float(raw["sample_rate"]),
            int(raw["planned_steps"]),
            history,
        )


@dataclass(frozen=True)
class LocalTrainResult:
    """Outcome of one round of local training."""

    mean_loss: float
    steps: int
    state: DPState | None


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Batches per epoch; Opacus's Poisson loader uses sample rate 1 / this number."""
    if n_rows <= 0:
        raise ConfideError("a node has no training rows (rule: non-empty training split)")
    return math.ceil(n_rows / batch_size)


def planned_steps(n_rows: int, train: TrainSettings, rounds: int) -> int:
    """Optimizer steps a node plans for the whole run."""
    return rounds * train.local_epochs * steps_per_epoch(n_rows, train.batch_size)


# torch notes that Opacus's per-sample hooks fire although the inputs need no gradient, which is
# expected for a first layer. Only that torch note is filtered; Opacus's own warnings stay.
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)

# Opacus's default RDP orders stop at 63; for few steps at moderate noise the optimum lies above
# that and Opacus warns that the bound is loose. A wider grid gives the tight bound instead.
RDP_ALPHAS: list[float] = (
    [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + list(range(64, 513, 8))
)


def _accountant_kwargs(accountant: str) -> dict[str, Any]:
    return {"alphas": RDP_ALPHAS} if accountant == "rdp" else {}


@functools.lru_cache(maxsize=512)
def _rdp_one_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    """RDP of one sampled-Gaussian step at every order of ``RDP_ALPHAS``.

    A node's (sigma, q) is fixed for a run, so the expensive part of its per-round budget check
    and epsilon report is computed once per process instead of twice per round.
    """
    rdp = np.asarray(
        rdp_analysis.compute_rdp(
            q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDP_ALPHAS
        ),
        dtype=float,
    )
    rdp.setflags(write=False)
    return rdp


def epsilon_for_history(
    history: list[tuple[float, float, int]], delta: float, accountant: str
) -> float:
    """Epsilon of every step in ``history`` according to Opacus's accountant."""
    if not history:
        return 0.0
    if accountant == "rdp":  # Opacus's RDPAccountant sum, with each (sigma, q)'s RDP cached
        rdp = sum([_rdp_one_step(float(s), float(q)) * int(n) for s, q, n in history])
        eps, _ = rdp_analysis.get_privacy_spent(orders=RDP_ALPHAS, rdp=rdp, delta=delta)
        return float(eps)
    acc = create_accountant(mechanism=accountant)
    acc.history = [tuple(h) for h in history]
    return float(acc.get_epsilon(delta=delta, **_accountant_kwargs(accountant)))


def calibrate(dp: DPSettings, n_rows: int, train: TrainSettings, rounds: int) -> DPState:
    """Calibrate the noise multiplier once for the run's planned steps."""
    steps = planned_steps(n_rows, train, rounds)
    sample_rate = 1.0 / steps_per_epoch(n_rows, train.batch_size)
    sigma = get_noise_multiplier(
        target_epsilon=dp.epsilon,
        target_delta=dp.delta,
        sample_rate=sample_rate,
        steps=steps,
        accountant=dp.accountant,
        **_accountant_kwargs(dp.accountant),
    )
    return DPState(float(sigma), sample_rate, steps)


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

    With DP on, the round is refused *before* training (``BudgetExceeded``) when its steps
    would take the run's epsilon above ``max_epsilon``.
    """
    torch.manual_seed(seed)
    loader = _make_loader(x, y, train.batch_size, seed)
    global_params = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=train.learning_rate, momentum=train.momentum)
    loss_fn = nn.BCEWithLogitsLoss()
    module: nn.Module = model
    engine = None
    ghost = dp.enabled and dp.grad_sample_mode == "ghost"
    if dp.enabled:
        if state is None:
            raise ConfideError("DP is on but the node has no calibrated DP state (rule: DP)")
        round_steps = train.local_epochs * steps_per_epoch(len(x), train.batch_size)
        projected = epsilon_for_history(
            [*state.history, (state.noise_multiplier, state.sample_rate, round_steps)],
            dp.delta,
            dp.accountant,
        )
        if max_epsilon is not None and projected > max_epsilon + 1e-9:
            raise BudgetExceeded(
                f"this round would raise the run's epsilon to {projected:.3f}, above the node's "
                f"maximum of {max_epsilon:.3f} (rule: max_epsilon_per_run)"
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
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            if len(xb) == 0:  # Poisson sampling may draw an empty batch: still a DP step
                if ghost:  # the ghost optimizer accumulates .grad: a zero sum, then noise
                    for param in model.parameters():
                        param.grad = torch.zeros_like(param)
                optimizer.step()
                steps += 1
                continue
            loss = loss_fn(module(xb), yb)
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


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Positive-class probabilities for rows ``x``."""
    model.eval()
    out = [
        torch.sigmoid(model(torch.from_numpy(x[i : i + batch_size]))).numpy()
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)
