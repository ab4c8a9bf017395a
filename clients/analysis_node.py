"""A node's side of a federated analysis (``confide analyze``), free of Flower types.

Everything the coordinator sends is data. For each step (:data:`confide.wire.ANALYSIS_STEPS`)
the node, in this order:

1. re-validates the received spec (``AnalysisSpec.from_wire``) and checks it against ITS OWN
   policy (``check_spec_against_policy``): any ERROR finding refuses the step;
2. checks the budget read-only (per-run maximum, delta, lifetime remainder in its budget
   ledger, the same ledger training draws on): over a limit refuses the step before the data
   file is even opened;
3. reads its data through the one node loader (:func:`confide.clients.node_data.
   prepare_columns`: reader, schema check, policy transforms); bad data refuses the step with
   nothing reserved;
4. reserves the analysis's epsilon (release step, ``kind="analysis"``) and charges the step's
   epsilon in the ledger (compare-and-set on the run's step count: a replayed or out-of-order
   step is refused), and only then
5. computes its noisy release with :mod:`confide.analytics` and returns it (JSON-ready numbers).
   A computation that fails after its charge keeps the charge: the ledger never under-counts.
   Each step adds what it spends under the received spec (the noise is calibrated to the same
   number) to what the run has spent; whatever the coordinator sends, step after step, the
   charges never pass the run's reservation.

The final k-means step also assigns the node's customers to the released centroids and writes
that assignment next to the node's ledger (:func:`segments_path`); it never leaves the node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from confide.analytics.policy_check import check_spec_against_policy
from confide.analytics.spec import AnalysisSpec
from confide.clients.node_data import prepare_columns
from confide.core.errors import ConfideError
from confide.core.files import atomic_writer
from confide.job import NodeSpec
from confide.privacy import Keyring, Policy, PrivacyError, load_policy
from confide.privacy.analysis_rules import AnalysisBudget, analysis_budget_findings
from confide.privacy.budget_ledger import BudgetLedger
from confide.wire import AnalysisRequest, AnalysisStep, analysis_plan

__all__ = [
    "AnalysisRefusal",
    "answer_analysis",
    "node_from_config",
    "plan",
    "preflight_node",
    "segments_path",
]


_ROUNDING = 1e-12  # relative: the steps' epsilons sum to the reservation up to float rounding


class AnalysisRefusal(ConfideError):
    """The node declines an analysis step; ``str(exc)`` is the one-line reason it sends back."""


def _kmeans():
    """The DP k-means library, imported on first use: it pulls in OpenDP, which every
    ClientApp process would otherwise load (~1.3 s) even for training and vertical steps."""
    from confide.analytics import kmeans

    return kmeans


def _library():
    """The node-side DP analysis library (OpenDP), imported on first use."""
    from confide.analytics import node as library

    return library


def plan(spec: AnalysisSpec) -> tuple[AnalysisStep, ...]:
    """The analysis's steps and each step's epsilon: the release (every part but segments),
    then the library's k-means steps (:func:`confide.analytics.kmeans.step_epsilon`)."""
    release = sum(eps for part, eps in spec.parts().items() if part != "segments")
    if spec.segments is None:
        return analysis_plan(release)
    steps = range(spec.segments.iterations + 2)  # init, Lloyd iterations, final
    return analysis_plan(release, [_kmeans().step_epsilon(spec, i) for i in steps])


def _step_index(spec: AnalysisSpec, request: AnalysisRequest, name: str) -> tuple[int, float]:
    """The step's position in the plan and the epsilon its computation spends (the received
    spec's own split, the same numbers the library calibrates its noise to)."""
    for index, step in enumerate(plan(spec)):
        if (step.step, step.iteration) == (request.step, request.iteration):
            _check_centroids(spec, request, name)
            return index, step.epsilon
    raise AnalysisRefusal(
        f"node '{name}': step {request.step} {request.iteration} is not part of this "
        "analysis's plan (rule: ANALYSIS-STEP)"
    )


def _check_centroids(spec: AnalysisSpec, request: AnalysisRequest, name: str) -> None:
    """A k-means step after the init needs k centroids over the spec's features (checked
    before anything is charged: a malformed step costs nothing)."""
    if request.step != "kmeans" or _kmeans().step_kind(spec, request.iteration) == "init":
        return
    segments = spec.segments
    assert segments is not None  # a kmeans step is in the plan only with segments
    shape = (segments.k, len(segments.features))
    got = request.centroids
    if got is None or (len(got), len(got[0])) != shape:
        raise AnalysisRefusal(
            f"node '{name}': k-means step {request.iteration} needs {shape[0]} centroids of "
            f"{shape[1]} features (rule: ANALYSIS-STEP)"
        )


