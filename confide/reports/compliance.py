"""The privacy section's facts: DP parameters, each node's tiers and transforms, transport,
secure aggregation, and the shared rule engine's findings for the run's job on every node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confide.privacy import JobUsage, Policy, evaluate_job, load_policy
from confide.privacy.errors import PrivacyError
from confide.settings import DeploymentSettings, SecureSettings, parse_deployment, parse_secure

from .rundata import RunData, node_budget, resolve_policy_path

__all__ = ["NodePrivacy", "PrivacyFacts", "privacy_facts"]


@dataclass(frozen=True)
class NodePrivacy:
    """One node's policy, limits, spend and findings."""

    node: str
    policy_path: str
    policy: Policy | None
    policy_error: str | None
    budget_per_run: float | None
    lifetime_epsilon: float | None
    lifetime_spent_before: float | None
    lifetime_spent_after: float | None
    epsilon_spent: float | None
    noise_multiplier: float | None
    steps: float | None
    findings: list = field(default_factory=list)


@dataclass(frozen=True)
class PrivacyFacts:
    """What the privacy section shows."""

    dp: dict[str, Any]
    transport: str
    secure_aggregation: str
    client_dp: str
    nodes: list[NodePrivacy]

    @property
    def problems(self) -> list:
        """ERROR and WARN findings over all nodes."""
        return [f for n in self.nodes for f in n.findings if f.severity in ("ERROR", "WARN")]


def _transport(deployment: DeploymentSettings, config: dict[str, Any]) -> str:
    if deployment.transport == "insecure":
        return "Flower deployment engine, INSECURE (no TLS): for local demos only"
    if deployment.transport == "tls":
        return "Flower deployment engine, TLS"
    backend = (config.get("simulation") or {}).get("backend", "ray")
    return f"local simulation engine (Flower, {backend} backend), no network transport"


def _secagg(secure: SecureSettings) -> str:
    """SecAgg+ status from ``secure.secagg`` (off unless ``enabled: true``)."""
    secagg = secure.secagg
    if not secagg.enabled:
        return "off"
    details = ", ".join(f"{k}={v}" for k, v in secagg.workflow_kwargs().items())
    return f"SecAgg+ on ({details})"


def _last_train(run: RunData, node: str) -> dict[str, Any]:
    for record in reversed(run.rounds):
        if node in record.get("train", {}):
            return record["train"][node]
    return {}


def _total_steps(run: RunData, node: str) -> float | None:
    steps = [r["train"][node].get("steps") for r in run.rounds if node in r.get("train", {})]
    steps = [s for s in steps if s is not None]
    return float(sum(steps)) if steps else None


def _this_run_charge(ledger: dict[str, Any], run_id: str) -> float:
    return sum(
        max(float(r.get("reserved_epsilon", 0.0)), float(r.get("spent_epsilon", 0.0)))
        for r in ledger.get("runs", [])
        if r.get("run_id") == run_id
    )


def privacy_facts(run: RunData) -> PrivacyFacts:
    """Collect the privacy section: load each node's policy and run the job rules on it."""
    secure = parse_secure(run.config)
    dp = run.dp
    task = run.config.get("task", {})
    features = [str(f["name"]) for f in task.get("features", [])]
    label = str(task.get("label", {}).get("name", ""))
    enabled = bool(dp.get("enabled"))
    epsilon = dp.get("epsilon_target", dp.get("epsilon")) if enabled else None
    delta = dp.get("delta") if enabled else None
    node_metrics = run.metrics.get("nodes", {})
    nodes = []
    for node_cfg in run.config.get("federation", {}).get("nodes", []):
        name = str(node_cfg["name"])
        raw_path = str(node_cfg.get("policy", ""))
        policy, error = None, None
        path = resolve_policy_path(raw_path, run.run_dir) if raw_path else None
        if path is None:
            error = f"policy file not found: {raw_path or '(none recorded)'}"
        else:
            try:
                policy = load_policy(path)
            except PrivacyError as exc:
                error = str(exc)
        ledger = run.ledgers.get(name, {})
        after = ledger.get("lifetime_spent")
        before = None if after is None else max(0.0, after - _this_run_charge(ledger, run.run_id))
        train = _last_train(run, name)
        findings = []
        if policy is not None:
            usage = JobUsage(
                node=name,
                features=features,
                label=label,
                dp_enabled=enabled,
                epsilon_per_run=None if epsilon is None else float(epsilon),
                delta=None if delta is None else float(delta),
                n_train_rows=node_metrics.get(name, {}).get("train_rows"),
                lifetime_spent=before or 0.0,
            )
            findings = evaluate_job(policy, usage)
        nodes.append(
            NodePrivacy(
                node=name,
                policy_path=raw_path,
                policy=policy,
                policy_error=error,
                budget_per_run=node_budget(
                    node_cfg, policy.dp.max_epsilon_per_run if policy else None
                ),
                lifetime_epsilon=policy.dp.lifetime_epsilon if policy else None,
                lifetime_spent_before=before,
                lifetime_spent_after=after,
                epsilon_spent=train.get("epsilon", node_metrics.get(name, {}).get("epsilon")),
                noise_multiplier=train.get("noise_multiplier"),
                steps=_total_steps(run, name),
                findings=findings,
            )
        )
    return PrivacyFacts(
        dp,
        _transport(parse_deployment(run.config), run.config),
        _secagg(secure),
        secure.client_dp.describe(),
        nodes,
    )
