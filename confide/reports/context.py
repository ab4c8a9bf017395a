"""What every report section reads: the loaded run, its privacy facts, the PNGs collected so
far, and the number formats the sections share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .compliance import PrivacyFacts, privacy_facts
from .html_page import figure
from .rundata import RunData

__all__ = ["ReportContext", "fmt_int", "fmt_num", "fmt_signed"]


def fmt_num(value: Any, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; ``n/a`` for None, the text itself for a non-number."""
    if value is None:
        return "n/a"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def fmt_signed(value: float | None) -> str:
    """A difference with its sign (``+0.012``); ``n/a`` for None."""
    return "n/a" if value is None else f"{value:+.3f}"


def fmt_int(value: Any) -> str:
    """A count rounded to a whole number with thousands separators; ``n/a`` for None."""
    return "n/a" if value is None else f"{round(float(value)):,}"


class ReportContext:
    """One report being built: the run, its privacy facts and the PNGs of its figures."""

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
        """Render a plot, keep its PNG as ``<name>.png`` and return its ``<figure>`` HTML."""
        png = make()
        self.pngs[f"{name}.png"] = png
        return figure(png, alt, caption, wide)

    @property
    def baselines(self) -> dict[str, Any]:
        """The run's baseline metrics by name (empty when baselines were not run)."""
        return self.run.metrics.get("baselines", {}) or {}

    def baseline_auc(self, name: str, where: str = "pooled") -> float | None:
        """A baseline's ROC-AUC on the pooled (or the node's ``own``) test set, if run."""
        entry = self.baselines.get(name) or {}
        return (entry.get(where) or {}).get("roc_auc")

    def subtitle(self) -> str:
        """The page's subtitle: run id, federation, nodes, task, model, strategy, rounds."""
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
        """How the run was trained, in words: with DP-SGD at which ε and δ, or without DP."""
        dp = self.run.dp
        if not dp.get("enabled"):
            return "WITHOUT differential privacy (dp=off)"
        target = fmt_num(dp.get("epsilon_target", dp.get("epsilon")), 2)
        return f"with DP-SGD at a target of ε = {target} per node per run (δ = {dp.get('delta')})"
