"""The sections of a vertical run's report (PSI, then the secure linear protocol or split
learning, docs/vertical.md): the summary (the model against its baselines and each node's
epsilon), and what the protocol did: the PSI summary, per node what crossed its boundary and its
epsilon (secure linear: one statistics DP release per node; split learning: label DP and
embedding DP shown separately), and what the protocol discloses by design."""

from __future__ import annotations

from typing import Any

from ..context import ReportContext
from ..context import fmt_int as _int
from ..context import fmt_num as _f
from ..context import fmt_signed as _signed
from ..html_page import Section, bullets, keyfigures, paragraph, table

__all__ = [
    "vertical_protocol",
    "vertical_stopped_summary",
    "vertical_subtitle",
    "vertical_summary",
]

_BASELINE_NAMES = {
    "centralised_no_dp": "centralised on all features, no DP (pooled rows: what VFL avoids)",
    "vertical_no_dp": "vertical, no DP (same protocol, every sigma 0)",
    "label_node_alone": "label node alone, same DP (in-process, same split)",
    "vertical_in_process": "vertical with DP, in-process replica (same split)",
}


_SIZES = (
    "Set sizes (the number of blinded elements each node sends) and the intersection "
    "size are revealed to the coordinator and the nodes; psi.pad_to hides the true "
    "sizes behind random dummy elements."
)
_SPLIT_DISCLOSED = [
    _SIZES,
    "The test positions are revealed to the feature node that embeds them (they are "
    "aligned customers); scored positions likewise at scoring time.",
    "Clean embeddings of the test (and scored) records reach the label node, as a score would.",
    "Each node's ε composes its own DP-SGD model and its release(s) in one Rényi DP "
    "accountant (add/remove adjacency); an ε-DP release bounds, but does not remove, "
    "what an attacker can infer.",
]
_LINEAR_DISCLOSED = [
    _SIZES,
    "The test positions are revealed to the feature node that scores them (they are "
    "aligned customers); scored positions likewise at scoring time.",
    "The feature node's logits of the test (and scored) records reach the label node, as a "
    "score would.",
    "The coordinator deals the masks of the secure products: it must not collude with a "
    "node, and it relays the nodes' X25519 keys honestly; the sealed blobs it relays are "
    "unreadable to it.",
    "Each node spends its whole ε on one Gaussian release of its statistics (statistics "
    "DP, add/remove adjacency, no DP-SGD); an ε-DP release bounds, but does not remove, "
    "what an attacker can infer.",
]


def _vertical(ctx: ReportContext) -> dict[str, Any]:
    return ctx.run.metrics.get("vertical") or {}


def _secure_linear(ctx: ReportContext) -> bool:
    return _vertical(ctx).get("protocol") == "secure_linear"


def _dp_phrase(ctx: ReportContext) -> str:
    dp = ctx.run.dp
    if not _secure_linear(ctx) or not dp.get("enabled"):
        return ctx.dp_phrase()
    target = _f(dp.get("epsilon_target", dp.get("epsilon")), 2)
    return (
        f"with one Gaussian release of statistics per node at ε = {target} per run "
        f"(δ = {dp.get('delta')}, no DP-SGD)"
    )


def _node_eps(node: dict[str, Any], key: str) -> str:
    value = (node.get("dp") or {}).get(key)
    return "n/a" if value is None else _f(value, 3)


def vertical_subtitle(ctx: ReportContext) -> str:
    """The page's subtitle of a vertical run: run id, federation, roles, task, model, outcome."""
    c, v = ctx.run.config, _vertical(ctx)
    features = ", ".join(v.get("feature_nodes") or [])
    return (
        f"run {ctx.run.run_id}\n"
        f"vertical federation '{c.get('federation', {}).get('name', '?')}' · label node "
        f"'{v.get('label_node', '?')}' · feature node(s) {features or '?'} · join key "
        f"'{v.get('join_key', '?')}' · task '{c.get('task', {}).get('name', '?')}' · model "
        f"'{c.get('model', {}).get('name', '?')}' · {ctx.run.outcome.get('status', '?')}"
    )


