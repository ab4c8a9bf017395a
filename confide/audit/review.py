"""`confide audit`: the compliance review of a job, before it runs.

The config is composed and resolved exactly as a run composes it (:func:`compose_config`,
:func:`to_container`, :func:`parse_job`). For every node the review reads its policy, the header
of its data (never a value; rows are only counted) and, read-only, its budget ledger, and runs
the shared rule engine on it: :func:`privacy.evaluate_job` is the very function every node runs
at job start (``clients.node_data.check_node_rules``), fed the same :class:`privacy.JobUsage`.
The config-level rules (transport, inline secrets, widening overrides, node files) come from
the same registry (:func:`privacy.evaluate_config`). Rendering lives in
:mod:`confide.audit_report`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from confide.clients.node_data import train_rows
from confide.config import compose_config, to_container
from confide.job import Job, NodeSpec, parse_job, preflight_config, resolve_path
from confide.modeling.errors import ConfideError
from confide.privacy import (
    RULES,
    ConfigReview,
    Finding,
    JobUsage,
    NodeFacts,
    Policy,
    PolicyError,
    evaluate_config,
    evaluate_job,
    load_policy,
)
from confide.privacy.budget_ledger import BudgetLedger, LedgerError
from confide.privacy.review_rules import FEDERATION, transport
from confide.privacy.run_ledger import canonical_json
from confide.settings import parse_secure

__all__ = ["AuditReport", "ColumnView", "NodeView", "audit", "audit_config", "config_sha256"]

_SYNTHETIC_POLICY = "pkg://confide.simulations/policies/synthetic_customers.yaml"


def config_sha256(config: Mapping[str, Any]) -> str:
    """SHA-256 of the resolved config's canonical JSON (the run ledger records the same)."""
    return hashlib.sha256(canonical_json(config)).hexdigest()


@dataclass(frozen=True)
class ColumnView:
    """One policy column as the review shows it."""

    name: str
    tier: str
    role: str
    transform: str
    task_use: str | None
    leaves: str


@dataclass
class NodeView:
    """One node: its data source, policy, privacy limits and budget, columns and findings."""

    name: str
    source: str
    policy_path: str
    policy_sha256: str | None = None
    dataset: str | None = None
    dataset_tier: str | None = None
    policy_error: str | None = None
    train_rows: int | None = None
    train_rows_basis: str = "unknown"
    max_epsilon_per_run: float | None = None
    max_delta: float | None = None
    lifetime_epsilon: float | None = None
    lifetime_spent: float | None = None
    planned_epsilon: float | None = None
    ledger: str = ""
    keys: str = ""
    columns: list[ColumnView] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def lifetime_remaining_after_run(self) -> float | None:
        """Lifetime epsilon left after this job's planned epsilon (None without DP limits)."""
        if self.lifetime_epsilon is None or self.lifetime_spent is None:
            return None
        return self.lifetime_epsilon - self.lifetime_spent - (self.planned_epsilon or 0.0)


@dataclass
class AuditReport:
    """Everything the review found; rendered by :mod:`confide.audit_report`."""

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

    @property
    def all_findings(self) -> list[Finding]:
        """Federation-level findings, then each node's."""
        return [*self.findings, *(f for n in self.nodes for f in n.findings)]

    def count(self, severity: str) -> int:
        """How many findings have ``severity``."""
        return sum(1 for f in self.all_findings if f.severity == severity)

    @property
    def exit_code(self) -> int:
        """1 when any finding is an ERROR, else 0."""
        return 1 if self.count("ERROR") else 0

    def node_errors(self, node: str) -> list[str]:
        """Rule ids of ``node``'s ERROR findings (node rules and node-file rules)."""
        return sorted(
            {f.rule_id for f in self.all_findings if f.node == node and f.severity == "ERROR"}
        )

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


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class _Node:
    """A node as far as the config describes it (tolerant of an invalid job)."""

    name: str
    policy: Path | None
    data: Path | None = None
    profile: str | None = None
    rows: int | None = None
    keys: Path | None = None
    ledger: Path | None = None
    max_epsilon_per_run: float | None = None
    partitioned: bool = False


