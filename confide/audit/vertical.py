"""The review of a vertical job (``confide audit federation=NAME`` where NAME is ``kind:
vertical``), before it runs.

Composed like a training review (:func:`confide.audit.review.audit` hands a vertical config
here). It shows the join key's tier at every node, which node contributes which feature, where
the label is, and what crosses each boundary (docs/vertical.md): blinded group elements in the
private set intersection, DP embeddings (sigma and epsilon), label-DP residuals (sigma and
epsilon), and what is disclosed (set sizes, test and scored positions). Findings come from the
shared rules: :func:`confide.privacy.vertical_rules.vertical_findings` (VFL-*), each node's job
rules on its own share of the job (:func:`confide.privacy.evaluate_job`, as the node runs them)
and :func:`confide.privacy.evaluate_config` (transport, secrets, overrides, node files). No data
value is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confide.clients.node_data import train_rows
from confide.core.errors import ConfideError
from confide.job import Job, NodeSpec
from confide.privacy import (
    ConfigReview,
    Finding,
    JobUsage,
    NodeFacts,
    Policy,
    evaluate_config,
    evaluate_job,
)
from confide.privacy.vertical_rules import VerticalLayout, feature_holders, vertical_findings
from confide.vertical_spec import VerticalSpec

from .facts import (
    ColumnView,
    column_views,
    config_sha256,
    csv_facts,
    job_or_error,
    keys_status,
    load_node_policy,
    node_ledger,
    output_lines,
    raw_policy,
    route_findings,
    tolerant_nodes,
    transport_text,
)
from .verdict import Verdict

__all__ = [
    "CrossingView",
    "FeatureView",
    "VerticalAudit",
    "VerticalNodeView",
    "audit_vertical_config",
    "release_sigmas",
]

_AT_RUN_TIME = "computed at run time (depends on the aligned rows after PSI)"


@dataclass(frozen=True)
class CrossingView:
    """One message that crosses a node's boundary: who sends what to whom, and its protection."""

    step: str
    sender: str
    receiver: str
    what: str
    protection: str


@dataclass(frozen=True)
class FeatureView:
    """One task field (a feature or the label): the node(s) holding it and its tier there."""

    name: str
    kind: str
    holders: tuple[str, ...]
    tiers: tuple[str, ...]


@dataclass
class VerticalNodeView:
    """One node of a vertical job: its role, data, policy, features, noise and findings."""

    name: str
    role: str
    source: str
    policy_path: str
    policy_error: str | None = None
    join_key_tier: str | None = None
    features: tuple[str, ...] = ()
    holds_label: bool = False
    release: str = ""
    release_epsilon: float | None = None
    release_sigma: float | None = None
    moment_sigma: float | None = None
    sgd_sigma: str = _AT_RUN_TIME
    planned_epsilon: float | None = None
    max_epsilon_per_run: float | None = None
    lifetime_epsilon: float | None = None
    lifetime_spent: float | None = None
    ledger: str = ""
    keys: str = ""
    columns: list[ColumnView] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class VerticalAudit(Verdict):
    """Everything the vertical review found; rendered by :mod:`confide.audit.vertical_render`."""

    federation: str
    task: str
    overrides: list[str]
    config_dirs: list[str]
    config_sha256: str
    join_key: str | None
    label_node: str | None
    label: str
    psi: dict[str, Any]
    dp: dict[str, Any]
    transport: str
    fields: list[FeatureView]
    crossings: list[CrossingView]
    disclosures: list[str]
    outputs: list[str]
    nodes: list[VerticalNodeView]
    findings: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        out = dataclasses.asdict(self)
        out["summary"] = {s: self.count(s) for s in ("ERROR", "WARN", "INFO")}
        out["exit_code"] = self.exit_code
        return out


# --------------------------------------------------------------------------- noise


