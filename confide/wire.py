"""The wire protocol between the server and the nodes, imported by both sides.

Everything that crosses a Flower message and must be spelled the same on both ends lives here:
the keys of the records Confide adds, the status values of a node's reply, the per-node
training metrics the server records, and the server's per-round :class:`Proposal` (flat
scalars that travel in a ConfigRecord). A node checks every proposal against its own policy;
the server proposes, never overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confide.core.errors import ConfideError
from confide.modeling.training_settings import DPSettings, TrainSettings

__all__ = [
    "ARRAY_KEYS_KEY",
    "DP_STATE_KEY",
    "PER_NODE_TRAIN_METRICS",
    "STATUSES",
    "STATUS_FAILED",
    "STATUS_KEY",
    "STATUS_OK",
    "STATUS_REFUSED",
    "Proposal",
    "ProposalError",
]

# A node's reply carries a ConfigRecord under STATUS_KEY: {node, status, reason}.
STATUS_KEY = "confide"
STATUS_OK = "ok"
STATUS_REFUSED = "refused"
STATUS_FAILED = "failed"  # what the server records for a reply without a status record
STATUSES = (STATUS_OK, STATUS_REFUSED, STATUS_FAILED)

# SecAgg+ rounds send the model as legacy Parameters: the array names travel in the fit config.
ARRAY_KEYS_KEY = "confide-array-keys"

# The node's own context state: its DP accountant between rounds of one run (never sent).
DP_STATE_KEY = "confide.dp"

# Training metrics a node reports and the server keeps per node in the run history.
PER_NODE_TRAIN_METRICS = ("train_loss", "epsilon", "steps", "num-examples", "noise_multiplier")


class ProposalError(ConfideError):
    """A proposal from the server is incomplete or malformed."""


@dataclass(frozen=True)
class Proposal:
    """Run id, round, planned rounds, DP and training settings proposed by the server."""

    run_id: str
    server_round: int
    rounds: int
    seed: int
    dp: DPSettings
    train: TrainSettings

    def to_config(self) -> dict[str, Any]:
        """Flat config entries (bool, int, float, str only)."""
        dp, tr = self.dp, self.train
        return {
            "confide-run-id": self.run_id,
            "planned-rounds": self.rounds,
            "seed": self.seed,
            "dp-enabled": dp.enabled,
            "dp-epsilon": float(dp.epsilon) if dp.enabled else 0.0,
            "dp-delta": float(dp.delta) if dp.enabled else 0.0,
            "dp-max-grad-norm": float(dp.max_grad_norm),
            "dp-accountant": dp.accountant,
            "dp-secure-mode": dp.secure_mode,
            "dp-grad-sample-mode": dp.grad_sample_mode,
            "learning-rate": float(tr.learning_rate),
            "batch-size": int(tr.batch_size),
            "local-epochs": int(tr.local_epochs),
            "momentum": float(tr.momentum),
            "proximal-mu": float(tr.proximal_mu),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Proposal:
        """Parse a proposal; the strategy adds ``server-round``, FedProx ``proximal-mu``."""
        try:
            enabled = bool(config["dp-enabled"])
            dp = DPSettings(
                enabled=enabled,
                epsilon=float(config["dp-epsilon"]) if enabled else 0.0,
                delta=float(config["dp-delta"]) if enabled else 0.0,
                max_grad_norm=float(config["dp-max-grad-norm"]),
                accountant=str(config["dp-accountant"]),
                secure_mode=bool(config["dp-secure-mode"]),
                grad_sample_mode=str(config["dp-grad-sample-mode"]),
            )
            train = TrainSettings(
                learning_rate=float(config["learning-rate"]),
                batch_size=int(config["batch-size"]),
                local_epochs=int(config["local-epochs"]),
                momentum=float(config["momentum"]),
                proximal_mu=float(config.get("proximal-mu", 0.0)),
            )
            return cls(
                run_id=str(config["confide-run-id"]),
                server_round=int(config["server-round"]),
                rounds=int(config["planned-rounds"]),
                seed=int(config["seed"]),
                dp=dp,
                train=train,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProposalError(
                f"the server's proposal is missing or has a malformed entry ({exc}) "
                "(rule: proposal format)"
            ) from exc
