"""Empirical privacy audit: membership inference against a federation's global model.

Members are the nodes' training rows, non-members their held-out rows (same distribution, never
seen in training). Attacks:

- ``loss``: the loss-threshold attack (Yeom et al., 2018): the lower an example's loss under
  the model, the more likely it was trained on. Needs only the model.
- ``lira``: the likelihood-ratio attack with shadow models (Carlini et al., 2022, online
  variant with a global variance): shadow federations are trained the same way on random
  halves of every node's rows; for each example the attack compares its logit-scaled
  confidence under the target model with its distribution in the shadows that saw it and in
  those that did not. Stronger, and costs one training per shadow.

Reported per attack: ROC-AUC of telling members from non-members, and the true-positive rate
at 1% false-positive rate, beside the bounds that (ε, δ)-DP implies for *any* attack on one
record: TPR ≤ e^ε·FPR + δ (and the symmetric bound), and the largest AUC the resulting
trade-off curve allows. An empirical audit can only find leakage (a lower bound on the true
ε); a result far below the bound is expected, because the bound covers the worst-case record
and the worst-case attacker, the audit the average record and one attack.

Training here is Flower-free but is the product's own training: the one in-process FedAvg
loop (:mod:`confide.simulations.in_process`) runs every node's :class:`NodeRuntime` (its policy
check, transforms, encoding and split, DP-SGD with noise calibrated once per run and the same
per-round seeds, its budget ledger) and averages in float32 as Flower's FedAvg does, so the
audit attacks the model a run trains. Shadow federations train the same way on other rows, each
against its own throw-away ledger.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from confide.clients.checked_nodes import load_checked_nodes
from confide.clients.node_data import NodeData
from confide.clients.node_runtime import NodeRuntime
from confide.job import Job, parse_job
from confide.modeling.dp_accounting import DPSettings
from confide.modeling.errors import ConfideError
from confide.modeling.factory import build_model
from confide.modeling.metrics import binary_metrics
from confide.modeling.prediction import predict_proba
from confide.simulations.in_process import plain_fedavg
from confide.wire import Proposal

__all__ = [
    "ATTACKS",
    "AttackResult",
    "AuditReport",
    "attack_metrics",
    "audit_job",
    "audit_model",
    "audit_run",
    "dp_auc_bound",
    "dp_tpr_bound",
    "dp_variant",
    "load_nodes",
    "loss_scores",
    "train_federated",
]

ATTACKS = ("loss", "lira")
AUDIT_RUN_ID = "privacy-audit"
TARGET_FPR = 0.01


def dp_tpr_bound(fpr: float | np.ndarray, epsilon: float, delta: float) -> float | np.ndarray:
    """The largest TPR any membership test can reach at ``fpr`` against an (ε, δ)-DP model:
    min(1, e^ε·FPR + δ, 1 − e^−ε·(1 − δ − FPR)) (Kairouz et al., 2015)."""
    fpr = np.asarray(fpr, dtype=float)
    tpr = np.minimum(
        np.minimum(1.0, math.exp(epsilon) * fpr + delta),
        1.0 - math.exp(-epsilon) * np.maximum(0.0, 1.0 - delta - fpr),
    )
    return float(tpr) if tpr.ndim == 0 else tpr


def dp_auc_bound(epsilon: float, delta: float) -> float:
    """The largest attack ROC-AUC the (ε, δ) trade-off curve allows (area under the bound)."""
    grid = np.linspace(0.0, 1.0, 200_001)
    return float(np.trapezoid(dp_tpr_bound(grid, epsilon, delta), grid))


def attack_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> dict[str, float]:
    """ROC-AUC and TPR at 1% FPR of scores where higher means "member"."""
    truth = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    scores = np.r_[member_scores, nonmember_scores]
    fpr, tpr, _ = roc_curve(truth, scores)
    return {
        "auc": float(roc_auc_score(truth, scores)),
        "tpr_at_1pct_fpr": float(np.max(tpr[fpr <= TARGET_FPR])),
        "advantage": float(np.max(tpr - fpr)),
    }


@torch.no_grad()
def _logit_confidence(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log(p_y / (1 − p_y)) from the model's logit, in float64: the per-example statistic
    LiRA models as Gaussian (probabilities would saturate at 0 and 1 and create ties)."""
    model.eval()
    logits = np.concatenate(
        [
            model(torch.from_numpy(x[i : i + 65536])).double().numpy().reshape(-1)
            for i in range(0, len(x), 65536)
        ]
    )
    return np.where(y > 0.5, logits, -logits)


