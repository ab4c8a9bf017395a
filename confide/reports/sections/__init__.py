"""The sections of ``report.html``, one module each; every section is a function of the
:class:`~confide.reports.context.ReportContext` returning a ``Section`` (or None when the run
has nothing to show for it)."""

from .calibration import calibration
from .data import data
from .discrimination import discrimination
from .gains import gains
from .ks import ks
from .nodes import nodes
from .outcome import outcome
from .privacy import privacy
from .privacy_budget import privacy_budget
from .summary import stopped_summary, summary
from .survival import survival_calibration, survival_curves, survival_rounds, survival_summary
from .training import training
from .vertical import (
    vertical_protocol,
    vertical_stopped_summary,
    vertical_subtitle,
    vertical_summary,
)

__all__ = [
    "calibration",
    "data",
    "discrimination",
    "gains",
    "ks",
    "nodes",
    "outcome",
    "privacy",
    "privacy_budget",
    "stopped_summary",
    "summary",
    "survival_calibration",
    "survival_curves",
    "survival_rounds",
    "survival_summary",
    "training",
    "vertical_protocol",
    "vertical_stopped_summary",
    "vertical_subtitle",
    "vertical_summary",
]
