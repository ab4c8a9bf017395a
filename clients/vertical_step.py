"""What every step of a vertical run shares on a node (free of Flower types): the step's
context, the node's arrays, its refusals, its budget ledger, its noise and its secret order.

:mod:`confide.clients.vertical_node` (PSI and split learning) and
:mod:`confide.clients.vertical_linear_node` (the secure linear protocol) build their steps on it.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from confide.core.errors import ConfideError
from confide.job import Job, NodeSpec
from confide.modeling.dp_accounting import DPState, epsilon_for_history
from confide.modeling.metrics import binary_metrics, score_histograms
from confide.modeling.noise import NoiseSource, noise_source
from confide.modeling.vertical_dp import VerticalPlan
from confide.modeling.vertical_model import node_history
from confide.privacy import JobUsage, PrivacyError, enforce, evaluate_job
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.policy import Policy
from confide.vertical_spec import VerticalSpec
from confide.wire import SECURE_NOISE_METRIC, VerticalRequest

__all__ = [
    "NodeArrays",
    "VerticalRefusal",
    "VerticalStep",
    "accountant_record",
    "check_rules",
    "check_test_count",
    "dp_summary",
    "evaluation_summary",
    "expect_state",
    "match_lookup",
    "matched_everywhere",
    "model_path",
    "node_noise",
    "order_seed",
    "record_epsilon",
    "reserve_epsilon",
    "secret_order",
    "step_ledger",
    "task_config",
]

_RULE = "rule: VFL-STEP"


class VerticalRefusal(ConfideError):
    """The node declines a vertical step; ``str(exc)`` is the one-line reason it sends back."""


def model_path(node: NodeSpec, run_id: str, kind: str) -> Path:
    """Where the node keeps one of its models of a vertical run (``label``, ``top`` or
    ``bottom``): a ``models/`` folder beside its budget ledger, on the node."""
    return node.default_ledger().parent / "models" / f"{node.name}.{run_id}.{kind}.pt"


@dataclass(frozen=True)
class VerticalStep:
    node: NodeSpec
    request: VerticalRequest
    job: Job
    spec: VerticalSpec
    policy: Policy
    role: str  # "label" | "feature"
    noise_kind: str

    @property
    def name(self) -> str:
        return self.node.name

    def refuse(self, message: str, rule: str = _RULE) -> VerticalRefusal:
        return VerticalRefusal(f"node '{self.name}': {message} ({rule})")


@dataclass(frozen=True)
class NodeArrays:
    """The node's records under its policy: encoded features, labels (label node) and ids."""

    x: np.ndarray
    y: np.ndarray | None
    ids: list[str]
    features: list[str]
    pseudonyms: np.ndarray | None = None  # the id column after the policy's transform


def step_ledger(step: VerticalStep) -> BudgetLedger:
    return BudgetLedger(step.node.default_ledger(), step.name, step.policy.dp.lifetime_epsilon)


def match_lookup(rows: np.ndarray, positions: np.ndarray, n_rows: int) -> np.ndarray:
    """From PSI's matches (label-node row, feature-node position), one int64 array over the
    label node's ``n_rows`` rows: the position of the same customer, -1 where none (rows at or
    beyond ``n_rows``, the label node's own dummies, never count)."""
    rows, positions = np.asarray(rows, np.int64), np.asarray(positions, np.int64)
    keep = rows < n_rows
    lookup = np.full(int(n_rows), -1, dtype=np.int64)
    lookup[rows[keep]] = positions[keep]
    return lookup


def matched_everywhere(lookups: Iterable[np.ndarray]) -> np.ndarray:
    """The label node's rows (sorted) that every feature node matched."""
    return np.flatnonzero(np.logical_and.reduce([lookup >= 0 for lookup in lookups]))


def check_test_count(step: VerticalStep, n_records: int, n_test: int) -> None:
    """Refuse more test positions than an honest label node can ask for: at most
    ``max(1, round(n * test_fraction))`` of the aligned rows, and there are at most as many
    aligned rows as this node's ``n_records``. The node sends back a clean (not DP) value for
    each test position, so the coordinator must not be able to widen that set."""
    bound = max(1, round(n_records * step.job.test_fraction))
    if n_test > bound:
        raise step.refuse(
            f"{n_test} test positions, more than the job's test fraction allows of its "
            f"{n_records} records ({bound})"
        )


def check_rules(step: VerticalStep, data: NodeArrays, n_train_rows: int) -> None:
    """The shared rule engine on this node's share of the job: its features (and the label at
    the label node), DP, the per-run maximum and the lifetime budget; read-only."""
    dp, node = step.job.dp, step.node
    if (
        dp.enabled
        and node.max_epsilon_per_run is not None
        and dp.epsilon > node.max_epsilon_per_run
    ):
        raise step.refuse(
            f"proposed epsilon {dp.epsilon:g} exceeds the node's maximum "
            f"{node.max_epsilon_per_run:g} per run",
            "rule: DP-EPS-RUN",
        )
    label = step.job.task.label.name
    try:
        spent = step_ledger(step).spent(excluding_run=step.request.run_id) if dp.enabled else 0.0
        usage = JobUsage(
            node=step.name,
            features=data.features,
            label=label,
            dp_enabled=dp.enabled,
            epsilon_per_run=dp.epsilon if dp.enabled else None,
            delta=dp.delta if dp.enabled else None,
            n_train_rows=n_train_rows,
            lifetime_spent=spent,
        )
        findings = evaluate_job(step.policy, usage)
        if step.role == "feature":  # the label is the label node's; a feature node never reads it
            findings = [f for f in findings if f.field != label]
        enforce(findings)
    except (ConfideError, PrivacyError) as exc:
        raise VerticalRefusal(str(exc)) from None