def release_sigmas(spec: VerticalSpec, dp: Mapping[str, Any]) -> dict[str, float | None]:
    """The release noise multipliers a run calibrates (``confide.modeling.vertical_dp``):
    ``label`` (one label release per feature node, together ``label_dp_epsilon``),
    ``embedding`` and ``moment`` (together ``embedding_dp_epsilon``). None with DP off or when
    the calibration refuses the settings (the run would refuse them too)."""
    if dp.get("enabled") is not True:
        return {"label": None, "embedding": None, "moment": None}
    from confide.modeling.vertical_dp import MOMENT_SIGMA_RATIO, release_sigma_for

    delta, accountant = float(dp["delta"]), str(dp["accountant"])
    if spec.secure_linear:  # one release of statistics per node at its whole epsilon
        try:
            sigma = release_sigma_for(float(dp["epsilon"]), delta, accountant, False)
        except ConfideError:
            sigma = None
        return {"label": sigma, "embedding": sigma, "moment": None}
    try:
        label = release_sigma_for(
            spec.label_dp_epsilon, delta, accountant, False, len(spec.feature_nodes)
        )
        embedding = release_sigma_for(spec.embedding_dp_epsilon, delta, accountant, True)
    except ConfideError:
        return {"label": None, "embedding": None, "moment": None}
    return {"label": label, "embedding": embedding, "moment": MOMENT_SIGMA_RATIO * embedding}


def _sigma(value: float | None) -> str:
    return f"sigma {value:.3g}" if value is not None else "sigma n/a"


def _statistics_noise(spec: VerticalSpec, dp: Mapping[str, Any], sigma: float | None) -> str:
    from confide.modeling.vertical_linear import row_bound

    c2 = row_bound(spec.label_row_clip, spec.feature_row_clip)
    return (
        f"N(0, (sigma B)^2) on each entry, {_sigma(sigma)}, row bound B = {c2:.4g} (row clips "
        f"{spec.label_row_clip:g} / {spec.feature_row_clip:g}); one Gaussian release at epsilon "
        f"{float(dp['epsilon']):g}, accounted in the node's budget ledger"
    )


def _linear_crossings(
    spec: VerticalSpec, dp: Mapping[str, Any], sigmas: Mapping[str, float | None]
) -> list[CrossingView]:
    """The secure linear protocol's training steps (docs/vertical.md)."""
    dp_on = dp.get("enabled") is True
    label = spec.label_node
    masked = (
        "fixed point over Z_2^64 plus an AES-256-CTR mask from the dealer, sealed with AES-GCM "
        "under an X25519 key the two nodes agree through the coordinator: uniform to the "
        "receiver, unreadable to the coordinator"
    )
    noisy = (
        "feature DP: " + _statistics_noise(spec, dp, sigmas["embedding"])
        if dp_on
        else "NONE: statistics WITHOUT differential privacy (dp.enabled=false)"
    )
    weights = (
        "label DP: solved from statistics with the label node's "
        + _statistics_noise(spec, dp, sigmas["label"])
        if dp_on
        else "NONE: weights from statistics WITHOUT differential privacy (dp.enabled=false)"
    )
    out = [
        CrossingView(
            "dealer",
            "the coordinator",
            "each node",
            "correlated randomness for two secure products: 32-byte mask keys and uniform "
            "matrices t / u = R_a^T R_b - t",
            "random and independent of any data; the coordinator must not collude with a node",
        )
    ]
    for node in spec.feature_nodes:
        out += [
            CrossingView(
                "psi-match",
                label,
                f"{node} (via the coordinator)",
                f"its label columns [x, 1, y - 0.5] (rows clipped to norm "
                f"{spec.label_row_clip:g}) over the feature node's positions, zero where not "
                "an aligned training row; its X25519 public key; the test positions",
                masked,
            ),
            CrossingView(
                "vertical-share",
                node,
                f"{label} (via the coordinator)",
                f"its features (rows clipped to norm {spec.feature_row_clip:g}) and their "
                "pairwise products over its positions, masked; its share of the two products",
                masked + "; its share carries " + noisy,
            ),
            CrossingView(
                "vertical-solve",
                label,
                f"{node} (via the coordinator)",
                "the feature node's weights (one per encoded feature)",
                weights,
            ),
            CrossingView(
                "vertical-score",
                node,
                f"{label} (via the coordinator)",
                "the logits of the test positions from its weights",
                "as a score would be; no training row's value",
            ),
        ]
    out.append(
        CrossingView(
            "vertical-evaluate",
            label,
            "the coordinator",
            "aggregate held-out metrics and score histograms, epsilon spent",
            "aggregates only; the models stay on their nodes",
        )
    )
    return out


