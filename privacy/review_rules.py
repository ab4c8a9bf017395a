"""Config-level rules of the compliance review, in the single rule registry.

The node-level rules (tiers against the task, DP limits, budget, schema) are the job rules of
:mod:`privacy.rules`, run by :func:`privacy.rules.evaluate_job` on every node at job start and
by the review alike. The rules here look at the composed configuration as a whole, as plain
dicts (no torch, no Flower): transport, secrets written into the config, overrides that widen
access compared with the configuration the federation agreed on, and the node-local files a job
needs (data, keys, budget ledger) as facts the caller has gathered.

:func:`evaluate_config` runs every rule of scope ``config`` (:data:`RULE_DEFINITIONS`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confide.settings import parse_deployment

from .findings import Finding, Rule, by_id

__all__ = [
    "FEDERATION",
    "ConfigReview",
    "NodeFacts",
    "evaluate_config",
    "find_inline_secrets",
    "noise_findings",
    "noise_text",
    "widening_changes",
]

FEDERATION = "(federation)"  # the ``node`` of a finding that concerns the whole job

_PIPL = "PIPL art. 51 and GB/T 35273-2020 §6.3 (security measures for personal information)"


@dataclass(frozen=True)
class NodeFacts:
    """What the reviewer's machine can see of one node's files (never their content).

    ``data_status``: ``ok``, ``missing``, ``unreadable``, ``synthetic`` (generated at run time)
    or ``partitioned`` (cut from the federation's source at run time).
    ``keys_status``: ``ok``, ``not-configured``, ``missing``, ``permissions`` (readable by group
    or others) or ``generated`` (written at run time for synthetic nodes).
    ``crypto_columns``: policy columns that pseudonymise or encrypt (they need a key file).
    ``ledger_error``: why the node's budget ledger is unreadable, if it is.
    """

    name: str
    data_status: str = "ok"
    keys_status: str = "not-configured"
    crypto_columns: tuple[str, ...] = ()
    ledger_error: str | None = None


@dataclass(frozen=True)
class ConfigReview:
    """A composed configuration under review.

    ``config``: the resolved config; ``raw_config``: the same composition before interpolation
    (scanned for inline secrets, so values taken from the environment are not flagged);
    ``baseline``: the resolved config composed without the overrides (None: not compared);
    ``job_error``: the one-line reason the config is not a valid job, if it is not.
    """

    config: Mapping[str, Any]
    raw_config: Mapping[str, Any] | None = None
    baseline: Mapping[str, Any] | None = None
    overrides: tuple[str, ...] = ()
    nodes: tuple[NodeFacts, ...] = ()
    job_error: str | None = None


def _f(rule_id: str, node: str, fld: str | None, message: str) -> Finding:
    return Finding(_RULE_BY_ID[rule_id].severity, rule_id, node, fld, message)


# --------------------------------------------------------------------------- transport


def transport(config: Mapping[str, Any]) -> str:
    """``simulation`` (no network), ``tls`` or ``insecure``, from the typed deployment settings
    (:func:`confide.settings.parse_deployment`, which refuses an unknown transport)."""
    return parse_deployment(config).transport


def _transport_insecure(review: ConfigReview) -> list[Finding]:
    if transport(review.config) != "insecure":
        return []
    return [
        _f(
            "TRANSPORT-INSECURE",
            FEDERATION,
            "deployment.transport",
            "the job runs on the deployment engine without TLS (--insecure): weights, "
            "metrics and epsilon cross the network unencrypted",
        )
    ]


# --------------------------------------------------------------------------- DP noise source

_NOISE_TEXT = {
    "secure": "secure: an AES-256-CTR keystream under a fresh random key per round "
    "(cryptographically secure, not reproducible)",
    "seeded": "seeded: torch's and NumPy's generators seeded from the run's seed (reproducible, "
    "predictable from the seed)",
}


def noise_text(kind: str) -> str:
    """The noise source ``kind`` (``dp.noise``: ``seeded`` or ``secure``) in words."""
    return _NOISE_TEXT.get(str(kind), "an unknown noise source (neither seeded nor secure)")


def noise_findings(mode: str, sources: Mapping[str, str]) -> list[Finding]:
    """Which noise source each node draws its DP noise from (``sources``: node -> kind).

    INFO ``DP-NOISE-SOURCE`` for every node; in deployment (``mode`` ``tls`` or ``insecure``) a
    node whose noise is not ``secure`` is also an ERROR ``DP-NOISE-NOT-SECURE``. Used by the
    config review (what the config proposes) and the run report (what each node reported)."""
    out: list[Finding] = []
    for node, kind in sources.items():
        where = "every node" if node == FEDERATION else f"node '{node}'"
        text = f"{where} draws DP noise from {noise_text(kind)}"
        out.append(_f("DP-NOISE-SOURCE", node, "dp.noise", text))
        if mode != "simulation" and kind != "secure":
            what = (
                f"the job proposes {kind} DP noise on the deployment engine (confide deploy "
                "refuses it)"
                if node == FEDERATION
                else f"node '{node}' drew {kind} DP noise on the deployment engine"
            )
            out.append(
                _f(
                    "DP-NOISE-NOT-SECURE",
                    node,
                    "dp.noise",
                    f"{what}: whoever learns the seed can regenerate the noise and subtract it; "
                    "deployment needs dp.noise=secure",
                )
            )
    return out


def _config_noise(review: ConfigReview) -> list[Finding]:
    if _get(review.config, "dp.enabled") is not True:
        return []
    mode = transport(review.config)
    kind = str(_get(review.config, "dp.noise") or "seeded")
    if mode == "simulation":  # every simulated node follows the proposal
        names = list(_nodes_by_name(review.config)) or [FEDERATION]
    else:  # deployment: node-local settings are not in the config; nodes default to secure
        names = [FEDERATION]
    return noise_findings(mode, dict.fromkeys(names, kind))


def _noise_source(review: ConfigReview) -> list[Finding]:
    return [f for f in _config_noise(review) if f.rule_id == "DP-NOISE-SOURCE"]


def _noise_not_secure(review: ConfigReview) -> list[Finding]:
    return [f for f in _config_noise(review) if f.rule_id == "DP-NOISE-NOT-SECURE"]


# --------------------------------------------------------------------------- secrets

_SECRET_NAME = re.compile(
    r"(^|[_.-])(password|passwd|pwd|passphrase|secret|token|api[_-]?key|private[_-]?key|"
    r"secret[_-]?key|access[_-]?key|credentials?|key[_-]?material|hmac[_-]?key|auth[_-]?key)"
    r"($|[_.-])",
    re.IGNORECASE,
)
_HASH_NAME = re.compile(r"(sha\d*|hash|digest|commit|checksum|fingerprint)$", re.IGNORECASE)
_B64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
_HEX_TOKEN = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
_PEM = re.compile(r"-----BEGIN [A-Z ]*(PRIVATE KEY|SECRET|CERTIFICATE REQUEST)-----")
_PATHLIKE = re.compile(r"[/\\]|\.[A-Za-z0-9]{2,5}$|^pkg://")


def _entropy(text: str) -> float:
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _high_entropy_kind(text: str) -> str | None:
    """``"PEM key"``, ``"hex"`` or ``"base64"`` when ``text`` holds key-like material."""
    if _PEM.search(text):
        return "PEM key"
    for token in _HEX_TOKEN.findall(text):
        if re.search(r"[0-9]", token) and re.search(r"[a-fA-F]", token):
            return f"hex ({len(token)} chars)"
    for token in _B64_TOKEN.findall(text):
        core = token.rstrip("=")
        if (
            re.search(r"[0-9]", core)
            and re.search(r"[a-z]", core)
            and re.search(r"[A-Z]", core)
            and _entropy(core) >= 4.0
        ):
            return f"base64 ({len(token)} chars)"
    return None


def _walk(node: Any, path: str = "", name: str = "") -> Iterator[tuple[str, str, Any]]:
    """(dotted path, nearest key name, scalar value) for every scalar in ``node``."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key), str(key))
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]", name)
    else:
        yield path, name, node