def _from_spec(spec: NodeSpec) -> _Node:
    return _Node(
        spec.name,
        spec.policy,
        spec.data,
        spec.profile,
        spec.rows,
        spec.keys,
        spec.ledger,
        spec.max_epsilon_per_run,
        spec.part is not None,
    )


def _path(raw: Any) -> Path | None:
    if not raw:
        return None
    try:
        return resolve_path(raw, "federation")
    except ConfideError:
        return None


def _tolerant_nodes(config: Mapping[str, Any]) -> list[_Node]:
    """Nodes read straight from ``federation.nodes`` when the job itself does not validate."""
    out = []
    for i, raw in enumerate((config.get("federation") or {}).get("nodes") or []):
        if not isinstance(raw, Mapping):
            continue
        cap = raw.get("max_epsilon_per_run")
        try:
            cap = float(cap) if cap is not None else None
            rows = int(raw["rows"]) if raw.get("rows") is not None else None
        except (TypeError, ValueError):
            cap, rows = None, None
        out.append(
            _Node(
                str(raw.get("name") or f"node{i}"),
                _path(raw.get("policy")),
                _path(raw.get("data")),
                raw.get("profile") or None,
                rows,
                _path(raw.get("keys")),
                _path(raw.get("ledger")),
                cap,
            )
        )
    return out


def _csv_facts(path: Path) -> tuple[str, list[str] | None, int | None]:
    """(status, header, data rows) of a CSV; rows counted as ``read_node_csv`` counts them."""
    if not path.exists():
        return "missing", None, None
    if not path.is_file():
        return "unreadable", None, None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = sum(1 for row in reader if any(cell != "" for cell in row) or len(row) > 1)
    except (OSError, UnicodeDecodeError, csv.Error):
        return "unreadable", None, None
    if not header:
        return "unreadable", None, None
    return "ok", header, rows


def _synthetic_header(profile: str, seed: int) -> list[str] | None:
    from confide.simulations.node_profiles import get_profile
    from confide.simulations.synth import generate_customers

    try:
        return [str(c) for c in generate_customers(get_profile(profile, 20), seed).frame.columns]
    except ValueError:
        return None


def _profile_rows(profile: str, rows: int | None) -> int | None:
    from confide.simulations.node_profiles import get_profile

    try:
        return int(get_profile(profile, rows).n_rows)
    except ValueError:
        return None


def _data_facts(
    node: _Node, config: Mapping[str, Any], seed: int, test_fraction: float
) -> tuple[str, str, list[str] | None, int | None, str]:
    """(status, source text, header, training rows, how the rows were found)."""
    if node.partitioned:
        source = (config.get("federation") or {}).get("source") or {}
        if source.get("data"):
            path = resolve_path(source["data"], "federation.source")
            status, header, rows = _csv_facts(path)
            n = train_rows(rows, test_fraction) if rows else None
            return (
                "partitioned" if status == "ok" else status,
                f"part of {path} (cut at run time)",
                header,
                n,
                "at most the source's training rows (the part is cut at run time)",
            )
        profile = str(source.get("profile"))
        rows = _profile_rows(profile, source.get("rows"))
        n = train_rows(rows, test_fraction) if rows else None
        return (
            "partitioned",
            f"part of synthetic profile '{profile}' ({rows} rows, cut at run time)",
            _synthetic_header(profile, seed),
            n,
            "at most the source's training rows (the part is cut at run time)",
        )
    if node.data is not None:
        status, header, rows = _csv_facts(node.data)
        n = train_rows(rows, test_fraction) if rows else None
        return (
            status,
            f"CSV {node.data}",
            header,
            n,
            (f"{rows} data rows in the CSV, minus the held-out split" if rows else "unknown"),
        )
    profile = str(node.profile)
    rows = _profile_rows(profile, node.rows)
    n = train_rows(rows, test_fraction) if rows else None
    return (
        "synthetic",
        f"synthetic profile '{profile}', {rows} rows generated at run time",
        _synthetic_header(profile, seed),
        n,
        f"configured {rows} rows x (1 - test_fraction {test_fraction:g})",
    )