def crossings(
    spec: VerticalSpec, dp: Mapping[str, Any], sigmas: Mapping[str, float | None]
) -> list[CrossingView]:
    """What crosses each boundary, step by step (docs/vertical.md, Protocol)."""
    dp_on = dp.get("enabled") is True
    pad = (
        f"padded with random dummies to {spec.pad_to} elements"
        if spec.pad_to is not None
        else "not padded (its size is the node's set size)"
    )
    blinded = (
        "group elements H(id)^secret (the prime-order subgroup of Curve25519, X25519 "
        "exponents) under a fresh per-run secret, after NFKC and trimming and a hash to the "
        "group bound to the run id; unlinkable to an id without the secret, useless outside "
        "the run"
    )
    label, clip = spec.label_node, spec.embedding_clip
    out = [
        CrossingView(
            "psi-blind",
            label,
            "each feature node (via the coordinator)",
            f"the label node's blinded join keys, {pad}",
            blinded,
        ),
    ]
    for node in spec.feature_nodes:
        out.append(
            CrossingView(
                "psi-reblind",
                node,
                f"{label} (via the coordinator)",
                f"the label node's elements re-blinded (same order) and its own blinded join "
                f"keys in a secret random order, {pad}",
                blinded + "; the label node learns which of its rows matched, never the "
                "feature node's other ids",
            )
        )
    if spec.secure_linear:
        return out + _linear_crossings(spec, dp, sigmas)
    if dp_on:
        residual = (
            f"label DP: residual y - p clipped to [-1, 1] plus N(0, sigma^2), "
            f"{_sigma(sigmas['label'])}, epsilon {spec.label_dp_epsilon:g} for the label "
            f"release(s), accounted in {label}'s budget ledger"
        )
        embedding = (
            f"embedding DP: the bottom's outputs standardised by their DP moments (noisy sums, "
            f"{_sigma(sigmas['moment'])}), each embedding clipped to {clip:g} standard "
            f"deviations plus N(0, (sigma C)^2), {_sigma(sigmas['embedding'])}, C = {clip:g}; "
            f"epsilon {spec.embedding_dp_epsilon:g} for both releases, accounted in the node's "
            "budget ledger"
        )
    else:
        residual = "NONE: residuals WITHOUT differential privacy (dp.enabled=false)"
        embedding = "NONE: embeddings WITHOUT differential privacy (dp.enabled=false)"
    aligned = (
        "; its aligned training positions (psi.reveal_to: all)" if spec.reveal_to == "all" else ""
    )
    for node in spec.feature_nodes:
        out.append(
            CrossingView(
                "psi-match",
                label,
                f"{node} (via the coordinator)",
                "one noisy residual per feature-node position (pure noise at positions that are "
                "not aligned training rows), the test positions, the PSI summary" + aligned,
                residual,
            )
        )
        out.append(
            CrossingView(
                "vertical-bottom",
                node,
                f"{label} (via the coordinator)",
                "one noisy embedding per non-test position, the embeddings' mean and second "
                "moment; the clean embeddings of test positions",
                embedding + "; test embeddings are clean (as a score would be)",
            )
        )
    out.append(
        CrossingView(
            "vertical-top",
            label,
            "the coordinator",
            "aggregate held-out metrics and score histograms, epsilon spent",
            "aggregates only; the models stay on their nodes",
        )
    )
    return out


def disclosures(spec: VerticalSpec) -> list[str]:
    """What a vertical run reveals beyond its DP releases (the report states the same)."""
    sizes = (
        f"every blinded set is padded to {spec.pad_to}: the true set sizes are hidden"
        if spec.pad_to is not None
        else "set sizes: each node's number of ids is revealed to the coordinator and the other "
        "nodes (set psi.pad_to to hide it with dummy ids)"
    )
    who = (
        f"only the label node '{spec.label_node}' learns which rows matched (psi.reveal_to: "
        "label_node)"
        if spec.reveal_to == "label_node"
        else "every node learns which of its rows matched (psi.reveal_to: all)"
    )
    if spec.secure_linear:
        scores = [
            "test (and scored) positions: revealed to the feature node that scores them",
            "the feature node's logits of test and scored records reach the label node (as a "
            "score would)",
            "trust: the coordinator deals the masks of the secure products; it must not collude "
            "with a node, and it relays the nodes' X25519 keys honestly (run the SuperLink with "
            "node authentication); the sealed blobs it relays are unreadable to it",
        ]
    else:
        scores = [
            "test (and scored) positions: revealed to the feature node that embeds them",
            "clean embeddings of test and scored records reach the label node (as a score would)",
        ]
    return [
        sizes,
        "intersection size: revealed to the coordinator and the nodes (PSI summary); a job with "
        f"fewer than {spec.min_overlap} aligned customers stops (psi.min_overlap)",
        who,
        *scores,
        f"the join key '{spec.join_key}' never leaves a node except blinded inside the PSI; the "
        "coordinator never receives an id in a form it could use outside the run",
    ]