def node_noise(step: VerticalStep, index: int) -> NoiseSource:
    """The node's noise for one release: secure noise ignores the seed; seeded noise (the
    simulation default) depends only on the job seed, the node and the release, so a seeded
    run is reproducible, as a horizontal one is."""
    seed = zlib.crc32(f"{step.job.seed}:{step.name}:{index}".encode())
    return noise_source(step.noise_kind, seed)


def order_seed(step: VerticalStep) -> bytes:
    """The seed of the secret position order: fresh from ``os.urandom`` unless the node uses
    seeded noise, whose runs are reproducible by design (and never private: simulation only)."""
    if step.noise_kind == "seeded":
        return hashlib.sha256(
            f"confide-vertical-order:{step.job.seed}:{step.name}".encode()
        ).digest()
    return os.urandom(32)


def accountant_record(plan: VerticalPlan, dp_accountant: str, history: list) -> dict[str, Any]:
    """The ledger's accountant record of a plan: its DP-SGD noise, or (a plan without DP-SGD,
    the secure linear protocol) its one release as a single full-batch step."""
    if plan.steps:
        state = DPState(plan.sgd_sigma, plan.sample_rate, plan.steps, list(history))
    else:
        state = DPState(plan.release_sigma, 1.0, 1, list(history))
    return {"mechanism": dp_accountant, **state.to_dict()}


def reserve_epsilon(step: VerticalStep, plan: VerticalPlan) -> BudgetLedger | None:
    """Reserve the node's whole epsilon for this run (DP on) before it trains; a run that
    already holds an entry has trained and released: the step is refused (never replayed)."""
    dp = step.job.dp
    if not dp.enabled:
        return None
    ledger = step_ledger(step)
    run_id = step.request.run_id
    try:
        if ledger.run(run_id) is not None:
            raise step.refuse(f"run '{run_id}' already trained and released on this node")
        ledger.reserve(
            run_id, dp.epsilon, dp.delta, accountant=accountant_record(plan, dp.accountant, [])
        )
    except PrivacyError as exc:
        raise VerticalRefusal(f"node '{step.name}': {exc}") from None
    return ledger


def record_epsilon(
    step: VerticalStep, ledger: BudgetLedger | None, plan: VerticalPlan, sgd: list
) -> float:
    """Charge the run's composed epsilon once: the DP-SGD steps taken plus the releases
    (one accountant history); returns it."""
    dp = step.job.dp
    if ledger is None:
        return 0.0
    history = node_history(sgd, plan)
    epsilon = epsilon_for_history(history, dp.delta, dp.accountant)
    try:
        ledger.record(
            step.request.run_id,
            min(epsilon, dp.epsilon),
            sum(h[2] for h in history),
            accountant=accountant_record(plan, dp.accountant, history),
            expect_steps=0,
        )
    except PrivacyError as exc:
        raise VerticalRefusal(f"node '{step.name}': {exc}") from None
    return float(epsilon)


def dp_summary(step: VerticalStep, plan: VerticalPlan, epsilon: float, noise: NoiseSource) -> dict:
    dp = step.job.dp
    release = plan.release_epsilon(dp.delta, dp.accountant) if dp.enabled else None
    return {
        "epsilon": epsilon,
        "delta": dp.delta if dp.enabled else 0.0,
        "release_epsilon": release,
        "sgd_sigma": plan.sgd_sigma,
        "release_sigma": plan.release_sigma,
        "moment_sigma": plan.moment_sigma,
        "sample_rate": plan.sample_rate,
        "steps": plan.steps,
        SECURE_NOISE_METRIC: 1.0 if noise.name == "secure" else 0.0,
    }


def expect_state(step: VerticalStep, state: Mapping[str, Any], after: str) -> Mapping[str, Any]:
    if state.get("run_id") != step.request.run_id or state.get("done") != after:
        raise step.refuse(f"step {step.request.step} must follow {after} in the same run")
    return state


def secret_order(seed: bytes, n_positions: int) -> np.ndarray:
    return np.random.default_rng(int.from_bytes(seed, "big")).permutation(n_positions)


def task_config(job: Job, features: list[str]) -> dict[str, Any]:
    """The task config of a node's model: the shared task with this node's features only."""
    task = dict(job.config["task"])
    task["features"] = [f for f in task.get("features", []) if f.get("name") in features]
    return task


def evaluation_summary(
    y_test: np.ndarray, prob: np.ndarray, alone: np.ndarray, n_train: int
) -> dict[str, Any]:
    """What the label node reports of a vertical model on its held-out rows (either protocol):
    metrics and score histograms of the model and of the label node alone, and the row counts;
    aggregates only."""
    pos, neg = score_histograms(y_test, prob)
    alone_pos, alone_neg = score_histograms(y_test, alone)
    return {
        "global": binary_metrics(y_test, prob),
        "label_alone": binary_metrics(y_test, alone),
        "curves": {
            "global": {"pos": list(pos), "neg": list(neg)},
            "label_alone": {"pos": list(alone_pos), "neg": list(alone_neg)},
        },
        "test_rows": len(y_test),
        "train_rows": int(n_train),
    }