def segments_path(node: NodeSpec, run_id: str) -> Path:
    """Where the node keeps its customers' segment assignment of one analysis run: in a
    ``segments/`` folder beside its budget ledger, i.e. on the node, never at the coordinator."""
    return node.default_ledger().parent / "segments" / f"{node.name}.{run_id}.csv"


def node_from_config(node_config: Mapping[str, Any]) -> NodeSpec:
    """A deployment node's settings from its SuperNode ``--node-config`` (never from the
    coordinator): name, data-path, policy-path, keys-path, ledger-path, max-epsilon-per-run."""
    for key in ("name", "data-path", "policy-path"):
        if not node_config.get(key):
            raise AnalysisRefusal(f"SuperNode --node-config lacks '{key}' (rule: node config)")

    def optional(key: str) -> Path | None:
        value = node_config.get(key)
        return Path(str(value)).expanduser() if value not in (None, "") else None

    max_eps = node_config.get("max-epsilon-per-run")
    try:
        cap = float(max_eps) if max_eps not in (None, "") else None
    except (TypeError, ValueError):
        cap = None
    if max_eps not in (None, "") and (cap is None or not math.isfinite(cap) or cap <= 0):
        raise AnalysisRefusal(
            "SuperNode --node-config 'max-epsilon-per-run' must be a positive number "
            "(rule: node config)"
        )
    return NodeSpec(
        name=str(node_config["name"]),
        policy=Path(str(node_config["policy-path"])).expanduser(),
        data=Path(str(node_config["data-path"])).expanduser(),
        keys=optional("keys-path"),
        ledger=optional("ledger-path"),
        max_epsilon_per_run=cap,
    )


def _checked_spec(node: NodeSpec, wire: Mapping[str, Any]) -> tuple[AnalysisSpec, Policy]:
    name = node.name
    try:
        spec = AnalysisSpec.from_wire(wire, f"node '{name}': received analysis")
        policy = load_policy(node.policy)
    except (ConfideError, PrivacyError) as exc:
        raise AnalysisRefusal(str(exc)) from None
    errors = [
        f
        for f in check_spec_against_policy(spec, policy, name)
        if str(f.severity).upper() == "ERROR"
    ]
    if errors:
        first = errors[0]
        raise AnalysisRefusal(f"node '{name}': {first.message} (rule: {first.rule_id})")
    return spec, policy


def _ledger(node: NodeSpec, policy: Policy) -> BudgetLedger:
    return BudgetLedger(node.default_ledger(), node.name, policy.dp.lifetime_epsilon)


def _check_budget(
    node: NodeSpec, spec: AnalysisSpec, policy: Policy, ledger: BudgetLedger, run_id: str
) -> None:
    """Read-only: the node's limits and the ledger's remainder; nothing is written here."""
    per_run = policy.dp.max_epsilon_per_run
    if node.max_epsilon_per_run is not None:
        per_run = min(per_run, node.max_epsilon_per_run)
    try:
        spent = ledger.spent(excluding_run=run_id)
    except PrivacyError as exc:
        raise AnalysisRefusal(f"node '{node.name}': {exc}") from None
    findings = analysis_budget_findings(
        AnalysisBudget(
            node=node.name,
            epsilon=float(spec.epsilon),
            delta=float(spec.delta),
            max_epsilon_per_run=float(per_run),
            max_delta=float(policy.dp.max_delta),
            lifetime_epsilon=float(policy.dp.lifetime_epsilon),
            lifetime_spent=spent,
        )
    )
    if findings:
        raise AnalysisRefusal(f"{findings[0].message} (rule: {findings[0].rule_id})")


def _check_step_order(node: NodeSpec, ledger: BudgetLedger, run_id: str, index: int) -> None:
    """Read-only: a later step needs the run's reservation and exactly ``index`` steps taken."""
    try:
        entry = ledger.run(run_id)
    except PrivacyError as exc:
        raise AnalysisRefusal(f"node '{node.name}': {exc}") from None
    if entry is None and index == 0:
        return
    if entry is None or entry.get("kind") != "analysis":
        raise AnalysisRefusal(
            f"node '{node.name}': run '{run_id}' holds no analysis reservation in the node's "
            "ledger (rule: ANALYSIS-STEP)"
        )
    if int(entry["steps"]) != index:
        raise AnalysisRefusal(
            f"node '{node.name}': run '{run_id}': this step was already charged or comes out "
            "of order (rule: ANALYSIS-STEP)"
        )


