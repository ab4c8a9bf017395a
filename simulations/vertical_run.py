"""`confide simulate` for a vertical job (``federation.kind: vertical``, docs/vertical.md).

:func:`confide.simulations.simulate.simulate` dispatches here when ``job.vertical`` is set and
keeps what every engine run shares (run directory, Ray, ``run_engine``). This module adds the
vertical pieces, in order:

1. :func:`preflight_vertical` (nothing written): who holds which feature, the join key's tier
   and where the label is, from every node's policy (``check_feature_ownership``, rules VFL-*),
   then every node with data answers the read-only ``vertical-check`` step exactly as it would
   under the engine (join key present, not empty, not duplicated: counts only; features
   present; tiers, DP and budget under its own policy);
2. the coordinator (:func:`confide.server.vertical_app.run_vertical`) as the ServerApp's body
   and the one ClientApp whose query handler answers vertical steps
   (:func:`vertical_client_app`);
3. :func:`finish_vertical`: the baselines on the same split computed in-process on the pooled
   aligned data, as horizontal baselines are (label node alone with the same DP, vertical
   without DP, centralised on all features without DP: :func:`confide.modeling.
   vertical_model.run_vertical_baselines`), then the one run-directory finaliser
   (:func:`confide.rundir.finalise_vertical`: metrics, curves, ledgers, report, run ledger).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid

from confide.clients.client_app import make_client_app
from confide.clients.node_runtime import NodeRefusal
from confide.clients.vertical_node import (
    VerticalRefusal,
    aligned_split,
    answer_vertical,
    node_arrays,
    public_job,
)
from confide.core.errors import ConfideError
from confide.job import Job, NodeSpec
from confide.modeling.metrics import binary_metrics
from confide.modeling.vertical_linear import (
    LinearLayout,
    label_alone_model,
    row_bound,
    run_linear_vertical_arrays,
)
from confide.modeling.vertical_model import centralised_baseline, run_vertical_baselines
from confide.privacy import load_policy
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.run_ledger import run_epsilon_from_snapshots
from confide.reports import write_report
from confide.rundir import finalise_vertical, run_ledger_path, write_outcome
from confide.server.vertical_app import VerticalOutcome, run_vertical
from confide.vertical_spec import check_feature_ownership
from confide.wire import VerticalRequest

__all__ = [
    "finish_vertical",
    "preflight_vertical",
    "vertical_baselines",
    "vertical_body",
    "vertical_client_app",
]

OnStep = Callable[[str], None]


def preflight_vertical(job: Job, nodes: list[NodeSpec] | None = None) -> Job:
    """Check the vertical job against every node's policy, then let each node of ``nodes``
    (default: those with a data file) run its read-only ``vertical-check``; raises the first
    refusal as one line. Returns the job with the spec's feature ownership filled in."""
    spec = job.vertical
    assert spec is not None  # dispatched for vertical jobs only
    policies = {n.name: load_policy(n.policy) for n in job.nodes}
    checked = check_feature_ownership(
        spec, job.task, policies, f"federation '{job.federation}'", dp_enabled=job.dp.enabled
    )
    job = dataclasses.replace(job, vertical=checked)
    request = VerticalRequest("preflight", "vertical-check", public_job(job.config))
    for node in nodes if nodes is not None else [n for n in job.nodes if n.data is not None]:
        try:
            answer_vertical(node, request, {})
        except VerticalRefusal as exc:
            raise ConfideError(str(exc)) from None
    if all(n.data is not None for n in job.nodes):
        _check_overlap(job)
    return job


def _check_overlap(job: Job) -> None:
    """No overlap, or an overlap below ``psi.min_overlap``, stops the run before anything is
    written: the simulation holds every node's data, so it counts the customers whose
    normalised join key every node holds (the label node counts the same under the engine)."""
    spec = job.vertical
    assert spec is not None
    keys = {n.name: set(node_arrays(n, job, with_label=False).ids) for n in job.nodes}
    common = len(set.intersection(*keys.values()))
    where = f"federation '{job.federation}'"
    if common == 0:
        raise ConfideError(
            f"{where}: the nodes' join keys '{spec.join_key}' have no overlap "
            "(rule: VFL-NO-OVERLAP)"
        )
    if common < spec.min_overlap:
        raise ConfideError(
            f"{where}: {common} aligned customers, below psi.min_overlap={spec.min_overlap} "
            "(rule: VFL-MIN-OVERLAP)"
        )


def _no_training(context: Context):
    raise NodeRefusal("this run is a vertical job: the node takes no federated-averaging round")


def vertical_client_app(job: Job) -> ClientApp:
    """The ClientApp of a vertical simulation: each simulated node answers from its own
    ``NodeSpec`` (partition id -> the job's node)."""

    def resolve(context: Context) -> NodeSpec:
        return job.nodes[int(context.node_config["partition-id"])]

    return make_client_app(_no_training, resolve_node=resolve)