def _raw_policy(config: Mapping[str, Any], node: _Node) -> str:
    """The policy as the config names it (``pkg://...`` stays readable and machine-neutral)."""
    federation = config.get("federation") or {}
    for raw in federation.get("nodes") or []:
        if isinstance(raw, Mapping) and raw.get("name") == node.name and raw.get("policy"):
            return str(raw["policy"])
    source = federation.get("source") or {}
    if node.partitioned:
        return str(source.get("policy") or _SYNTHETIC_POLICY)
    return str(node.policy) if node.policy else "(none)"


def _keys_status(node: _Node, generated: bool) -> str:
    if node.keys is None:
        return "generated" if generated else "not-configured"
    if not node.keys.exists():
        return "missing"
    if os.name == "posix" and node.keys.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return "permissions"
    return "ok"


def _load(node: _Node) -> tuple[Policy | None, Finding | None]:
    if node.policy is None:
        return None, None
    try:
        return load_policy(node.policy), None
    except PolicyError as exc:
        found = re.search(r"rule (POLICY-[A-Z-]+)", str(exc))
        rid = found.group(1) if found and found.group(1) in RULES else "POLICY-MISSING"
        return None, Finding("ERROR", rid, node.name, None, str(exc))


def _leaves(
    col, used_as: str | None, refused: bool, dp: Mapping[str, Any], secagg: bool, client_dp: bool
) -> str:
    family = col.spec.family
    if family == "drop":
        return "never: dropped at the node"
    if used_as and refused:
        return "never: the node refuses this job (see findings)"
    if used_as:
        if dp.get("enabled"):
            text = (
                f"only inside DP-trained model weights (epsilon <= {float(dp['epsilon']):g}, "
                f"delta {float(dp['delta']):g} per run)"
            )
        else:
            text = "inside model weights, WITHOUT differential privacy"
        if secagg:
            text += ", masked under SecAgg+ (the server sees only the sum)"
        if client_dp:
            text += ", clipped and noised by client-level DP"
        if used_as == "label":
            text += "; in aggregate held-out metrics (score histograms by label, counts)"
        return text
    if col.role == "id":
        form = "keyed pseudonym" if family == "pseudonymize" else f"{col.transform} value"
        return f"never to the server; as a {form} in the node's own score files (confide score)"
    if family == "mask":
        return "never: masked for display at the node"
    if family in ("encrypt", "pseudonymize"):
        return f"never: {col.transform} at rest at the node"
    return "never: kept at the node, not a model input of this task"


def _columns(
    policy: Policy,
    features: list[str],
    label: str,
    refused: bool,
    dp: Mapping[str, Any],
    secagg: bool,
    client_dp: bool,
) -> list[ColumnView]:
    views = []
    for col in policy.columns.values():
        used_as = (
            "feature" if col.task_name in features else "label" if col.task_name == label else None
        )
        task_use = f"{used_as} '{col.task_name}'" if used_as else None
        views.append(
            ColumnView(
                col.name,
                col.tier.value,
                col.role,
                col.transform,
                task_use,
                _leaves(col, used_as, refused, dp, secagg, client_dp),
            )
        )
    return views


# --------------------------------------------------------------------------- federation text


