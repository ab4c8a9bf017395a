"""The facts the compliance review reads, never a data value: per node its data (header and
row count, through the runtime's own reader), policy, key file and budget ledger, how each
column leaves the node; and, for the federation, what is protected and what leaves each node.

Nodes are the runtime's :class:`confide.job.NodeSpec`, parsed by :func:`confide.job.parse_node`
(the job's own parser) even when the job as a whole does not validate.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confide import job as job_module
from confide.clients.node_data import train_rows
from confide.core.errors import ConfideError
from confide.job import Job, JobError, NodeSpec, parse_job, preflight_config, resolve_path
from confide.privacy import RULES, Finding, Policy, PolicyError, load_policy
from confide.privacy.budget_ledger import BudgetLedger, LedgerError
from confide.privacy.reader import CsvFormatError, open_csv
from confide.privacy.review_rules import FEDERATION, transport
from confide.privacy.run_ledger import canonical_json
from confide.settings import parse_secure

__all__ = [
    "ColumnView",
    "NodeView",
    "client_dp_text",
    "column_views",
    "config_sha256",
    "data_facts",
    "job_or_error",
    "keys_status",
    "ledger_path",
    "load_node_policy",
    "message_lines",
    "node_ledger",
    "output_lines",
    "raw_policy",
    "route_findings",
    "sample_dp",
    "secagg_text",
    "tolerant_nodes",
    "transport_text",
]

_SYNTHETIC_POLICY = "pkg://confide.simulations/policies/synthetic_customers.yaml"


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


# --------------------------------------------------------------------------- nodes


def config_sha256(config: Mapping[str, Any]) -> str:
    """SHA-256 of the resolved config's canonical JSON (the run ledger records the same)."""
    return hashlib.sha256(canonical_json(config)).hexdigest()


def route_findings(findings: Sequence[Finding], views: Sequence[Any]) -> list[Finding]:
    """Append each finding about a reviewed node to that node's view (``name``,
    ``findings``); return the rest, the federation's findings, in order."""
    by_node = {v.name: v for v in views}
    federation = []
    for finding in findings:
        if finding.node in by_node and finding.node != FEDERATION:
            by_node[finding.node].findings.append(finding)
        else:
            federation.append(finding)
    return federation


def job_or_error(config: Mapping[str, Any]) -> tuple[Job | None, str | None]:
    """The job as a run parses it, or None, and the one-line reason a run would refuse to
    start (the job itself, then the run's own preflight), or None."""
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


def tolerant_nodes(config: Mapping[str, Any]) -> list[NodeSpec]:
    """The nodes of ``federation.nodes`` when the job as a whole does not validate: each entry
    parsed by the runtime's own parser; an entry it refuses is kept by name only (the job error,
    reported as a finding, says why)."""
    out = []
    for i, raw in enumerate((config.get("federation") or {}).get("nodes") or []):
        if not isinstance(raw, Mapping):
            continue
        try:
            out.append(job_module.parse_node(raw, i))
        except JobError:
            out.append(NodeSpec(name=str(raw.get("name") or f"node{i}"), policy=None))  # type: ignore[arg-type]
    return out


def csv_facts(path: Path) -> tuple[str, list[str] | None, int | None]:
    """(status, header, data rows) of a node's CSV, read by the runtime's reader
    (:func:`confide.privacy.reader.open_csv`): a file a run would refuse is ``unreadable``."""
    if not path.exists() and not path.is_symlink():
        return "missing", None, None
    try:
        with open_csv(path) as table:
            header = list(table.names)
            rows = sum(len(chunk) for chunk in table.chunks(100_000))
    except CsvFormatError:
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


def data_facts(
    node: NodeSpec, config: Mapping[str, Any], seed: int, test_fraction: float
) -> tuple[str, str, list[str] | None, int | None, str]:
    """(status, source text, header, training rows, how the rows were found)."""
    if node.part is not None:
        source = (config.get("federation") or {}).get("source") or {}
        if source.get("data"):
            path = resolve_path(source["data"], "federation.source")
            status, header, rows = csv_facts(path)
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
        status, header, rows = csv_facts(node.data)
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


def raw_policy(config: Mapping[str, Any], node: NodeSpec) -> str:
    """The policy as the config names it (``pkg://...`` stays readable and machine-neutral)."""
    federation = config.get("federation") or {}
    for raw in federation.get("nodes") or []:
        if isinstance(raw, Mapping) and raw.get("name") == node.name and raw.get("policy"):
            return str(raw["policy"])
    source = federation.get("source") or {}
    if node.part is not None:
        return str(source.get("policy") or _SYNTHETIC_POLICY)
    return str(node.policy) if node.policy else "(none)"


def keys_status(node: NodeSpec, generated: bool) -> str:
    """How the node's key file stands: generated, not-configured, missing, permissions or ok."""
    if node.keys is None:
        return "generated" if generated else "not-configured"
    if not node.keys.exists():
        return "missing"
    if os.name == "posix" and node.keys.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return "permissions"
    return "ok"


def ledger_path(node: NodeSpec) -> Path | None:
    """The node's budget ledger file: configured, else beside its data (as the runtime's
    :meth:`NodeSpec.default_ledger`); None for a node without either."""
    return node.default_ledger() if node.ledger is not None or node.data is not None else None


