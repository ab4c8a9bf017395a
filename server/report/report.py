"""`report.html` of one run: model quality, training, privacy spend, compliance, data sizes.

Everything comes from the run directory's aggregate files (score histograms, metrics, history,
ledgers, config, node policies); no row-level value is read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from confide.core.files import atomic_write_text

from . import plots
from .compliance import PrivacyFacts, privacy_facts
from .curves import calibration_curve, decile_table, ks_curve
from .html_page import Section, figure, keyfigures, page, paragraph, side, table
from .rundata import RunData, load_run

__all__ = [
    "REPORT_DIR",
    "REPORT_FILE",
    "REPORT_SECTIONS",
    "STOPPED_SECTIONS",
    "atomic_write_bytes",
    "build_report",
    "write_report",
]

REPORT_FILE = "report.html"
REPORT_DIR = "report"  # each plot as PNG
REPORT_SECTIONS = (
    "summary",
    "discrimination",
    "calibration",
    "ks",
    "gains",
    "training",
    "privacy-budget",
    "nodes",
    "privacy",
    "data",
)
STOPPED_SECTIONS = ("summary", "outcome", "privacy")


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _int(value: Any) -> str:
    return "n/a" if value is None else f"{round(float(value)):,}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Builder:
    """Collects the sections and the PNGs of one report."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self.pngs: dict[str, bytes] = {}
        self.facts: PrivacyFacts = privacy_facts(run)
        task = run.config.get("task", {})
        label = task.get("label", {})
        self.positive = f"{label.get('name', 'label')} = {label.get('positive', 1)}"

    def fig(
        self, name: str, make: Callable[[], bytes], alt: str, caption: str, wide: bool = False
    ) -> str:
        png = make()
        self.pngs[f"{name}.png"] = png
        return figure(png, alt, caption, wide)

    # -- helpers -------------------------------------------------------------------------
    @property
    def baselines(self) -> dict[str, Any]:
        return self.run.metrics.get("baselines", {}) or {}

    def baseline_auc(self, name: str, where: str = "pooled") -> float | None:
        entry = self.baselines.get(name) or {}
        return (entry.get(where) or {}).get("roc_auc")

    def subtitle(self) -> str:
        c = self.run.config
        return (
            f"run {self.run.run_id}\n"
            f"federation '{c.get('federation', {}).get('name', '?')}' · "
            f"{len(self.run.node_names)} nodes · task '{c.get('task', {}).get('name', '?')}' · "
            f"model '{c.get('model', {}).get('name', '?')}' · strategy "
            f"'{c.get('strategy', {}).get('name', '?')}' · "
            f"{self.run.outcome.get('rounds_completed', '?')}/{c.get('rounds', '?')} rounds · "
            f"{self.run.outcome.get('status', '?')}"
        )

    def dp_phrase(self) -> str:
        dp = self.run.dp
        if not dp.get("enabled"):
            return "WITHOUT differential privacy (dp=off)"
        return (
            f"with DP-SGD at a target of ε = {_f(dp.get('epsilon_target', dp.get('epsilon')), 2)} "
            f"per node per run (δ = {dp.get('delta')})"
        )

    # -- sections ------------------------------------------------------------------------
    def summary(self) -> Section:
        m = self.run.metrics
        glob = m.get("global", {})
        central = self.baseline_auc("centralised")
        locals_ = {
            n.split(":", 1)[1]: b["pooled"]["roc_auc"]
            for n, b in self.baselines.items()
            if n.startswith("local_only:")
        }
        gains = {n: glob.get("roc_auc", 0.0) - auc for n, auc in locals_.items()}
        eps = [n.epsilon_spent for n in self.facts.nodes if n.epsilon_spent is not None]
        budgets = [n.budget_per_run for n in self.facts.nodes if n.budget_per_run is not None]
        cards = [(_f(glob.get("roc_auc")), "ROC-AUC of the federated model (pooled test set)")]
        if central is not None:
            cards.append(
                (
                    _signed(glob.get("roc_auc", 0.0) - central),
                    "difference to a centralised model without DP",
                )
            )
        if gains:
            rows = self.run.metrics.get("nodes", {})
            smallest = min(gains, key=lambda n: rows.get(n, {}).get("rows", 0))
            cards.append(
                (
                    _signed(gains[smallest]),
                    f"gain for the smallest node ({smallest}) over training alone",
                )
            )
        if self.run.dp.get("enabled"):
            limit = f" of {min(budgets):g}" if budgets else ""
            cards.append(
                (
                    f"{max(eps):.2f}{limit}" if eps else "n/a",
                    "largest ε spent by a node (of its per-run budget)",
                )
            )
        else:
            cards.append(("DP off", "no formal privacy guarantee for node updates"))
        names = ", ".join(self.run.node_names)
        text = [
            f"{len(self.run.node_names)} nodes ({names}) trained one model together over "
            f"{self.run.config.get('rounds')} rounds {self.dp_phrase()}; no customer record "
            "left its node.",
            f"On the pooled held-out test set ({_int(glob.get('n'))} rows, positive rate "
            f"{_f(glob.get('positive_rate'))}, positive means {self.positive}) the federated "
            f"model reaches ROC-AUC {_f(glob.get('roc_auc'))}, PR-AUC {_f(glob.get('pr_auc'))}, "
            f"KS {_f(glob.get('ks'))} and log-loss {_f(glob.get('log_loss'))}.",
        ]
        if central is not None:
            text.append(
                f"A centralised model without DP, trained on all nodes' rows pooled in one place "
                f"(what federation avoids), reaches ROC-AUC {_f(central)}."
            )
        for node, auc in locals_.items():
            text.append(
                f"Training alone, {node} would reach ROC-AUC {_f(auc)} on the same test set "
                f"(federated: {_signed(gains[node])})."
            )
        body = keyfigures(cards) + "".join(paragraph(t) for t in text)
        if not self.run.dp.get("enabled"):
            body += paragraph(
                "Differential privacy was OFF for this run: node updates carry no formal "
                "privacy guarantee.",
                "bad",
            )
        problems = self.facts.problems
        body += paragraph(
            f"Compliance: {len(problems)} rule finding(s) need attention (see Privacy)."
            if problems
            else "Compliance: no rule findings; every node's policy allows this job.",
            "bad" if problems else "good",
        )
        return Section("summary", "Summary", body)

    def discrimination(self) -> Section:
        hists = self.run.histograms()
        lead = (
            "How well each model ranks positives above negatives on the pooled held-out test "
            "set. The federated model (blue) should sit close to the centralised one (black, "
            "dashed) and above each node training alone (dotted)."
            if len(hists) > 1
            else "How well the federated model ranks positives above negatives on the pooled "
            "held-out test set (no baselines were run: baselines.enabled=false)."
        )
        body = paragraph(lead, "lead") + '<div class="figs">'
        body += self.fig(
            "roc",
            lambda: plots.roc_png(hists),
            "ROC curves",
            "ROC: higher and further left is better; AUC 0.5 is random.",
        )
        body += self.fig(
            "pr",
            lambda: plots.pr_png(hists),
            "Precision-recall curves",
            "Precision-recall: how pure the flagged group stays as more positives "
            "are found; AP is the average precision.",
        )
        return Section("discrimination", "ROC and precision-recall", body + "</div>")

    def calibration(self) -> Section:
        hists = self.run.histograms()
        body = (
            paragraph(
                "Do predicted probabilities match observed rates? Test rows are split into 10 "
                "groups of about equal size by score; each point compares the group's mean "
                "predicted probability with its observed positive rate.",
                "lead",
            )
            + '<div class="figs">'
        )
        body += self.fig(
            "calibration",
            lambda: plots.calibration_png(hists),
            "Calibration curve",
            "Points on the diagonal are perfectly calibrated. ECE: expected "
            "calibration error (row-weighted mean gap). Below: rows per score.",
        )
        cal = calibration_curve(*hists["global"])
        rows = [
            (i + 1, _f(p), _f(o), _int(n))
            for i, (p, o, n) in enumerate(
                zip(cal.mean_predicted, cal.observed_rate, cal.counts, strict=True)
            )
        ]
        body += side(
            "<h3>Federated model, per group</h3>"
            + table(["group", "mean predicted", "observed rate", "rows"], rows)
            + paragraph(f"Expected calibration error: {cal.ece:.3f}.")
        )
        return Section("calibration", "Calibration", body + "</div>")

    def ks(self) -> Section:
        hists = self.run.histograms()
        body = (
            paragraph(
                "The Kolmogorov-Smirnov statistic (credit-scoring convention): the largest gap "
                "between the cumulative score distributions of negatives and positives.",
                "lead",
            )
            + '<div class="figs">'
        )
        body += self.fig(
            "ks",
            lambda: plots.ks_png(hists),
            "KS curve",
            "The dashed line marks the score threshold where the two groups are best separated.",
        )
        rows = []
        for name in plots.ordered_models(hists):
            curve = ks_curve(*hists[name])
            rows.append((plots.model_label(name), _f(curve.ks), _f(curve.ks_threshold)))
        body += side(
            "<h3>KS of every model</h3>"
            + table(["model", "KS", "at score"], rows)
            + paragraph(
                "Higher KS separates positives from negatives better; "
                "credit-scoring practice reads 0.4–0.6 as good."
            )
        )
        return Section("ks", "KS curve", body + "</div>")

    def gains(self) -> Section:
        hists = self.run.histograms()
        body = (
            paragraph(
                "Targeting view: rank customers by score and contact the top deciles. Gains show "
                "the share of positives reached; lift shows how many times the overall rate each "
                "decile achieves.",
                "lead",
            )
            + '<div class="figs">'
        )
        body += self.fig(
            "gains_lift",
            lambda: plots.gains_lift_png(hists),
            "Cumulative gains and lift by decile",
            "Left: all models; right: the federated model.",
            wide=True,
        )
        body += "</div><h3>Decile table, federated model (pooled test set)</h3>"
        rows = [
            (
                r.decile,
                f"{r.score_min:.3f} – {r.score_max:.3f}",
                _int(r.rows),
                _int(r.positives),
                _f(r.response_rate),
                f"{r.cumulative_captured * 100:.1f}%",
                f"{r.lift:.2f}",
                f"{r.cumulative_lift:.2f}",
            )
            for r in decile_table(*hists["global"])
        ]
        body += table(
            [
                "decile",
                "score range",
                "rows",
                "positives",
                "positive rate",
                "cumulative positives captured",
                "lift",
                "cumulative lift",
            ],
            rows,
        )
        body += paragraph(
            "Rows sharing one histogram bin at a decile boundary are split in proportion, so "
            "row counts are rounded.",
            "lead",
        )
        return Section("gains", "Gains and lift", body)

    def _round_series(self) -> tuple[list[int], dict[str, list]]:
        rounds = [r for r in self.run.rounds if r.get("global")]
        numbers = [int(r["round"]) for r in rounds]
        keys = ("roc_auc", "pr_auc", "ks", "log_loss", "brier")
        return numbers, {k: [r["global"].get(k) for r in rounds] for k in keys}

    def training(self) -> Section | None:
        numbers, series = self._round_series()
        if not numbers:
            return None
        body = (
            paragraph(
                "The global model after each round, evaluated by the nodes on their held-out "
                "splits and pooled through score histograms.",
                "lead",
            )
            + '<div class="figs">'
        )
        body += self.fig(
            "rounds",
            lambda: plots.rounds_png(numbers, series, self.baseline_auc("centralised")),
            "Global metrics per round",
            "Left: ranking metrics; right: losses.",
            wide=True,
        )
        body += "</div>"
        rows = []
        for r in self.run.rounds:
            eps = [t.get("epsilon") for t in r.get("train", {}).values()]
            eps = [e for e in eps if e is not None]
            g = r.get("global", {})
            rows.append(
                (
                    r.get("round"),
                    len(r.get("train", {})),
                    ", ".join(r.get("refused", {})) or "none",
                    _f(g.get("roc_auc")),
                    _f(g.get("pr_auc")),
                    _f(g.get("ks")),
                    _f(g.get("log_loss")),
                    _f(max(eps)) if eps else "n/a",
                )
            )
        body += table(
            [
                "round",
                "nodes trained",
                "refused",
                "ROC-AUC",
                "PR-AUC",
                "KS",
                "log-loss",
                "largest ε so far",
            ],
            rows,
            text_columns=(0, 2),
        )
        return Section("training", "Training rounds", body)

    def privacy_budget(self) -> Section | None:
        numbers = [int(r["round"]) for r in self.run.rounds if r.get("train")]
        if not numbers:
            return None
        epsilon = {
            node: [
                r.get("train", {}).get(node, {}).get("epsilon")
                for r in self.run.rounds
                if r.get("train")
            ]
            for node in self.run.node_names
        }
        budgets = {n.node: n.budget_per_run for n in self.facts.nodes}
        if self.run.dp.get("enabled"):
            body = (
                paragraph(
                    "Each node's cumulative ε for this run after every round (one accountant "
                    "per node for the whole run), against the node's own per-run limit from its "
                    "policy.",
                    "lead",
                )
                + '<div class="figs">'
            )
            body += self.fig(
                "epsilon",
                lambda: plots.epsilon_png(numbers, epsilon, budgets),
                "Privacy budget per node per round",
                "Dashed: the node's budget per run; a node refuses any round that would exceed it.",
            )
            body += "</div>"
        else:
            body = paragraph("DP was off: no ε was spent and no guarantee holds.", "bad")
        rows = [
            (
                n.node,
                _f(n.budget_per_run, 2),
                _f(n.epsilon_spent),
                _f(n.noise_multiplier),
                _int(n.steps),
                _f(n.lifetime_epsilon, 2),
                f"{_f(n.lifetime_spent_before, 2)} → {_f(n.lifetime_spent_after, 2)}",
            )
            for n in self.facts.nodes
        ]
        body += table(
            [
                "node",
                "budget per run (ε)",
                "ε spent",
                "noise multiplier",
                "DP-SGD steps",
                "lifetime budget (ε)",
                "ledger: lifetime spent",
            ],
            rows,
        )
        return Section("privacy-budget", "Privacy budget per node", body)

    def nodes(self) -> Section:
        node_metrics = self.run.metrics.get("nodes", {})
        names = [n for n in self.run.node_names if n in node_metrics]
        fed = [node_metrics[n]["global_model_on_own_test"].get("roc_auc") for n in names]
        alone = [self.baseline_auc(f"local_only:{n}", "own") for n in names]
        series = {"federated model": fed}
        if any(a is not None for a in alone):
            series["node alone (local only)"] = alone
        glob = self.run.metrics.get("global", {}).get("roc_auc")
        body = (
            paragraph(
                "Each node's own held-out split, scored by the federated model and by a model the "
                "node trained alone with the same preprocessing and DP settings.",
                "lead",
            )
            + '<div class="figs">'
        )
        body += self.fig(
            "auc_per_node",
            lambda: plots.auc_per_node_png(names, series, glob),
            "Per-node ROC-AUC",
            "Bars start at 0.5 (random ranking).",
        )
        rows = []
        for n, f_auc, a_auc in zip(names, fed, alone, strict=True):
            gain = None if f_auc is None or a_auc is None else f_auc - a_auc
            rows.append(
                (n, _f(f_auc), _f(a_auc), _signed(gain), _f(self.baseline_auc(f"local_only:{n}")))
            )
        body += side(
            "<h3>ROC-AUC per node</h3>"
            + table(
                ["node", "federated, own test", "alone, own test", "gain", "alone, pooled test"],
                rows,
            )
            + paragraph(
                "A positive gain is what the node obtains by joining the federation; "
                "small nodes usually gain most."
            )
        )
        return Section("nodes", "Per-node vs global", body + "</div>")

    def privacy(self) -> Section:
        facts = self.facts
        dp = facts.dp
        cfg = self.run.config
        train = cfg.get("train", {})
        enabled = bool(dp.get("enabled"))
        dp_rows = [
            ("DP-SGD (sample-level, Opacus)", "on" if enabled else "OFF"),
            (
                "target ε per node per run",
                _f(dp.get("epsilon_target", dp.get("epsilon")), 2) if enabled else "n/a",
            ),
            ("δ", str(dp.get("delta")) if enabled else "n/a"),
            ("clipping norm (max_grad_norm)", str(dp.get("max_grad_norm", "n/a"))),
            ("accountant", str(dp.get("accountant", "n/a"))),
            (
                "secure RNG (secure_mode)",
                "on" if dp.get("secure_mode") else "off (development mode)",
            ),
            ("per-sample gradients", str(dp.get("grad_sample_mode", "n/a"))),
            (
                "rounds × local epochs, batch size",
                f"{cfg.get('rounds')} × {train.get('local_epochs')}, {train.get('batch_size')}",
            ),
        ]
        body = "<h3>Differential privacy</h3>" + table(
            ["parameter", "value"], dp_rows, text_columns=(0, 1)
        )
        body += "<h3>Transport and aggregation</h3>" + table(
            ["", "status"],
            [
                ("transport", facts.transport),
                ("secure aggregation", facts.secure_aggregation),
                ("client-level DP (on top of DP-SGD)", facts.client_dp),
                ("strategy", str(cfg.get("strategy", {}).get("name", "n/a"))),
            ],
            text_columns=(0, 1),
        )
        body += "<h3>Compliance findings</h3>"
        summary_rows = []
        for n in facts.nodes:
            counts = {
                s: sum(1 for f in n.findings if f.severity == s) for s in ("ERROR", "WARN", "INFO")
            }
            summary_rows.append(
                (
                    n.node,
                    counts["ERROR"],
                    counts["WARN"],
                    counts["INFO"],
                    n.policy_error or "policy loaded",
                )
            )
        body += paragraph(
            "The shared rule engine (the same rules every node enforces before training) run on "
            "this job for every node. INFO entries record each field's use; they are listed "
            "as the 'used as' column below.",
            "lead",
        )
        body += table(
            ["node", "errors", "warnings", "field-use records", "policy"],
            summary_rows,
            text_columns=(0, 4),
        )
        problems = facts.problems
        if problems:
            body += table(
                ["severity", "rule", "node", "field", "finding"],
                [(f.severity, f.rule_id, f.node, f.field or "", f.message) for f in problems],
                text_columns=(0, 1, 2, 3, 4),
            )
        else:
            body += paragraph("No findings: no errors or warnings on any node.", "good")
        body += "<h3>Tiers and transforms per node</h3>"
        body += self._policy_tables()
        return Section("privacy", "Privacy", body)

    def _policy_tables(self) -> str:
        task = self.run.config.get("task", {})
        features = {str(f["name"]) for f in task.get("features", [])}
        label = str(task.get("label", {}).get("name", ""))
        groups: dict[str, list] = {}
        for n in self.facts.nodes:
            key = n.policy.sha256 if n.policy is not None else f"missing:{n.node}"
            groups.setdefault(key, []).append(n)
        out = []
        for members in groups.values():
            first = members[0]
            names = ", ".join(m.node for m in members)
            if first.policy is None:
                out.append(paragraph(f"{names}: {first.policy_error}", "bad"))
                continue
            policy = first.policy
            tiers: dict[str, int] = {}
            rows = []
            for col in policy.columns.values():
                tiers[col.tier.value] = tiers.get(col.tier.value, 0) + 1
                use = (
                    "feature"
                    if col.task_name in features
                    else "label"
                    if col.task_name == label
                    else "not used"
                )
                if use == "feature" and col.tier.value == "general_sensitive":
                    use += " (under DP)" if self.run.dp.get("enabled") else " (NO DP)"
                task_field = col.maps_to if col.maps_to and col.maps_to != col.name else ""
                rows.append((col.name, col.tier.value, col.role, col.transform, task_field, use))
            tier_text = ", ".join(f"{count} {tier}" for tier, count in tiers.items())
            out.append(
                f"<p><b>{escape(names)}</b>: policy <code>{escape(Path(policy.source).name)}"
                f"</code> (dataset '{escape(policy.dataset)}', dataset tier "
                f"{escape(policy.tier.value)}; {escape(tier_text)}; unknown columns: "
                f"{escape(policy.unknown_columns)})</p>"
            )
            out.append(
                table(
                    ["column", "tier", "role", "transform", "feeds task field", "used as"],
                    rows,
                    text_columns=(0, 1, 2, 3, 4, 5),
                )
            )
        return "".join(out)

    def data(self) -> Section:
        node_metrics = self.run.metrics.get("nodes", {})
        total = sum(int(m.get("rows", 0)) for m in node_metrics.values()) or 1
        rows = [
            (
                n,
                _int(m.get("rows")),
                f"{100 * m.get('rows', 0) / total:.1f}%",
                _int(m.get("train_rows")),
                _int(m.get("test_rows")),
                _f(m.get("positive_rate")),
                _f(m.get("global_model_on_own_test", {}).get("positive_rate")),
            )
            for n, m in node_metrics.items()
        ]
        glob = self.run.metrics.get("global", {})
        rows.append(
            ("pooled test set", "", "", "", _int(glob.get("n")), "", _f(glob.get("positive_rate")))
        )
        body = paragraph(
            f"Row counts and label rates (positive means {self.positive}) as each node "
            "reported them; no raw value leaves a node and none is shown here.",
            "lead",
        )
        body += table(
            [
                "node",
                "rows",
                "share of rows",
                "train rows",
                "test rows",
                "positive rate (train)",
                "positive rate (test)",
            ],
            rows,
        )
        return Section("data", "Data", body)

    def outcome(self) -> Section:
        o = self.run.outcome
        body = paragraph(
            f"The run stopped after {o.get('rounds_completed', 0)} completed round(s): "
            f"{o.get('message', '')}",
            "bad",
        )
        reasons = o.get("reasons") or {}
        if reasons:
            body += table(["node", "reason"], list(reasons.items()), text_columns=(0, 1))
        body += paragraph(
            "No global model was saved and no test metrics were computed. Fix the refusals "
            "above (usually a node's policy or budget) and run again.",
            "lead",
        )
        return Section("outcome", "Why the run stopped", body)

    def stopped_summary(self) -> Section:
        body = paragraph(
            f"{len(self.run.node_names)} nodes ({', '.join(self.run.node_names)}) started a run "
            f"of {self.run.config.get('rounds')} rounds {self.dp_phrase()}. The run did NOT "
            "complete.",
            "bad",
        )
        return Section("summary", "Summary", body)