def _frame(node: NodeSpec, spec: AnalysisSpec, policy: Policy) -> pd.DataFrame:
    """The node's rows under its policy, the spec's columns (and its unit id column) by name."""
    if node.data is None:
        raise AnalysisRefusal(f"node '{node.name}' has no data path (rule: data path)")
    names = list(dict.fromkeys([*spec.columns_used(), spec.unit.id_column]))
    # a format-checked quality column (e.g. mobile) is checked on its value before masking
    raw = tuple(n for n in names if n in spec.columns and spec.columns[n].kind == "format")
    try:
        keyring = Keyring.load(node.keys) if node.keys is not None else None
        return prepare_columns(node.data, policy, names, keyring, raw).frame
    except (ConfideError, PrivacyError) as exc:
        raise AnalysisRefusal(str(exc)) from None


def _charge(
    node: NodeSpec,
    spec: AnalysisSpec,
    ledger: BudgetLedger,
    request: AnalysisRequest,
    index: int,
    cost: float,
) -> None:
    """Reserve (first step) and charge this step's epsilon on top of what the run has spent,
    before it is computed. The charge adds what this computation spends, whatever spec an
    earlier step came with; a sum that passes the reservation by float rounding only is the
    reservation."""
    try:
        if index == 0:
            ledger.reserve(request.run_id, float(spec.epsilon), float(spec.delta), kind="analysis")
        entry = ledger.run(request.run_id)
        assert entry is not None  # reserved above, or checked by _check_step_order
        reserved, spent = float(entry["reserved_epsilon"]), float(entry["spent_epsilon"]) + cost
        if reserved < spent <= reserved + _ROUNDING * max(1.0, reserved):
            spent = reserved
        # compare-and-set on the step count: the spend read above is this step's starting point
        ledger.record(request.run_id, spent, index + 1, expect_steps=index)
    except PrivacyError as exc:
        raise AnalysisRefusal(f"node '{node.name}': {exc}") from None


def _write_segments(node: NodeSpec, run_id: str, frame: pd.DataFrame, segments: pd.Series) -> Path:
    """Write ``row,segment`` (row: the record's position in the node's data file) node-side."""
    path = segments_path(node, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = pd.DataFrame({"row": range(len(frame)), "segment": segments.to_numpy()})
    with atomic_writer(path, "w", file_mode=0o600) as handle:  # the node's own, private
        out.to_csv(handle, index=False)
    return path


def preflight_node(node: NodeSpec, wire: Mapping[str, Any]) -> None:
    """What a node checks before its first step, without writing or spending anything: the
    spec against its policy, its budget, and (when it has a data file) that its data loads.
    ``confide analyze`` runs it for every node before the engine starts."""
    spec, policy = _checked_spec(node, wire)
    ledger = _ledger(node, policy)
    _check_budget(node, spec, policy, ledger, run_id="preflight")
    if node.data is not None:
        _frame(node, spec, policy)


def answer_analysis(node: NodeSpec, request: AnalysisRequest) -> dict[str, Any]:
    """Run one analysis step on this node; returns its release, or raises
    :class:`AnalysisRefusal` (nothing computed; on a refusal before step 4 nothing written)."""
    spec, policy = _checked_spec(node, request.spec)
    index, cost = _step_index(spec, request, node.name)
    ledger = _ledger(node, policy)
    _check_budget(node, spec, policy, ledger, request.run_id)
    _check_step_order(node, ledger, request.run_id, index)
    frame = _frame(node, spec, policy)
    _charge(node, spec, ledger, request, index, cost)
    source = f"node '{node.name}'"
    try:
        if request.step == "release":
            return _library().release_node(spec, frame, source)
        release = _kmeans().kmeans_node_step(
            spec, frame, request.centroids, request.iteration, source=source
        )
        if _kmeans().step_kind(spec, request.iteration) == "final":
            assigned = _kmeans().assign_segments(spec, frame, request.centroids)
            _write_segments(node, request.run_id, frame, assigned)
        return release
    except (ConfideError, PrivacyError) as exc:
        raise AnalysisRefusal(f"node '{node.name}': {exc}") from None