def node_ledger(
    node: NodeSpec, generated: bool, policy: Policy | None, read: bool = True
) -> tuple[str, float, str | None]:
    """(where the node's budget ledger is, lifetime epsilon spent so far, why it is unusable):
    read-only, through the runtime's :class:`BudgetLedger`; a synthetic node without a
    configured ledger starts a new one every run (spent 0)."""
    if node.ledger is None and generated:
        return "new for every run: <run dir>/nodes/<node>/ledger.json (synthetic)", 0.0, None
    path = ledger_path(node)
    spent, error = 0.0, None
    if read and policy is not None and path is not None:
        try:
            spent = BudgetLedger(path, node.name, policy.dp.lifetime_epsilon).spent()
        except LedgerError as exc:
            error = str(exc).split(" (rule")[0].split(": ", 1)[-1]
    return f"{path} (node-local)", spent, error


def load_node_policy(node: NodeSpec) -> tuple[Policy | None, Finding | None]:
    """The node's policy, or the POLICY-* finding that says why it cannot be used."""
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


def column_views(
    policy: Policy,
    features: list[str],
    label: str | Sequence[str],
    refused: bool,
    dp: Mapping[str, Any],
    secagg: bool,
    client_dp: bool,
) -> list[ColumnView]:
    """Each policy column: its tier, role, transform, task use and how it leaves the node.
    ``label`` is the label column, or every target column (a survival task's event and
    duration)."""
    labels = [label] if isinstance(label, str) else list(label)
    views = []
    for col in policy.columns.values():
        used_as = (
            "feature" if col.task_name in features else "label" if col.task_name in labels else None
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


def sample_dp(dp: Mapping[str, Any], rounds: Any, train: Mapping[str, Any]) -> dict[str, Any]:
    """The sample-level DP settings of the job and their one-line summary."""
    if not dp.get("enabled"):
        return {"enabled": False, "summary": "OFF: nodes train without differential privacy"}
    return {
        "enabled": True,
        "epsilon_per_run": dp.get("epsilon"),
        "delta": dp.get("delta"),
        "accountant": dp.get("accountant"),
        "max_grad_norm": dp.get("max_grad_norm"),
        "noise": str(dp.get("noise", "seeded")),
        "summary": (
            f"DP-SGD (Opacus) on every node: epsilon {dp.get('epsilon')} per run, delta "
            f"{dp.get('delta')}, {dp.get('accountant')} accountant, per-sample clipping norm "
            f"{dp.get('max_grad_norm')}; noise calibrated once for {rounds} rounds x "
            f"{train.get('local_epochs')} local epochs; one accountant per node per run; "
            f"noise source {dp.get('noise', 'seeded')} as proposed (a node in deployment uses "
            "secure noise unless its own --node-config says seeded)"
        ),
    }


def client_dp_text(config: Mapping[str, Any]) -> str:
    """Client-level DP (Flower's clipping wrapper) in words."""
    cdp = parse_secure(config).client_dp
    if not cdp.enabled:
        return "off"
    return (
        f"on: Flower fixed clipping on the {cdp.clipping}, clipping norm "
        f"{cdp.clipping_norm}, noise multiplier {cdp.noise_multiplier}, nodes "
        "weighted equally"
    )


def secagg_text(config: Mapping[str, Any]) -> str:
    """Secure aggregation in words: what the server learns."""
    sa = parse_secure(config).secagg
    if not sa.enabled:
        return "off: the server sees each node's (DP-SGD-trained) weights"
    return (
        f"SecAgg+ on: the server learns only the sum of the nodes' weights (num_shares "
        f"{sa.num_shares}, reconstruction_threshold "
        f"{sa.reconstruction_threshold})"
    )


def transport_text(config: Mapping[str, Any]) -> str:
    """The transport in words: simulation, TLS or insecure."""
    mode = transport(config)
    if mode == "simulation":
        return "local simulation (Flower simulation engine on one machine): no network transport"
    if mode == "tls":
        return "Flower deployment engine over TLS"
    return "Flower deployment engine WITHOUT TLS (insecure)"


def message_lines(config: Mapping[str, Any]) -> list[str]:
    """What each node's replies carry, and what they never carry."""
    secure = parse_secure(config)
    secagg, cdp = secure.secagg.enabled, secure.client_dp.enabled
    weights = "model weights (ArrayRecord)"
    if cdp:
        weights += ", clipped for client-level DP"
    if secagg:
        weights += ", masked by SecAgg+ (only their sum is revealed)"
    return [
        f"train reply: {weights}; metrics num-examples, train_loss, steps, epsilon (cumulative "
        "for the run), delta, noise_multiplier, secure_noise (1 when the node drew secure DP "
        "noise); status {node, ok|refused, reason}",
        "evaluate reply: num-examples, loss_sum, brier_sum, 200-bin score histograms of the "
        "held-out split by label (hist_pos, hist_neg), local_* metrics of the held-out split",
        "never: rows, raw or transformed values, ids or pseudonyms, keys, the policy, data paths",
    ]


def output_lines(config: Mapping[str, Any]) -> list[str]:
    """Where the run's outputs are kept."""
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