def build_report(run: RunData) -> tuple[str, dict[str, bytes]]:
    """The report's HTML and its PNGs (``{file name: bytes}``) for a loaded run."""
    b = _Builder(run)
    if run.completed and run.histograms():
        candidates = [
            b.summary(),
            b.discrimination(),
            b.calibration(),
            b.ks(),
            b.gains(),
            b.training(),
            b.privacy_budget(),
            b.nodes(),
            b.privacy(),
            b.data(),
        ]
    else:
        candidates = [
            b.stopped_summary(),
            b.outcome(),
            b.training(),
            b.privacy_budget(),
            b.privacy(),
        ]
    sections = [s for s in candidates if s is not None]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    html = page(
        "Confide run report",
        b.subtitle(),
        sections,
        f"Generated by Confide on {stamp} from the run directory's aggregate files "
        "(score histograms, metrics, history, ledgers, policies); regenerate with "
        "`confide report RUN_DIR`.",
    )
    return html, b.pngs


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` and ``report/<plot>.png`` into a run directory; returns the HTML."""
    run_dir = Path(run_dir)
    html, pngs = build_report(load_run(run_dir))
    for name, png in pngs.items():
        atomic_write_bytes(run_dir / REPORT_DIR / name, png)
    out = run_dir / REPORT_FILE
    atomic_write_text(out, html)
    return out