def vertical_summary(ctx: ReportContext) -> Section:
    """Key figures: the top model's ROC-AUC, its gap to centralised, its gain over the label
    node alone, each node's epsilon; then the baselines table."""
    m = ctx.run.metrics
    v = _vertical(ctx)
    glob = m.get("global", {})
    comparison = m.get("comparison", {})
    label = str(v.get("label_node", "?"))
    cards = [(_f(glob.get("roc_auc")), "ROC-AUC of the vertical model (aligned test rows)")]
    if comparison.get("global_auc_minus_centralised_auc") is not None:
        cards.append(
            (
                _signed(comparison["global_auc_minus_centralised_auc"]),
                "difference to centralised on all features without DP",
            )
        )
    if comparison.get("global_auc_minus_label_alone_auc") is not None:
        cards.append(
            (
                _signed(comparison["global_auc_minus_label_alone_auc"]),
                f"gain over the label node ({label}) alone",
            )
        )
    eps = [n.get("epsilon") for n in m.get("nodes", {}).values() if n.get("epsilon") is not None]
    if ctx.run.dp.get("enabled"):
        cards.append((f"{max(eps):.2f}" if eps else "n/a", "largest ε spent by a node"))
    else:
        cards.append(("DP off", "no formal privacy guarantee for what crossed"))
    psi = v.get("psi") or {}
    how = (
        "fitted one logistic model from differentially private sufficient statistics, whose "
        "cross terms came from dealer-assisted secure products (the secure linear protocol),"
        if _secure_linear(ctx)
        else "trained one model by split learning"
    )
    text = [
        f"{len(v.get('nodes', {}))} nodes holding different columns about overlapping customers "
        f"aligned their records by private set intersection on '{v.get('join_key')}' "
        f"({_int(psi.get('intersection'))} customers in common) and {how} "
        f"{_dp_phrase(ctx)}; no customer record and no id left its node.",
        f"On the aligned held-out test rows ({_int(glob.get('n'))} rows, positive rate "
        f"{_f(glob.get('positive_rate'))}, positive means {ctx.positive}) the vertical model "
        f"reaches ROC-AUC {_f(glob.get('roc_auc'))}, PR-AUC {_f(glob.get('pr_auc'))}, KS "
        f"{_f(glob.get('ks'))} and log-loss {_f(glob.get('log_loss'))}.",
    ]
    rows = [["vertical (this run)", _f(glob.get("roc_auc")), _f(glob.get("pr_auc")), "protocol"]]
    for name, b in (m.get("baselines") or {}).items():
        pooled = b.get("pooled") or {}
        what = (
            f"label node ({label}) alone, same DP (its own model in the protocol)"
            if name.startswith("local_only:")
            else _BASELINE_NAMES.get(name, name)
        )
        rows.append([what, _f(pooled.get("roc_auc")), _f(pooled.get("pr_auc")), b.get("source")])
    body = keyfigures(cards) + "".join(paragraph(t) for t in text)
    body += table(["model", "ROC-AUC", "PR-AUC", "computed"], rows, text_columns=(0, 3))
    if not ctx.run.dp.get("enabled"):
        what = (
            "the statistics and weights" if _secure_linear(ctx) else "the residuals and embeddings"
        )
        body += paragraph(
            f"Differential privacy was OFF for this run: {what} that crossed carry no formal "
            "privacy guarantee.",
            "bad",
        )
    return Section("summary", "Summary", body)


def vertical_stopped_summary(ctx: ReportContext) -> Section:
    """A vertical run that did not complete: the step it stopped at and why."""
    o = ctx.run.outcome
    body = paragraph(f"The vertical run stopped: {o.get('message', '')}", "bad")
    reasons = o.get("reasons") or {}
    if reasons:
        body += table(["node", "reason"], list(reasons.items()), text_columns=(0, 1))
    body += paragraph(
        "No model was evaluated. A node that refused before its training step reserved no "
        "budget; fix the refusal (its policy, data, budget or the overlap) and run again.",
        "lead",
    )
    return Section("summary", "Summary", body)


def vertical_protocol(ctx: ReportContext) -> Section:
    """PSI summary, per node its features, what crossed its boundary and its epsilon (secure
    linear: statistics DP; split learning: label DP and embedding DP separately), and the
    protocol's disclosures."""
    v = _vertical(ctx)
    psi = v.get("psi") or {}
    settings = v.get("psi_settings") or {}
    feature_elements = psi.get("feature_elements") or {}
    body = paragraph(
        "Private set intersection: every join key is normalised (NFKC, trimmed), hashed to a "
        "prime-order group under the run id and raised to a secret per-run exponent at its "
        "node; only doubly blinded elements are compared, at the label node.",
        "lead",
    )
    psi_rows = [
        [
            "label node's set size",
            _int(psi.get("label_set_size"))
            if psi.get("label_set_size") is not None
            else "hidden (padded)",
        ],
        ["label node's elements sent", _int(psi.get("label_elements"))],
        *[[f"elements sent by {n}", _int(c)] for n, c in sorted(feature_elements.items())],
        ["intersection (aligned customers)", _int(psi.get("intersection"))],
        [
            "aligned training rows / test rows",
            f"{_int(psi.get('train_rows'))} / {_int(psi.get('test_rows'))}",
        ],
        ["PSI time (s)", _f(psi.get("seconds"), 2)],
        ["who learns the alignment", str(settings.get("reveal_to", "label_node"))],
        ["padding (psi.pad_to)", str(settings.get("pad_to"))],
        ["minimum overlap (psi.min_overlap)", _int(settings.get("min_overlap"))],
    ]
    body += "<h3>PSI summary</h3>" + table(["", "value"], psi_rows, text_columns=(0, 1))
    linear = _secure_linear(ctx)
    rows = []
    for name, node in (v.get("nodes") or {}).items():
        dp = node.get("dp") or {}
        role = node.get("role")
        noise = "secure" if dp.get("secure_noise") == 1.0 else "seeded"
        features = ", ".join(node.get("features") or [])
        total = _node_eps(node, "epsilon")
        if linear:
            release = _node_eps(node, "release_epsilon")
            rows.append(
                [name, role, features, total, release, _f(dp.get("release_sigma"), 3), noise]
            )
            continue
        rows.append(
            [
                name,
                role,
                features,
                total,
                _node_eps(node, "release_epsilon") if role == "label" else "-",
                _node_eps(node, "release_epsilon") if role == "feature" else "-",
                _f(dp.get("release_sigma"), 3),
                _f(dp.get("sgd_sigma"), 3),
                noise,
            ]
        )
    if linear:
        header = ["node", "role", "features", "ε total", "statistics DP ε", "release σ", "noise"]
    else:
        header = [
            "node",
            "role",
            "features",
            "ε total",
            "label DP ε",
            "embedding DP ε",
            "release σ",
            "DP-SGD σ",
            "noise",
        ]
    body += "<h3>Per node</h3>" + table(header, rows, text_columns=(0, 1, 2, len(header) - 1))
    for name, node in (v.get("nodes") or {}).items():
        body += f"<h3>What crossed {name}'s boundary</h3>" + bullets(node.get("crossed") or [])
    body += "<h3>Disclosed by design</h3>" + bullets(
        _LINEAR_DISCLOSED if linear else _SPLIT_DISCLOSED
    )
    return Section("vertical", "Vertical protocol: PSI, what crossed, ε per node", body)