# --------------------------------------------------------------------------- nodes


def _data(node: NodeSpec) -> tuple[str, str, list[str] | None, int | None]:
    """(status, source text, header, rows) of a vertical node's data."""
    if node.data is not None:
        status, header, rows = csv_facts(node.data)
        return status, f"CSV {node.data}", header, rows
    from confide.simulations.vertical_synth import DEFAULT_ROWS, synthetic_header

    header = synthetic_header(str(node.profile))
    rows = node.rows or DEFAULT_ROWS.get(str(node.profile))
    return (
        "synthetic",
        f"synthetic profile '{node.profile}', {rows} rows generated at run time from one "
        "population for every node",
        header,
        rows,
    )


def _own_columns(
    view: VerticalNodeView,
    policy: Policy,
    spec: VerticalSpec,
    label: str,
    dp: Mapping[str, Any],
    sigmas: Mapping[str, float | None],
) -> list[ColumnView]:
    """The node's policy columns, with how the join key, its features and the label leave."""
    base = column_views(
        policy, list(view.features), label if view.holds_label else [], False, dp, False, False
    )
    dp_on = dp.get("enabled") is True
    out = []
    for col in base:
        rule = policy.columns[col.name]
        if col.name == spec.join_key:
            leaves = "only blinded inside the PSI (group elements under a per-run secret)"
        elif spec.secure_linear and rule.task_name in view.features and view.role == "feature":
            leaves = (
                "only masked inside the secure products (uniform to the label node), in its "
                f"DP share of the statistics ({_sigma(sigmas['embedding'])}, epsilon "
                f"{float(dp['epsilon']):g}) and as logits of test/scored rows"
                if dp_on
                else "inside statistics WITHOUT differential privacy"
            )
        elif spec.secure_linear and view.holds_label and rule.task_name == label:
            leaves = (
                "only masked inside the secure products (uniform to the feature node) and in "
                f"the DP statistics behind the feature node's weights ({_sigma(sigmas['label'])},"
                f" epsilon {float(dp['epsilon']):g}); aggregate held-out metrics"
                if dp_on
                else "inside statistics WITHOUT differential privacy, and aggregate metrics"
            )
        elif spec.secure_linear and rule.task_name in view.features:
            leaves = (
                "only masked inside the secure products and in its DP statistics; the model "
                "stays on the node"
            )
        elif rule.task_name in view.features and view.role == "feature":
            leaves = (
                f"only inside the DP embedding release ({_sigma(sigmas['embedding'])}, epsilon "
                f"{spec.embedding_dp_epsilon:g}) and the clean test/scored embeddings"
                if dp_on
                else "inside embeddings WITHOUT differential privacy"
            )
        elif rule.task_name in view.features:
            leaves = "never: trains the label node's own models (DP-SGD) and the top model"
        elif view.holds_label and rule.task_name == label:
            leaves = (
                f"only as label-DP residuals ({_sigma(sigmas['label'])}, epsilon "
                f"{spec.label_dp_epsilon:g}) and aggregate held-out metrics"
                if dp_on
                else "as residuals WITHOUT differential privacy, and aggregate metrics"
            )
        else:
            leaves = col.leaves
        out.append(dataclasses.replace(col, leaves=leaves))
    return out


