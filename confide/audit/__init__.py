"""`confide audit`: the compliance review of a job, before it runs.

Three parts: :mod:`~confide.audit.facts` reads what the review needs (each node's policy, data
header and row count, key file, budget ledger; the federation's protections), never a data
value; :mod:`~confide.audit.review` runs the shared rule engine on them and collects an
:class:`AuditReport`; :mod:`~confide.audit.render` writes it as Markdown, JSON or HTML.
"""

from .facts import ColumnView, NodeView
from .render import FORMATS, AuditFormatError, render, render_html, render_json, render_markdown
from .review import AuditReport, audit, audit_config, config_sha256

__all__ = [
    "FORMATS",
    "AuditFormatError",
    "AuditReport",
    "ColumnView",
    "NodeView",
    "audit",
    "audit_config",
    "config_sha256",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
]
