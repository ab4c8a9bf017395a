"""The review: compose the config as a run composes it, gather each node's facts
(:mod:`confide.audit.facts`), run the shared rule engine, and collect an :class:`AuditReport`.

The config is composed and resolved exactly as a run composes it (:func:`compose_config`,
:func:`to_container`, :func:`parse_job`, :func:`preflight_config`). :func:`privacy.evaluate_job`
is the very function every node runs at job start (``clients.node_data.check_node_rules``), fed
the same :class:`privacy.JobUsage`; the config-level rules (transport, inline secrets, widening
overrides, node files) come from the same registry (:func:`privacy.evaluate_config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from confide.config import compose_config, to_container
from confide.privacy import (
    ConfigReview,
    Finding,
    JobUsage,
    NodeFacts,
    evaluate_config,
    evaluate_job,
)
from confide.settings import parse_secure

from .facts import (
    NodeView,
    client_dp_text,
    column_views,
    config_sha256,
    data_facts,
    job_or_error,
    keys_status,
    load_node_policy,
    message_lines,
    node_ledger,
    output_lines,
    raw_policy,
    route_findings,
    sample_dp,
    secagg_text,
    tolerant_nodes,
    transport_text,
)
from .verdict import Verdict

__all__ = ["AuditReport", "audit", "audit_config", "config_sha256"]


@dataclass
class AuditReport(Verdict):
    """Everything the review found; rendered by :mod:`confide.audit.render`."""

    federation: str
    task: str
    model: str
    strategy: str
    rounds: int | None
    overrides: list[str]
    config_dirs: list[str]
    config_sha256: str
    sample_dp: dict[str, Any]
    client_dp: str
    secure_aggregation: str
    transport: str
    messages: list[str]
    outputs: list[str]
    nodes: list[NodeView]
    findings: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        out = dataclasses.asdict(self)
        out["findings"] = [dataclasses.asdict(f) for f in self.findings]
        for node, view in zip(out["nodes"], self.nodes, strict=True):
            node["findings"] = [dataclasses.asdict(f) for f in view.findings]
            node["lifetime_remaining_after_run"] = view.lifetime_remaining_after_run
        out["summary"] = {s: self.count(s) for s in ("ERROR", "WARN", "INFO")}
        out["exit_code"] = self.exit_code
        return out


# --------------------------------------------------------------------------- audit


def audit_config(
    config: Mapping[str, Any],
    *,
    raw_config: Mapping[str, Any] | None = None,
    baseline: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    config_dirs: Sequence[str | Path] = (),
) -> AuditReport:
    """Review a resolved config (plain dicts); see :func:`audit` for composing one. A
    ``kind: vertical`` federation is reviewed as a vertical job (:mod:`confide.audit.vertical`).
    """
    config = dict(config)
    if (config.get("federation") or {}).get("kind") == "vertical":
        from .vertical import audit_vertical_config

        return audit_vertical_config(  # type: ignore[return-value]
            config,
            raw_config=raw_config,
            baseline=baseline,
            overrides=overrides,
            config_dirs=config_dirs,
        )
    job, job_error = job_or_error(config)
    task = config.get("task") or {}
    if job is not None:
        features, label = job.task.feature_names, job.task.label.name
        nodes = list(job.nodes)
        test_fraction, seed = job.test_fraction, job.seed
    else:
        features = [
            str(f.get("name")) for f in task.get("features") or [] if isinstance(f, Mapping)
        ]
        label = str((task.get("label") or {}).get("name", ""))
        nodes = tolerant_nodes(config)
        try:
            test_fraction = float((config.get("split") or {}).get("test_fraction", 0.2))
            seed = int(config.get("seed", 42))
        except (TypeError, ValueError):
            test_fraction, seed = 0.2, 42
    dp = dict(config.get("dp") or {})
    dp_on = dp.get("enabled") is True
    try:
        epsilon = float(dp["epsilon"]) if dp_on else None
        delta = float(dp["delta"]) if dp_on else None
    except (KeyError, TypeError, ValueError):
        epsilon, delta = None, None
    secure = parse_secure(config)
    secagg, client_dp = secure.secagg.enabled, secure.client_dp.enabled
    views, facts = [], []
    for node in nodes:
        generated = node.profile is not None or node.part is not None
        status, source, header, n_train, basis = data_facts(node, config, seed, test_fraction)
        policy, policy_finding = load_node_policy(node)
        view = NodeView(node.name, source, raw_policy(config, node))
        view.ledger, spent, ledger_error = node_ledger(node, generated, policy, read=dp_on)
        crypto = (
            tuple(c.name for c in policy.columns.values() if c.spec.needs_key) if policy else ()
        )
        key_state = keys_status(node, generated)
        view.keys = {
            "generated": "generated at run time (synthetic)",
            "not-configured": "none configured",
        }.get(key_state, f"{node.keys} ({key_state})")
        facts.append(NodeFacts(node.name, status, key_state, crypto, ledger_error))
        effective = policy
        if policy is not None:
            cap = node.max_epsilon_per_run
            if cap is not None and cap < policy.dp.max_epsilon_per_run:
                effective = dataclasses.replace(
                    policy, dp=dataclasses.replace(policy.dp, max_epsilon_per_run=cap)
                )
        usage = JobUsage(
            node=node.name,
            features=list(features),
            label=label,
            dp_enabled=dp_on,
            epsilon_per_run=epsilon,
            delta=delta,
            n_train_rows=n_train,
            lifetime_spent=spent,
            data_columns=header,
        )
        if policy_finding is not None:
            findings = [policy_finding]
        else:
            findings = evaluate_job(effective, usage)
        view.findings = findings
        view.train_rows, view.train_rows_basis = n_train, basis
        if policy is not None and effective is not None:
            view.policy_sha256, view.dataset = policy.sha256, policy.dataset
            view.dataset_tier = policy.tier.value
            view.max_epsilon_per_run = effective.dp.max_epsilon_per_run
            view.max_delta, view.lifetime_epsilon = policy.dp.max_delta, policy.dp.lifetime_epsilon
            view.lifetime_spent, view.planned_epsilon = spent, epsilon
            refused = any(f.severity == "ERROR" for f in findings)
            targets = job.task.target_names if job is not None else label
            view.columns = column_views(
                policy, list(features), targets, refused, dp, secagg, client_dp
            )
        elif policy_finding is not None:
            view.policy_error = policy_finding.message
        views.append(view)
    review = ConfigReview(
        config=config,
        raw_config=raw_config,
        baseline=baseline,
        overrides=tuple(overrides),
        nodes=tuple(facts),
        job_error=job_error,
    )
    federation_findings = route_findings(evaluate_config(review), views)
    rounds = config.get("rounds")
    return AuditReport(
        federation=str((config.get("federation") or {}).get("name", "?")),
        task=str(task.get("name", "?")),
        model=str((config.get("model") or {}).get("name", "?")),
        strategy=str((config.get("strategy") or {}).get("name", "?")),
        rounds=int(rounds) if isinstance(rounds, int) else None,
        overrides=list(overrides),
        config_dirs=[str(d) for d in config_dirs],
        config_sha256=config_sha256(config),
        sample_dp=sample_dp(dp, rounds, config.get("train") or {}),
        client_dp=client_dp_text(config),
        secure_aggregation=secagg_text(config),
        transport=transport_text(config),
        messages=message_lines(config),
        outputs=output_lines(config),
        nodes=views,
        findings=federation_findings,
    )


def audit(overrides: Sequence[str] = (), config_dirs: Sequence[str | Path] = ()) -> AuditReport:
    """Compose the config exactly as a run would (same functions, same overrides) and review it
    (a config with an ``analysis`` section: the analysis, :mod:`confide.audit.analysis`; a
    ``kind: vertical`` federation: the vertical job, :mod:`confide.audit.vertical`).

    Overrides are judged against the same composition without them (``OVERRIDE-WIDENS``).
    """
    cfg = compose_config(list(overrides), list(config_dirs))
    config = to_container(cfg)
    raw = OmegaConf.to_container(cfg, resolve=False)
    baseline = to_container(compose_config([], list(config_dirs))) if overrides else None
    if config.get("analysis") is not None:  # confide audit analysis=NAME: review the analysis
        from .analysis import audit_analysis_config

        return audit_analysis_config(  # type: ignore[return-value]
            config,
            raw_config=raw,  # type: ignore[arg-type]
            baseline=baseline,  # type: ignore[arg-type]
            overrides=overrides,
            config_dirs=config_dirs,
        )
    return audit_config(
        config,
        raw_config=raw,
        baseline=baseline,  # type: ignore[arg-type]
        overrides=overrides,
        config_dirs=config_dirs,
    )