def _sample_dp(dp: Mapping[str, Any], rounds: Any, train: Mapping[str, Any]) -> dict[str, Any]:
    if not dp.get("enabled"):
        return {"enabled": False, "summary": "OFF: nodes train without differential privacy"}
    return {
        "enabled": True,
        "epsilon_per_run": dp.get("epsilon"),
        "delta": dp.get("delta"),
        "accountant": dp.get("accountant"),
        "max_grad_norm": dp.get("max_grad_norm"),
        "secure_mode": bool(dp.get("secure_mode")),
        "summary": (
            f"DP-SGD (Opacus) on every node: epsilon {dp.get('epsilon')} per run, delta "
            f"{dp.get('delta')}, {dp.get('accountant')} accountant, per-sample clipping norm "
            f"{dp.get('max_grad_norm')}; noise calibrated once for {rounds} rounds x "
            f"{train.get('local_epochs')} local epochs; one accountant per node per run; "
            f"secure RNG {'on' if dp.get('secure_mode') else 'off (development setting)'}"
        ),
    }


def _client_dp_text(config: Mapping[str, Any]) -> str:
    cdp = parse_secure(config).client_dp
    if not cdp.enabled:
        return "off"
    return (
        f"on: Flower fixed clipping on the {cdp.clipping}, clipping norm "
        f"{cdp.clipping_norm}, noise multiplier {cdp.noise_multiplier}, nodes "
        "weighted equally"
    )


def _secagg_text(config: Mapping[str, Any]) -> str:
    sa = parse_secure(config).secagg
    if not sa.enabled:
        return "off: the server sees each node's (DP-SGD-trained) weights"
    return (
        f"SecAgg+ on: the server learns only the sum of the nodes' weights (num_shares "
        f"{sa.num_shares}, reconstruction_threshold "
        f"{sa.reconstruction_threshold})"
    )


def _transport_text(config: Mapping[str, Any]) -> str:
    mode = transport(config)
    if mode == "simulation":
        return "local simulation (Flower simulation engine on one machine): no network transport"
    if mode == "tls":
        return "Flower deployment engine over TLS"
    return "Flower deployment engine WITHOUT TLS (insecure)"


def _messages(config: Mapping[str, Any]) -> list[str]:
    secure = parse_secure(config)
    secagg, cdp = secure.secagg.enabled, secure.client_dp.enabled
    weights = "model weights (ArrayRecord)"
    if cdp:
        weights += ", clipped for client-level DP"
    if secagg:
        weights += ", masked by SecAgg+ (only their sum is revealed)"
    return [
        f"train reply: {weights}; metrics num-examples, train_loss, steps, epsilon (cumulative "
        "for the run), delta, noise_multiplier; status {node, ok|refused, reason}",
        "evaluate reply: num-examples, loss_sum, brier_sum, 200-bin score histograms of the "
        "held-out split by label (hist_pos, hist_neg), local_* metrics of the held-out split",
        "never: rows, raw or transformed values, ids or pseudonyms, keys, the policy, data paths",
    ]


def _outputs(config: Mapping[str, Any]) -> list[str]:
    run = config.get("run") or {}
    root = run.get("root", "runs")
    run_dir = run.get("dir") or f"{root}/<UTC time>-{run.get('name')}"
    ledger = run.get("ledger") or f"{root}/run-ledger.jsonl"
    where = (
        "on the coordinator (--run-root of confide deploy)"
        if transport(config) != "simulation"
        else "on this machine"
    )
    return [
        f"run directory {run_dir} {where}: config.yaml, model.pt, history.json, metrics.json, "
        "curves.json (histograms only), ledgers/, outcome.json, report.html, logs/",
        f"run ledger {ledger} (+ .head): one hash-chained record per run (hashes and epsilon only)",
        "each node's budget ledger stays with the node (see each node)",
    ]


# --------------------------------------------------------------------------- audit


