"""`confide audit` reviews a survival task: duration and event are general-sensitive columns
used as labels (control: the binary churn task does not use the duration at all)."""

from __future__ import annotations

from confide.audit.review import audit


def _uses(report) -> dict[str, tuple[str, str, str | None]]:
    node = report.nodes[0]
    return {c.name: (c.tier, c.role, c.task_use) for c in node.columns}


def test_audit_shows_duration_and_event_as_general_sensitive_labels():
    report = audit(["task=time_to_churn"])
    assert not [f for f in report.all_findings if f.severity == "ERROR"]
    uses = _uses(report)
    assert uses["retention_months"] == ("general_sensitive", "label", "label 'retention_months'")
    assert uses["churn_event"] == ("general_sensitive", "label", "label 'churn_event'")
    assert uses["churned"][2] is None  # the binary label is not used by this task


def test_control_the_binary_task_leaves_the_survival_columns_unused():
    uses = _uses(audit([]))
    assert uses["retention_months"][2] is None and uses["churn_event"][2] is None
    assert uses["churned"][2] == "label 'churned'"
