"""A node's data pipeline: read the CSV, check it against the node's policy, apply the policy's
transforms, then encode features and labels from the shared task spec.

raw CSV -> schema check (unlisted or missing columns refused) -> rule check (tiers vs task and
DP) -> privacy transforms -> encoding -> train/test split. Nothing here talks to Flower.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from confide.modeling.encoding import encode_features
from confide.modeling.errors import DataError
from confide.modeling.task_spec import TaskSpec
from confide.modeling.tasks import encode_targets
from confide.privacy import JobUsage, Keyring, Policy, apply_policy, enforce, evaluate_job
from confide.privacy.reader import CsvFormatError, read_csv_frame

__all__ = [
    "NodeData",
    "PreparedFrame",
    "check_node_rules",
    "encode_node",
    "prepare_columns",
    "prepare_frame",
    "read_node_csv",
    "train_rows",
]


@dataclass(frozen=True)
class PreparedFrame:
    """Policy-transformed records renamed to task names, plus the (pseudonymised) id column."""

    frame: pd.DataFrame
    ids: pd.Series | None
    policy: Policy


@dataclass(frozen=True)
class NodeData:
    """Encoded train and held-out splits of one node (never leaves the node)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    policy: Policy

    @property
    def n_rows(self) -> int:
        return len(self.y_train) + len(self.y_test)


def read_node_csv(path: Path) -> pd.DataFrame:
    """Read a node's CSV as text under the shared reader's rules (:mod:`confide.privacy.reader`).

    Empty fields are ``""``; a bad numeric value is reported at encoding, never coerced here.
    Any refusal is a :class:`DataError` with the reader's one-line message (file, row, column,
    rule), the same message ``privacy apply`` gives for the same file.
    """
    try:
        return read_csv_frame(path, require_rows=True)
    except CsvFormatError as exc:
        raise DataError(str(exc)) from None


def _task_frame(transformed: pd.DataFrame, policy: Policy, names: list[str], source: str):
    columns = {}
    for name in names:
        rule = policy.column_for(name)
        if rule is None or rule.name not in transformed.columns:
            raise DataError(
                f"{source}: task column '{name}' is not provided by policy {policy.source} "
                "(rule: task column mapping)"
            )
        columns[name] = transformed[rule.name]
    return pd.DataFrame(columns, index=transformed.index)


def prepare_frame(
    path: Path,
    policy: Policy,
    task: TaskSpec,
    keyring: Keyring | None,
    *,
    with_label: bool,
) -> PreparedFrame:
    """Read ``path``, check and transform it under ``policy``, rename to task names."""
    names = task.feature_names + (task.target_names if with_label else [])
    return prepare_columns(path, policy, names, keyring)


def prepare_columns(
    path: Path,
    policy: Policy,
    names: list[str],
    keyring: Keyring | None,
    raw_names: tuple[str, ...] = (),
) -> PreparedFrame:
    """Read ``path``, check and transform it under ``policy``, keep ``names`` (task or analysis
    names, resolved through the policy's ``maps_to``) as text, the reader's values.

    ``raw_names`` (a subset of ``names``) keep their pre-transform text: a data-quality format
    check needs the value before masking. The frame stays on the node."""
    source = str(path)
    raw = read_node_csv(path)
    policy.check_columns(list(raw.columns), source=source)
    transformed = apply_policy(raw, policy, keyring, source=source)
    frame = _task_frame(transformed, policy, [n for n in names if n not in raw_names], source)
    if raw_names:
        untouched = _task_frame(raw, policy, list(raw_names), source)
        frame = pd.concat([frame, untouched], axis=1)[names]
    id_rules = policy.columns_by_role("id")
    ids = transformed[id_rules[0].name] if id_rules and id_rules[0].name in transformed else None
    return PreparedFrame(frame, ids, policy)


def _split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def train_rows(n_rows: int, test_fraction: float) -> int:
    """Rows in a node's training split (what delta is compared with: delta << 1/n)."""
    return n_rows - max(1, round(n_rows * test_fraction))


def check_node_rules(
    name: str,
    policy: Policy,
    task: TaskSpec,
    *,
    n_train_rows: int,
    dp_enabled: bool,
    epsilon: float | None,
    delta: float | None,
    lifetime_spent: float,
) -> None:
    """Run the shared rule engine on this node's job; any ERROR stops it before encoding."""
    usage = JobUsage(
        node=name,
        features=task.feature_names,
        label=task.label.name,
        dp_enabled=dp_enabled,
        epsilon_per_run=epsilon,
        delta=delta,
        n_train_rows=n_train_rows,
        lifetime_spent=lifetime_spent,
    )
    enforce(evaluate_job(policy, usage))


def encode_node(
    name: str, prepared: PreparedFrame, task: TaskSpec, source: str, test_fraction: float, seed: int
) -> NodeData:
    """Encode a prepared frame and split it into train and held-out rows (seeded per node)."""
    x = encode_features(prepared.frame, task, source)
    y = encode_targets(prepared.frame, task, source)
    train_idx, test_idx = _split_indices(len(y), test_fraction, seed ^ zlib.crc32(name.encode()))
    return NodeData(name, x[train_idx], y[train_idx], x[test_idx], y[test_idx], prepared.policy)