def loss_scores(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Negative per-example log-loss, −log(1 + e^−z_y) (higher = more likely a member)."""
    return -np.logaddexp(0.0, -_logit_confidence(model, x, y))


@dataclass(frozen=True)
class AttackResult:
    """One attack's figures on one setting."""

    attack: str
    auc: float
    tpr_at_1pct_fpr: float
    advantage: float
    members: int
    nonmembers: int


@dataclass
class AuditReport:
    """What was measured (the setting), the model's utility, each attack, and the DP bound."""

    setting: dict[str, Any]
    utility: dict[str, float]
    attacks: list[AttackResult] = field(default_factory=list)
    bound: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "utility": self.utility,
            "attacks": [asdict(a) for a in self.attacks],
            "dp_bound": self.bound,
        }


def load_nodes(job: Job) -> list[NodeData]:
    """Each node's encoded splits, after its own policy accepted the job (DP, tiers, ε): the
    one checked-nodes loader (:func:`confide.clients.checked_nodes.load_checked_nodes`)."""
    return load_checked_nodes(job, run_id=AUDIT_RUN_ID)


class _RowsRuntime(NodeRuntime):
    """A node that trains on given encoded rows (a shadow federation's sample of its data),
    with everything else (policy check, DP calibration, ledger) as the node does."""

    def __init__(self, *args: Any, x_train: np.ndarray, y_train: np.ndarray, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rows = (x_train, y_train)

    def checked_data(self, proposal: Proposal):
        """The node's checked data with the training rows swapped for the given ones."""
        data, ledger = super().checked_data(proposal)
        return replace(data, x_train=self.rows[0], y_train=self.rows[1]), ledger


def train_federated(
    job: Job, runtimes: Sequence[NodeRuntime] | None = None, run_id: str = AUDIT_RUN_ID
) -> tuple[torch.nn.Module, dict[str, float]]:
    """Train the job's global model with the one in-process FedAvg loop (each node's
    :class:`NodeRuntime`; default: the job's nodes). Returns the model and each node's ε for
    the run (0 without DP)."""
    result = plain_fedavg(job, run_id, runtimes, evaluate=False)
    model = build_model(job.model_name, job.model_net.params, job.task.input_dim, seed=job.seed)
    model.load_state_dict(result.state_dict)
    return model, {name: float(eps) for name, eps in result.epsilon.items()}


def _population(nodes: Sequence[NodeData]):
    """All rows with their node and membership (1 = training row of its node)."""
    x = np.concatenate([np.concatenate([n.x_train, n.x_test]) for n in nodes])
    y = np.concatenate([np.concatenate([n.y_train, n.y_test]) for n in nodes])
    member = np.concatenate(
        [np.r_[np.ones(len(n.y_train)), np.zeros(len(n.y_test))] for n in nodes]
    ).astype(bool)
    owner = np.concatenate([np.full(n.n_rows, i) for i, n in enumerate(nodes)])
    return x, y, member, owner


def _lira_scores(
    job: Job,
    nodes: Sequence[NodeData],
    target_stat: np.ndarray,
    shadow_models: int,
    progress: Callable[[str], None],
) -> np.ndarray:
    x, y, _, owner = _population(nodes)
    rng = np.random.default_rng([job.seed, 0x11A])
    inside = np.zeros((shadow_models, len(y)), dtype=bool)
    stats = np.zeros((shadow_models, len(y)))
    specs = {spec.name: spec for spec in job.nodes}
    with tempfile.TemporaryDirectory(prefix="confide-shadows-") as ledgers:
        for k in range(shadow_models):
            shadow = replace(job, seed=job.seed + 1000 + k)
            runtimes = []
            for i, node in enumerate(nodes):
                rows = np.flatnonzero(owner == i)
                chosen = rng.permutation(rows)[: len(node.y_train)]
                inside[k, chosen] = True
                own_ledger = Path(ledgers) / f"shadow-{k}" / f"{node.name}.ledger.json"
                runtimes.append(
                    _RowsRuntime(
                        replace(specs[node.name], ledger=own_ledger),
                        job.task,
                        job.model_net,
                        job.test_fraction,
                        x_train=x[chosen],
                        y_train=y[chosen],
                    )
                )
            model, _ = train_federated(shadow, runtimes, run_id=f"{AUDIT_RUN_ID}-shadow-{k}")
            stats[k] = _logit_confidence(model, x, y)
            progress(f"shadow federation {k + 1}/{shadow_models} trained")
    n_in = inside.sum(axis=0)
    n_out = shadow_models - n_in
    mean_in = np.where(n_in > 0, (stats * inside).sum(0) / np.maximum(n_in, 1), np.nan)
    mean_out = np.where(n_out > 0, (stats * ~inside).sum(0) / np.maximum(n_out, 1), np.nan)
    # global variances (the variant the paper recommends for few shadows)
    resid_in = (stats - mean_in)[inside]
    resid_out = (stats - mean_out)[~inside]
    sd_in = max(float(np.std(resid_in)) if resid_in.size else 1.0, 1e-3)
    sd_out = max(float(np.std(resid_out)) if resid_out.size else 1.0, 1e-3)
    mean_in = np.where(np.isnan(mean_in), np.nanmean(mean_in), mean_in)
    mean_out = np.where(np.isnan(mean_out), np.nanmean(mean_out), mean_out)
    log_in = -0.5 * ((target_stat - mean_in) / sd_in) ** 2 - math.log(sd_in)
    log_out = -0.5 * ((target_stat - mean_out) / sd_out) ** 2 - math.log(sd_out)
    return log_in - log_out


def audit_model(
    model: torch.nn.Module,
    nodes: Sequence[NodeData],
    setting: dict[str, Any],
    epsilon: float | None,
    delta: float | None,
    attacks: Sequence[str] = ("loss",),
    job: Job | None = None,
    shadow_models: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> AuditReport:
    """Run ``attacks`` against ``model`` with the nodes' training rows as members."""
    x, y, member, _ = _population(nodes)
    x_test = np.concatenate([n.x_test for n in nodes])
    y_test = np.concatenate([n.y_test for n in nodes])
    utility = binary_metrics(y_test, predict_proba(model, x_test))
    utility["train_roc_auc"] = binary_metrics(
        np.concatenate([n.y_train for n in nodes]),
        predict_proba(model, np.concatenate([n.x_train for n in nodes])),
    )["roc_auc"]
    report = AuditReport(setting, {k: utility[k] for k in ("roc_auc", "log_loss", "train_roc_auc")})
    for attack in attacks:
        if attack == "loss":
            scores = loss_scores(model, x, y)
        elif attack == "lira":
            if job is None or shadow_models < 2:
                raise ConfideError("the lira attack needs >= 2 shadow models (rule: audit)")
            target = _logit_confidence(model, x, y)
            scores = _lira_scores(job, nodes, target, shadow_models, progress)
        else:
            raise ConfideError(f"unknown attack '{attack}'; choose from {ATTACKS} (rule: audit)")
        figures = attack_metrics(scores[member], scores[~member])
        report.attacks.append(
            AttackResult(
                attack, **figures, members=int(member.sum()), nonmembers=int((~member).sum())
            )
        )
    if epsilon is not None and delta is not None:
        report.bound = {
            "epsilon": epsilon,
            "delta": delta,
            "max_tpr_at_1pct_fpr": float(dp_tpr_bound(TARGET_FPR, epsilon, delta)),
            "max_auc": dp_auc_bound(epsilon, delta),
        }
    return report


def _setting(job: Job, nodes: Sequence[NodeData], dp: DPSettings, eps: dict[str, float]):
    return {
        "what": "global model of an in-process FedAvg federation (Flower-free, same pipeline)",
        "federation": job.federation,
        "nodes": {
            n.name: {"train_rows": len(n.y_train), "test_rows": len(n.y_test)} for n in nodes
        },
        "model": job.model_name,
        "net": job.model_net.to_config()["net"],
        "rounds": job.rounds,
        "local_epochs": job.train.local_epochs,
        "batch_size": job.train.batch_size,
        "learning_rate": job.train.learning_rate,
        "seed": job.seed,
        "dp": (
            {
                "enabled": True,
                "epsilon_target": dp.epsilon,
                "delta": dp.delta,
                "max_grad_norm": dp.max_grad_norm,
                "epsilon_spent": eps,
            }
            if dp.enabled
            else {"enabled": False}
        ),
    }


def audit_job(
    config: dict[str, Any],
    attacks: Sequence[str] = ("loss",),
    shadow_models: int = 0,
    work_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> AuditReport:
    """Materialise the config's nodes, train its global model in process, and attack it."""
    from confide.simulations.federation import materialize_synthetic_nodes

    torch.set_num_threads(1)
    job = parse_job(config)
    # the nodes' files (data, keys, ledgers) live while the federations train on them
    with tempfile.TemporaryDirectory(prefix="confide-audit-") as tmp:
        job = materialize_synthetic_nodes(job, (work_dir or Path(tmp)) / "nodes")
        nodes = load_nodes(job)
        label = f"DP ε={job.dp.epsilon:g}" if job.dp.enabled else "no DP"
        progress(f"training the target federation ({label})")
        model, eps = train_federated(job)
        spent = max(eps.values()) if job.dp.enabled else None
        return audit_model(
            model,
            nodes,
            _setting(job, nodes, job.dp, eps),
            spent,
            job.dp.delta if job.dp.enabled else None,
            attacks,
            job=job,
            shadow_models=shadow_models,
            progress=progress,
        )


def dp_variant(config: dict[str, Any], epsilon: float) -> dict[str, Any]:
    """The same config with DP on at ``epsilon`` (δ and clipping from the config or defaults)."""
    dp = dict(config["dp"])
    defaults = DPSettings()
    dp.update(
        enabled=True,
        epsilon=float(epsilon),
        delta=dp.get("delta") or defaults.delta,
        accountant=dp.get("accountant") or defaults.accountant,
        grad_sample_mode=dp.get("grad_sample_mode") or defaults.grad_sample_mode,
    )
    return {**config, "dp": dp}


def _run_node_paths(job: Job, run_dir: Path) -> Job:
    """Node files recorded relative to where the run started; fall back to the run folder."""
    nodes = []
    for spec in job.nodes:
        local = run_dir / "nodes" / spec.name
        if spec.data is not None and not spec.data.exists() and (local / "customers.csv").exists():
            keys = local / "keys.json" if spec.keys is not None else None
            spec = replace(spec, data=local / "customers.csv", keys=keys, ledger=None)
        nodes.append(spec)
    return job.with_nodes(tuple(nodes))


def audit_run(run_dir: Path, attacks: Sequence[str] = ("loss",)) -> AuditReport:
    """Attack the global model of a finished ``confide simulate`` run (Flower-trained)."""
    import json

    import yaml

    from confide.modeling.model_io import load_model

    for name in ("config.yaml", "model.pt", "metrics.json"):
        if not (run_dir / name).is_file():
            raise ConfideError(f"{run_dir / name}: missing; is this a completed run? (rule: --run)")
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    job = _run_node_paths(parse_job(config), run_dir)
    nodes = load_nodes(job)
    model, _, _ = load_model(run_dir / "model.pt")
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    eps = {name: float(n.get("epsilon", 0.0)) for name, n in metrics.get("nodes", {}).items()}
    setting = _setting(job, nodes, job.dp, eps)
    setting["what"] = f"global model of the Flower run {run_dir.name}"
    if "lira" in attacks:
        raise ConfideError("--run audits support the loss attack only (rule: audit)")
    return audit_model(
        model,
        nodes,
        setting,
        max(eps.values()) if job.dp.enabled and eps else None,
        job.dp.delta if job.dp.enabled else None,
        attacks,
    )