def find_inline_secrets(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(config key, reason) for every value that looks like key material or a credential.

    Detects PEM private keys, high-entropy base64 and hex strings anywhere in a value, and
    non-empty values under key-looking names (password, token, secret, api_key, ...) that are
    neither a path nor an interpolation (``${oc.env:...}`` is the right way to pass a secret).
    The value itself is never returned.
    """
    found: list[tuple[str, str]] = []
    for path, name, value in _walk(config):
        if value is None or isinstance(value, bool):
            continue
        text = str(value)
        if not text or text.startswith("${"):
            continue
        kind = None if _HASH_NAME.search(name) else _high_entropy_kind(text)
        if kind:
            found.append((path, f"looks like key material: {kind}"))
        elif _SECRET_NAME.search(name) and not _PATHLIKE.search(text):
            found.append((path, f"key name '{name}' suggests a credential"))
    return found


def _config_secret(review: ConfigReview) -> list[Finding]:
    source = review.raw_config if review.raw_config is not None else review.config
    return [
        _f(
            "CONFIG-SECRET",
            FEDERATION,
            path,
            f"config value '{path}' holds an inline secret ({reason}); keep key material in a "
            "key file or the environment (${oc.env:NAME}), never in a config",
        )
        for path, reason in find_inline_secrets(source)
    ]


# --------------------------------------------------------------------------- overrides


def _get(config: Mapping[str, Any] | None, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _nodes_by_name(config: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    nodes = _get(config, "federation.nodes") or []
    return {str(n.get("name")): n for n in nodes if isinstance(n, Mapping)}


def _task_fields(config: Mapping[str, Any] | None) -> set[str]:
    feats = _get(config, "task.features") or []
    names = {str(f.get("name")) for f in feats if isinstance(f, Mapping)}
    label = _get(config, "task.label.name")
    return names | ({f"label:{label}"} if label else set())


def widening_changes(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(config key, what changed) for every change from ``base`` to ``new`` that widens access.

    Widening: DP switched off or loosened (epsilon or delta raised, secure noise off), SecAgg+ or
    client-level DP switched off or weakened, fewer nodes needed for a round, TLS switched off,
    task fields added or the label changed, a node's policy file replaced or its own epsilon cap
    raised or removed.
    """
    out: list[tuple[str, str]] = []

    def flag_off(key: str, what: str) -> None:
        if _get(base, key) is True and _get(new, key) is not True:
            out.append((key, f"{what} switched off"))

    def raised(key: str, what: str) -> None:
        b, n = _num(_get(base, key)), _num(_get(new, key))
        if b is not None and n is not None and n > b:
            out.append((key, f"{what} raised from {b:g} to {n:g}"))

    def lowered(key: str, what: str) -> None:
        b, n = _num(_get(base, key)), _num(_get(new, key))
        if b is not None and n is not None and n < b:
            out.append((key, f"{what} lowered from {b:g} to {n:g}"))

    flag_off("dp.enabled", "sample-level DP")
    if _get(new, "dp.enabled") is True:
        raised("dp.epsilon", "epsilon per run")
        raised("dp.delta", "delta")
        if _get(base, "dp.noise") == "secure" and _get(new, "dp.noise") != "secure":
            out.append(("dp.noise", "secure DP noise switched off"))
    flag_off("secure.secagg.enabled", "secure aggregation (SecAgg+)")
    flag_off("secure.client_dp.enabled", "client-level DP")
    if _get(new, "secure.client_dp.enabled") is True:
        lowered("secure.client_dp.noise_multiplier", "client-level DP noise multiplier")
        raised("secure.client_dp.clipping_norm", "client-level DP clipping norm")
    for key in ("min_train_nodes", "min_evaluate_nodes", "min_available_nodes"):
        lowered(f"strategy.algorithm.{key}", f"strategy {key}")
    if transport(new) == "insecure" and transport(base) != "insecure":
        out.append(("deployment.transport", "TLS switched off (insecure transport)"))
    added = sorted(_task_fields(new) - _task_fields(base))
    base_fields = _task_fields(base)
    for name in added:
        if name.startswith("label:"):
            if any(f.startswith("label:") for f in base_fields):
                out.append(("task.label", f"label changed to '{name[6:]}'"))
        else:
            out.append(("task.features", f"feature '{name}' added"))
    base_nodes = _nodes_by_name(base)
    for name, node in _nodes_by_name(new).items():
        before = base_nodes.get(name)
        if before is None:
            continue
        if str(before.get("policy")) != str(node.get("policy")):
            out.append(
                (
                    f"federation.nodes[{name}].policy",
                    f"node '{name}' uses another policy file than the agreed configuration",
                )
            )
        b_cap = _num(before.get("max_epsilon_per_run"))
        n_cap = _num(node.get("max_epsilon_per_run"))
        if b_cap is not None and (n_cap is None or n_cap > b_cap):
            now = "removed" if n_cap is None else f"raised to {n_cap:g}"
            out.append(
                (
                    f"federation.nodes[{name}].max_epsilon_per_run",
                    f"node '{name}' epsilon cap {b_cap:g} {now}",
                )
            )
    return out


def _override_widens(review: ConfigReview) -> list[Finding]:
    if review.baseline is None:
        return []
    return [
        _f(
            "OVERRIDE-WIDENS",
            FEDERATION,
            key,
            f"compared with the configuration composed without overrides: {what}",
        )
        for key, what in widening_changes(review.baseline, review.config)
    ]


# --------------------------------------------------------------------------- job and node files


def _config_invalid(review: ConfigReview) -> list[Finding]:
    if review.job_error is None:
        return []
    return [
        _f(
            "CONFIG-INVALID",
            FEDERATION,
            None,
            f"a run with this config stops before training: {review.job_error}",
        )
    ]


def _data_missing(review: ConfigReview) -> list[Finding]:
    return [
        _f(
            "DATA-MISSING",
            n.name,
            None,
            f"node '{n.name}': its data file is {n.data_status} (rule: data path); the node "
            "refuses the job",
        )
        for n in review.nodes
        if n.data_status in ("missing", "unreadable")
    ]


def _node_keys(review: ConfigReview) -> list[Finding]:
    out = []
    reasons = {
        "not-configured": "no key file is configured for the node",
        "missing": "the configured key file does not exist",
        "permissions": "the key file is readable or writable by group or others",
    }
    for n in review.nodes:
        if n.crypto_columns and n.keys_status in reasons:
            out.append(
                _f(
                    "NODE-KEYS",
                    n.name,
                    ", ".join(n.crypto_columns),
                    f"node '{n.name}': {reasons[n.keys_status]}, but its policy "
                    f"pseudonymises or encrypts {len(n.crypto_columns)} column(s); the "
                    "node refuses the job (rule KEY-MISSING / KEY-PERMISSIONS)",
                )
            )
    return out


def _ledger_integrity(review: ConfigReview) -> list[Finding]:
    return [
        _f(
            "LEDGER-INTEGRITY",
            n.name,
            None,
            f"node '{n.name}': its budget ledger cannot be used ({n.ledger_error}); the node "
            "refuses to train",
        )
        for n in review.nodes
        if n.ledger_error
    ]


_GDPR32 = "GDPR art. 32 security of processing"
RULE_DEFINITIONS = tuple(
    Rule(_rid, _sev, _title, _why, _check, scope="config")
    for _rid, _sev, _title, _why, _check in (
        (
            "CONFIG-INVALID",
            "ERROR",
            "The composed config is a valid job",
            "What a run would refuse to start is shown in the review too: the review and the run "
            "read "
            "the same composition (confide.config.compose_config).",
            _config_invalid,
        ),
        (
            "TRANSPORT-INSECURE",
            "ERROR",
            "Deployment traffic is encrypted (TLS)",
            "Model updates and privacy spend are derived from personal information; sending them "
            f"unencrypted breaks the transmission safeguards of {_PIPL} and {_GDPR32}. --insecure "
            f"is "
            "for local demos only; local simulation has no network transport.",
            _transport_insecure,
        ),
        (
            "DP-NOISE-NOT-SECURE",
            "ERROR",
            "Deployment draws DP noise from a cryptographically secure source",
            "DP-SGD's guarantee assumes the noise is unpredictable; seeded noise can be "
            "regenerated by whoever learns the seed and subtracted from a node's update. In "
            "deployment every node draws its noise from an AES-256-CTR keystream under a fresh "
            "random key (dp.noise=secure, the node's default whatever the coordinator proposes); "
            "seeded noise is for reproducible simulation only.",
            _noise_not_secure,
        ),
        (
            "DP-NOISE-SOURCE",
            "INFO",
            "Which source each node draws its DP noise from",
            "The review records the noise source of every node: seeded (reproducible, for "
            "simulation) or secure (AES-256-CTR keystream, required in deployment).",
            _noise_source,
        ),
        (
            "CONFIG-SECRET",
            "ERROR",
            "No key material, password or token inline in a config",
            "Configs are shared, printed, copied into run directories and committed; keys belong "
            "in a "
            f"key file with owner-only permissions or in the environment ({_PIPL}: access control "
            f"and "
            "encryption key management).",
            _config_secret,
        ),
        (
            "OVERRIDE-WIDENS",
            "WARN",
            "Overrides do not silently widen access",
            "The agreed configuration is the contract; an override that loosens DP, secure "
            "aggregation, transport, participation or adds fields needs the data owners' explicit "
            "sign-off (purpose limitation and minimum necessity, PIPL art. 6 and GB/T 35273-2020 "
            "§4; "
            "GDPR art. 5(1)(b)-(c)). The node rules still refuse anything beyond a node's policy.",
            _override_widens,
        ),
        (
            "DATA-MISSING",
            "ERROR",
            "Every node's data file exists and is readable",
            "A node without readable data refuses the job; the review shows it before a run "
            "starts.",
            _data_missing,
        ),
        (
            "NODE-KEYS",
            "ERROR",
            "Nodes that pseudonymise or encrypt have a private key file",
            "Pseudonyms and ciphertexts need the node's own key; without it (or with a key file "
            "others "
            "can read) the node refuses, never falling back to keyless output (GB/T 35273-2020 "
            "§6.2 "
            "de-identification with separately stored keys; GDPR art. 4(5)).",
            _node_keys,
        ),
        (
            "LEDGER-INTEGRITY",
            "ERROR",
            "Every node's budget ledger is readable and its own",
            "Lifetime privacy loss can only be bounded if the record of earlier spend is intact; "
            "an "
            "unreadable or foreign ledger stops the node (fail closed).",
            _ledger_integrity,
        ),
    )
)


_RULE_BY_ID = by_id(RULE_DEFINITIONS)


def evaluate_config(review: ConfigReview) -> list[Finding]:
    """Run every config-scope rule; returns all findings (ERROR, WARN and INFO)."""
    findings: list[Finding] = []
    for rule in RULE_DEFINITIONS:
        if rule.check is not None:
            findings.extend(rule.check(review))
    return findings