def _node_view(
    node: NodeSpec,
    config: Mapping[str, Any],
    spec: VerticalSpec | None,
    job: Job | None,
    dp: Mapping[str, Any],
    sigmas: Mapping[str, float | None],
) -> tuple[VerticalNodeView, NodeFacts, Policy | None]:
    generated = node.profile is not None
    status, source, header, rows = _data(node)
    policy, policy_finding = load_node_policy(node)
    role = "label" if spec is not None and node.name == spec.label_node else "feature"
    view = VerticalNodeView(node.name, role, source, raw_policy(config, node))
    dp_on = dp.get("enabled") is True
    view.ledger, spent, ledger_error = node_ledger(node, generated, policy, read=dp_on)
    crypto = tuple(c.name for c in policy.columns.values() if c.spec.needs_key) if policy else ()
    key_state = keys_status(node, generated)
    view.keys = {
        "generated": "generated at run time (synthetic)",
        "not-configured": "none configured",
    }.get(key_state, f"{node.keys} ({key_state})")
    facts = NodeFacts(node.name, status, key_state, crypto, ledger_error)
    if policy_finding is not None:
        view.policy_error = policy_finding.message
        view.findings = [policy_finding]
        return view, facts, None
    if policy is None or spec is None or job is None:
        return view, facts, policy
    label = job.task.label.name
    col = policy.columns.get(spec.join_key)
    view.join_key_tier = col.tier.value if col is not None else None
    label_col = policy.column_for(label)
    view.holds_label = label_col is not None and label_col.role == "label"
    view.features = tuple(
        name
        for name in job.task.feature_names
        if (c := policy.column_for(name)) is not None and c.role == "feature"
    )
    epsilon = float(dp["epsilon"]) if dp_on else None
    cap = policy.dp.max_epsilon_per_run
    if node.max_epsilon_per_run is not None:
        cap = min(cap, node.max_epsilon_per_run)
    effective = dataclasses.replace(
        policy, dp=dataclasses.replace(policy.dp, max_epsilon_per_run=cap)
    )
    view.planned_epsilon, view.max_epsilon_per_run = epsilon, cap
    view.lifetime_epsilon, view.lifetime_spent = policy.dp.lifetime_epsilon, spent
    if spec.secure_linear:
        view.release = (
            "its DP statistics (label DP: the feature node's weights)"
            if role == "label"
            else "its DP share of the statistics to the label node"
        )
        view.release_epsilon, view.release_sigma = epsilon, sigmas["label"]
        view.sgd_sigma = "none (no DP-SGD: one release of statistics)"
    elif role == "label":
        view.release = "label-DP residuals to each feature node"
        view.release_epsilon, view.release_sigma = spec.label_dp_epsilon, sigmas["label"]
    else:
        view.release = "DP embeddings and their moments to the label node"
        view.release_epsilon, view.release_sigma = spec.embedding_dp_epsilon, sigmas["embedding"]
        view.moment_sigma = sigmas["moment"]
    if not dp_on:
        view.sgd_sigma = "none (DP off)"
    n_train = train_rows(rows, job.test_fraction) if rows else None
    usage = JobUsage(  # the node's own share of the job, as the node checks it at job start
        node=node.name,
        features=list(view.features),
        label=label,
        dp_enabled=dp_on,
        epsilon_per_run=epsilon,
        delta=float(dp["delta"]) if dp_on else None,
        n_train_rows=n_train,
        lifetime_spent=spent,
        data_columns=header,
    )
    findings = evaluate_job(effective, usage)
    if role == "feature":  # the label is the label node's; a feature node never reads it
        findings = [f for f in findings if f.field != label]
    view.findings = findings
    view.columns = _own_columns(view, policy, spec, label, dp, sigmas)
    return view, facts, policy


def _fields(job: Job, layout: VerticalLayout) -> list[FeatureView]:
    holders = feature_holders(layout)
    out = []
    for name in job.task.feature_names:
        nodes = tuple(holders[name])
        tiers = tuple(layout.policies[n].column_for(name).tier.value for n in nodes)  # type: ignore[union-attr]
        out.append(FeatureView(name, "feature", nodes, tiers))
    label = job.task.label.name
    nodes = tuple(
        n
        for n in layout.nodes
        if (c := layout.policies[n].column_for(label)) is not None and c.role == "label"
    )
    tiers = tuple(layout.policies[n].column_for(label).tier.value for n in nodes)  # type: ignore[union-attr]
    out.append(FeatureView(label, "label", nodes, tiers))
    return out


# --------------------------------------------------------------------------- review