def _job_or_error(config: Mapping[str, Any]) -> tuple[Job | None, str | None]:
    try:
        job = parse_job(config)
    except ConfideError as exc:
        return None, str(exc)
    except KeyError as exc:
        return None, f"config key {exc.args[0]!r} is missing (rule: config)"
    except (TypeError, ValueError) as exc:
        return None, f"config value has the wrong type ({type(exc).__name__}) (rule: config)"
    try:  # the run's own preflight: run directory inside run.root, run-ledger integrity
        preflight_config(config)
    except ConfideError as exc:
        return job, str(exc)
    return job, None


def audit_config(
    config: Mapping[str, Any],
    *,
    raw_config: Mapping[str, Any] | None = None,
    baseline: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    config_dirs: Sequence[str | Path] = (),
) -> AuditReport:
    """Review a resolved config (plain dicts); see :func:`audit` for composing one."""
    config = dict(config)
    job, job_error = _job_or_error(config)
    task = config.get("task") or {}
    if job is not None:
        features, label = job.task.feature_names, job.task.label.name
        nodes = [_from_spec(n) for n in job.nodes]
        test_fraction, seed = job.test_fraction, job.seed
    else:
        features = [
            str(f.get("name")) for f in task.get("features") or [] if isinstance(f, Mapping)
        ]
        label = str((task.get("label") or {}).get("name", ""))
        nodes = _tolerant_nodes(config)
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
        generated = node.profile is not None or node.partitioned
        status, source, header, n_train, basis = _data_facts(node, config, seed, test_fraction)
        policy, policy_finding = _load(node)
        view = NodeView(node.name, source, _raw_policy(config, node))
        ledger_error, spent = None, 0.0
        if node.ledger is not None or not generated:
            ledger_path = node.ledger or (
                node.data.with_name(f"{node.data.stem}.{node.name}.confide-ledger.json")
                if node.data
                else None
            )
            view.ledger = f"{ledger_path} (node-local)"
            if policy is not None and ledger_path is not None and dp_on:
                try:
                    spent = BudgetLedger(ledger_path, node.name, policy.dp.lifetime_epsilon).spent()
                except LedgerError as exc:
                    ledger_error = str(exc).split(" (rule")[0].split(": ", 1)[-1]
        else:
            view.ledger = "new for every run: <run dir>/nodes/<node>/ledger.json (synthetic)"
        crypto = (
            tuple(c.name for c in policy.columns.values() if c.spec.needs_key) if policy else ()
        )
        keys_status = _keys_status(node, generated)
        view.keys = {
            "generated": "generated at run time (synthetic)",
            "not-configured": "none configured",
        }.get(keys_status, f"{node.keys} ({keys_status})")
        facts.append(NodeFacts(node.name, status, keys_status, crypto, ledger_error))
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
            view.columns = _columns(policy, list(features), label, refused, dp, secagg, client_dp)
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
    config_findings = evaluate_config(review)
    by_node = {v.name: v for v in views}
    federation_findings = []
    for finding in config_findings:
        if finding.node in by_node and finding.node != FEDERATION:
            by_node[finding.node].findings.append(finding)
        else:
            federation_findings.append(finding)
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
        sample_dp=_sample_dp(dp, rounds, config.get("train") or {}),
        client_dp=_client_dp_text(config),
        secure_aggregation=_secagg_text(config),
        transport=_transport_text(config),
        messages=_messages(config),
        outputs=_outputs(config),
        nodes=views,
        findings=federation_findings,
    )


def audit(overrides: Sequence[str] = (), config_dirs: Sequence[str | Path] = ()) -> AuditReport:
    """Compose the config exactly as a run would (same functions, same overrides) and review it.

    Overrides are judged against the same composition without them (``OVERRIDE-WIDENS``).
    """
    cfg = compose_config(list(overrides), list(config_dirs))
    config = to_container(cfg)
    raw = OmegaConf.to_container(cfg, resolve=False)
    baseline = to_container(compose_config([], list(config_dirs))) if overrides else None
    return audit_config(
        config,
        raw_config=raw,
        baseline=baseline,  # type: ignore[arg-type]
        overrides=overrides,
        config_dirs=config_dirs,
    )