def vertical_body(
    job: Job, run_id: str, holder: dict[str, VerticalOutcome], on_step: OnStep | None = None
) -> Callable[[Grid], None]:
    """The ServerApp body: the coordinator's protocol; its outcome lands in ``holder``."""
    timeout = float(job.config["run"]["timeout_s"])
    shared = public_job(job.config)

    def body(grid: Grid) -> None:
        holder["outcome"] = run_vertical(grid, job, shared, run_id, timeout, on_step)

    return body


def vertical_baselines(job: Job) -> dict[str, dict[str, float]]:
    """The baselines on the protocol's split, in-process on the pooled aligned data: the rows
    whose normalised join key every node holds, in label-node row order, split by
    :func:`confide.clients.vertical_node.aligned_split` as the label node splits them."""
    spec = job.vertical
    assert spec is not None and spec.features_by_node  # preflight_vertical filled it in
    arrays = {n.name: node_arrays(n, job) for n in job.nodes}
    label = arrays[spec.label_node]
    where = [{key: row for row, key in enumerate(arrays[f].ids)} for f in spec.feature_nodes]
    rows = [r for r, key in enumerate(label.ids) if all(key in w for w in where)]
    aligned = np.asarray(rows, dtype=np.int64)
    x_features = [
        arrays[f].x[[w[label.ids[r]] for r in rows]]
        for f, w in zip(spec.feature_nodes, where, strict=True)
    ]
    assert label.y is not None
    train_at, test_at = aligned_split(len(aligned), job.test_fraction, job.seed)
    if spec.secure_linear:
        return secure_linear_baselines(
            label.x[aligned],
            x_features[0],
            label.y[aligned],
            train_at,
            test_at,
            job,
        )
    return run_vertical_baselines(
        label.x[aligned],
        x_features,
        label.y[aligned],
        train_at,
        test_at,
        job.model_net,
        job.dp,
        job.train,
        job.rounds,
        spec.label_dp_epsilon,
        spec.embedding_dp_epsilon,
        spec.embedding_clip,
        job.seed,
    )


def secure_linear_baselines(
    x_label: np.ndarray,
    x_feature: np.ndarray,
    y: np.ndarray,
    train_at: np.ndarray,
    test_at: np.ndarray,
    job: Job,
) -> dict[str, dict[str, float]]:
    """The secure linear protocol's in-process twin with the job's DP and without, the label
    node alone from its own noisy block, and the job's model on the pooled columns (no DP)."""
    spec = job.vertical
    assert spec is not None
    clips = (spec.label_row_clip, spec.feature_row_clip)
    private = run_linear_vertical_arrays(
        x_label, x_feature, y, train_at, test_at, job.dp, job.dp, *clips, seed=job.seed
    )
    off = dataclasses.replace(job.dp, enabled=False)
    plain = run_linear_vertical_arrays(
        x_label, x_feature, y, train_at, test_at, off, off, *clips, seed=job.seed
    )
    layout = LinearLayout(x_label.shape[1], x_feature.shape[1])
    alone = label_alone_model(
        private.statistics, layout, private.sigma_label * row_bound(*clips), spec.label_row_clip
    )
    pooled = np.column_stack([x_label, x_feature])
    return {
        "vertical": private.metrics,
        "label_node_alone": binary_metrics(
            y[test_at], alone.predict_proba(x_label[test_at], np.zeros(len(test_at)))
        ),
        "vertical_no_dp": plain.metrics,
        "centralised_no_dp": centralised_baseline(
            pooled, y, train_at, test_at, job.model_net, job.train, job.rounds, job.seed
        ),
    }


def _ledger_snapshots(job: Job) -> dict[str, Any]:
    out = {}
    for node in job.nodes:
        policy = load_policy(node.policy)
        ledger = BudgetLedger(node.default_ledger(), node.name, policy.dp.lifetime_epsilon)
        out[node.name] = ledger.snapshot() if ledger.exists() else {"runs": []}
    return out


def finish_vertical(
    job: Job,
    run_id: str,
    run_dir: Path,
    outcome: VerticalOutcome,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Baselines (completed runs with ``baselines.enabled``), then the run directory through
    :func:`confide.rundir.finalise_vertical`; returns metrics.json's content."""
    completed = outcome.status == "completed"
    write_outcome(run_dir, outcome.to_dict())  # on disk before the baselines, which can fail
    baselines = None
    if completed and (job.config.get("baselines") or {}).get("enabled", True):
        results = vertical_baselines(job)
        baselines = {k: v for k, v in results.items() if k != "label_node_alone"}
        baselines["label_node_alone"] = results["label_node_alone"]
        baselines["vertical_in_process"] = baselines.pop("vertical")
    ledgers = _ledger_snapshots(job)
    return finalise_vertical(
        run_dir,
        job=job,
        run_id=run_id,
        outcome=outcome.to_dict(),
        record=outcome.record,
        baselines=baselines,
        epsilon=run_epsilon_from_snapshots(ledgers, run_id),
        policy_sha256={n.name: load_policy(n.policy).sha256 for n in job.nodes},
        ledger_path=run_ledger_path(job.config),
        write_report=write_report,
        ledgers=ledgers,
        extra=extra,
    )