def audit_vertical_config(
    config: Mapping[str, Any],
    *,
    raw_config: Mapping[str, Any] | None = None,
    baseline: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    config_dirs: Sequence[str | Path] = (),
) -> VerticalAudit:
    """Review a resolved config whose federation is ``kind: vertical`` (plain dicts)."""
    config = dict(config)
    job, job_error = job_or_error(config)
    spec = job.vertical if job is not None else None
    dp = dict(config.get("dp") or {})
    sigmas = (
        release_sigmas(spec, dp)
        if spec is not None
        else dict.fromkeys(("label", "embedding", "moment"))
    )
    nodes = list(job.nodes) if job is not None else tolerant_nodes(config)
    views, facts, policies = [], [], {}
    for node in nodes:
        view, fact, policy = _node_view(node, config, spec, job, dp, sigmas)
        views.append(view)
        facts.append(fact)
        if policy is not None:
            policies[node.name] = policy
    findings: list[Finding] = []
    fields: list[FeatureView] = []
    if spec is not None and job is not None and len(policies) == len(nodes):
        layout = VerticalLayout(
            join_key=spec.join_key,
            label_node=spec.label_node,
            nodes=spec.nodes,
            features=tuple(job.task.feature_names),
            label=job.task.label.name,
            dp_enabled=job.dp.enabled,
            policies=policies,
        )
        fields = _fields(job, layout)
        findings += vertical_findings(layout)
    review = ConfigReview(
        config=config,
        raw_config=raw_config,
        baseline=baseline,
        overrides=tuple(overrides),
        nodes=tuple(facts),
        job_error=job_error,
    )
    findings += evaluate_config(review)
    federation_findings = route_findings(findings, views)
    federation = config.get("federation") or {}
    task = config.get("task") or {}
    psi = federation.get("psi") if isinstance(federation.get("psi"), Mapping) else {}
    return VerticalAudit(
        federation=str(federation.get("name", "?")),
        task=str(task.get("name", "?")),
        overrides=list(overrides),
        config_dirs=[str(d) for d in config_dirs],
        config_sha256=config_sha256(config),
        join_key=spec.join_key if spec else None,
        label_node=spec.label_node if spec else None,
        label=str((task.get("label") or {}).get("name", "?")),
        psi=(
            {"reveal_to": spec.reveal_to, "pad_to": spec.pad_to, "min_overlap": spec.min_overlap}
            if spec
            else dict(psi)
        ),
        dp=_dp_summary(spec, dp, sigmas),
        transport=transport_text(config),
        fields=fields,
        crossings=crossings(spec, dp, sigmas) if spec else [],
        disclosures=disclosures(spec) if spec else [],
        outputs=output_lines(config),
        nodes=views,
        findings=federation_findings,
    )


def _dp_summary(
    spec: VerticalSpec | None, dp: Mapping[str, Any], sigmas: Mapping[str, float | None]
) -> dict[str, Any]:
    if dp.get("enabled") is not True:
        what = (
            "statistics and weights"
            if spec is not None and spec.secure_linear
            else "embeddings and residuals"
        )
        return {"enabled": False, "summary": f"OFF: {what} cross WITHOUT differential privacy"}
    out: dict[str, Any] = {
        "enabled": True,
        "epsilon_per_node": dp.get("epsilon"),
        "delta": dp.get("delta"),
        "accountant": dp.get("accountant"),
        "noise": str(dp.get("noise", "seeded")),
        "label_sigma": sigmas["label"],
        "embedding_sigma": sigmas["embedding"],
        "moment_sigma": sigmas["moment"],
        "sgd_sigma": _AT_RUN_TIME,
        "summary": (
            f"every node spends epsilon {dp.get('epsilon')} per run (delta {dp.get('delta')}); "
            "the vertical settings are not valid (see findings)"
        ),
    }
    if spec is not None and spec.secure_linear:
        from confide.modeling.vertical_linear import row_bound

        out["row_bound"] = row_bound(spec.label_row_clip, spec.feature_row_clip)
        out["summary"] = (
            f"every node spends epsilon {dp.get('epsilon')} per run (delta {dp.get('delta')}, "
            f"{dp.get('accountant')} accountant, reserved in its budget ledger before training) "
            f"on one Gaussian release of its statistics ({_sigma(sigmas['label'])}, row bound "
            f"{out['row_bound']:.4g}); no DP-SGD"
        )
        out["sgd_sigma"] = "none (no DP-SGD: one release of statistics)"
    elif spec is not None:
        out["label_dp_epsilon"] = spec.label_dp_epsilon
        out["embedding_dp_epsilon"] = spec.embedding_dp_epsilon
        out["embedding_clip"] = spec.embedding_clip
        out["summary"] = (
            f"every node spends epsilon {dp.get('epsilon')} per run (delta {dp.get('delta')}, "
            f"{dp.get('accountant')} accountant, one composition per node, reserved in its "
            f"budget ledger before training): the label node {spec.label_dp_epsilon:g} on the "
            f"label release ({_sigma(sigmas['label'])}) and the rest on its own DP-SGD model; "
            f"each feature node {spec.embedding_dp_epsilon:g} on the embedding and moment "
            f"releases ({_sigma(sigmas['embedding'])}, clip {spec.embedding_clip:g}) and the "
            f"rest on its bottom model's DP-SGD (its sigma is {_AT_RUN_TIME})"
        )
    return out
