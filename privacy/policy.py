"""Per-node policy files: strict parsing, static tier rules, schema checks.

A policy is the node's data contract. Parsing fails closed: a missing, empty or malformed file,
an unknown key, tier, role or transform, or a combination the tier rules forbid raises
:class:`~privacy.errors.PolicyError` naming the file, the field and the rule id.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from confide.core.files import UnsafeFileError, read_regular_file

from .errors import PolicyError, SchemaError
from .findings import Rule
from .tiers import Tier, dataset_tier
from .transform_spec import TransformSpec, TransformSyntaxError, parse_transform

__all__ = [
    "ROLES",
    "ColumnRule",
    "DPLimits",
    "Policy",
    "load_policy",
    "parse_policy",
]

ROLES = ("feature", "label", "id", "none")
_TOP_KEYS = ("version", "dataset", "unknown_columns", "columns", "dp")
_COLUMN_KEYS = ("tier", "role", "transform", "maps_to")
_DP_KEYS = ("max_epsilon_per_run", "lifetime_epsilon", "max_delta", "require_dp")
_PIPL = "PIPL art. 28/51 and GB/T 35273-2020 §5-6 (sensitive personal information)"


@dataclass(frozen=True)
class ColumnRule:
    """What the policy says about one column."""

    name: str
    tier: Tier
    role: str = "none"
    transform: str = "keep"
    maps_to: str | None = None

    @cached_property
    def spec(self) -> TransformSpec:
        """The parsed transform."""
        return parse_transform(self.transform)

    @property
    def task_name(self) -> str:
        """The task feature/label name this column feeds (``maps_to`` or the column name)."""
        return self.maps_to or self.name


@dataclass(frozen=True)
class DPLimits:
    """The node's differential-privacy limits."""

    max_epsilon_per_run: float
    lifetime_epsilon: float
    max_delta: float
    require_dp: bool = True


@dataclass(frozen=True)
class Policy:
    """A parsed, validated policy; ``columns`` keeps file order."""

    version: int
    dataset: str
    unknown_columns: str
    columns: dict[str, ColumnRule]
    dp: DPLimits
    source: str
    sha256: str = field(default="")

    @property
    def tier(self) -> Tier:
        """Dataset tier: the highest tier of any listed column."""
        return dataset_tier(c.tier for c in self.columns.values())

    def columns_by_role(self, role: str) -> list[ColumnRule]:
        """Columns with ``role`` in file order; PolicyError for an unknown role."""
        if role not in ROLES:
            raise PolicyError(
                f"{self.source}: unknown role (rule POLICY-VALUE); use one of {', '.join(ROLES)}"
            )
        return [c for c in self.columns.values() if c.role == role]

    def column_for(self, task_name: str) -> ColumnRule | None:
        """The column feeding task feature/label ``task_name`` (by ``maps_to`` or name)."""
        for col in self.columns.values():
            if col.task_name == task_name:
                return col
        return None

    @property
    def output_columns(self) -> list[str]:
        """Columns present after applying the policy (file order minus dropped ones)."""
        return [c.name for c in self.columns.values() if c.spec.family != "drop"]

    def check_columns(self, columns: list[str], source: str) -> None:
        """SchemaError listing every unlisted and every missing column in one line."""
        cols = [str(c) for c in columns]
        problems: list[str] = []
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        problems += [f"column '{c}' appears more than once (rule: schema)" for c in dupes]
        problems += [
            f"column '{c}' is not listed in policy {self.source} (rule: unknown_columns=refuse)"
            for c in cols
            if c not in self.columns and c not in dupes
        ]
        present = set(cols)
        problems += [
            f"column '{c}' listed in policy {self.source} is missing from the data (rule: schema)"
            for c in self.columns
            if c not in present
        ]
        if problems:
            raise SchemaError(f"{source}: " + "; ".join(problems))


# --------------------------------------------------------------------------- rule catalogue

_PARSE_RULES = tuple(
    Rule(_rid, "ERROR", _title, _why, None, scope="parse")
    for _rid, _title, _why in (
        (
            "POLICY-SYNTAX",
            "Policy file is readable YAML mapping without duplicate keys",
            "Fail closed: a policy that cannot be read exactly as written must not be guessed at.",
        ),
        (
            "POLICY-UNKNOWN-KEY",
            "No unknown keys anywhere in the policy",
            "A misspelt key (e.g. 'tranform') would otherwise silently fall back to a default.",
        ),
        (
            "POLICY-REQUIRED",
            "Required keys are present",
            "version, dataset, columns, dp and each column's tier must be stated explicitly.",
        ),
        (
            "POLICY-VALUE",
            "Values are of the right type and known (tier, role, transform, dp)",
            "Unknown tiers/roles/transforms and non-positive DP limits are refused, never "
            "defaulted.",
        ),
    )
)


def _cs_role(col: ColumnRule) -> str | None:
    if col.tier is Tier.CORE_SENSITIVE and col.role in ("feature", "label"):
        return f"a core_sensitive column may not have role {col.role}"
    return None


def _cs_keep(col: ColumnRule) -> str | None:
    if col.tier is Tier.CORE_SENSITIVE and col.spec.family == "keep":
        return (
            "a core_sensitive column may not use transform keep; use drop, mask, "
            "pseudonymize, encrypt or generalize"
        )
    return None


def _role_transform(col: ColumnRule) -> str | None:
    if col.role in ("feature", "label") and col.spec.family not in ("keep", "generalize"):
        return f"role {col.role} needs transform keep or generalize:*, not {col.transform}"
    return None


def _id_transform(col: ColumnRule) -> str | None:
    if col.role != "id":
        return None
    if col.transform in ("pseudonymize", "encrypt:deterministic"):
        return None
    if col.transform == "keep" and col.tier is not Tier.CORE_SENSITIVE:
        return None
    return (
        "role id needs transform pseudonymize or encrypt:deterministic "
        "(keep only for non-core columns)"
    )


_COLUMN_RULES = tuple(
    Rule(_rid, "ERROR", _title, _why, _check, scope="column")
    for _rid, _title, _why, _check in (
        (
            "POLICY-CS-ROLE",
            "Core-sensitive columns are never features or labels",
            f"Identity data must not enter model training or outputs ({_PIPL}; GDPR art. 9).",
            _cs_role,
        ),
        (
            "POLICY-CS-KEEP",
            "Core-sensitive columns are never kept in clear",
            f"Core identity data is dropped, masked, encrypted or pseudonymised at the node "
            f"({_PIPL}).",
            _cs_keep,
        ),
        (
            "POLICY-ROLE-TRANSFORM",
            "Features and labels are kept or generalised",
            "Masked, encrypted or pseudonymised values carry no usable signal and encourage "
            "memorising identifiers.",
            _role_transform,
        ),
        (
            "POLICY-ID-TRANSFORM",
            "Join keys are keyed pseudonyms or deterministic ciphertexts",
            "Core identifiers leave the node only as keyed pseudonyms for joins "
            "(GB/T 35273-2020 §3.14 de-identification; GDPR art. 4(5) pseudonymisation).",
            _id_transform,
        ),
    )
)


def _dp_limits(policy: Policy) -> str | None:
    if policy.dp.max_epsilon_per_run > policy.dp.lifetime_epsilon:
        return "dp.max_epsilon_per_run exceeds dp.lifetime_epsilon"
    return None


def _maps_to_unique(policy: Policy) -> str | None:
    seen: dict[str, str] = {}
    for col in policy.columns.values():
        if col.task_name in seen:
            return (
                f"columns '{seen[col.task_name]}' and '{col.name}' both map to task name "
                f"'{col.task_name}'"
            )
        seen[col.task_name] = col.name
    return None


_POLICY_RULES = (
    Rule(
        "POLICY-DP-LIMITS",
        "ERROR",
        "Per-run epsilon limit does not exceed the lifetime limit",
        "A single run may never be allowed to spend more than the lifetime budget.",
        _dp_limits,
        scope="policy",
    ),
    Rule(
        "POLICY-MAPS-TO",
        "ERROR",
        "Each task feature/label name resolves to one column",
        "An ambiguous mapping could feed a different column than reviewed.",
        _maps_to_unique,
        scope="policy",
    ),
)

RULE_DEFINITIONS = (*_PARSE_RULES, *_COLUMN_RULES, *_POLICY_RULES)


# --------------------------------------------------------------------------- parsing


MAX_POLICY_BYTES = 1024 * 1024
_MAX_INT_DIGITS = 40
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _name(key: object) -> str:
    """A user-supplied key for a message: quoted when it is a plain name, else described."""
    if isinstance(key, str) and _PLAIN_NAME.fullmatch(key):
        return f"'{key}'"
    return "a key that is not a plain name"


class _OversizedNumber:
    """Stands in for an integer literal too long to be a meaningful setting (never converted)."""

    def __repr__(self) -> str:
        return "<oversized number>"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases (no alias bombs) and duplicate mapping keys.

    Anchors and aliases are refused while the document is composed, before any value is built,
    so an alias bomb costs nothing. Integer literals longer than 40 digits are not converted.
    """

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def _construct_int(loader: _StrictLoader, node: yaml.ScalarNode):
    if sum(ch.isdigit() for ch in node.value) > _MAX_INT_DIGITS:
        return _OversizedNumber()
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "unhashable mapping key", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {_name(key)}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
# YAML 1.2 style exponent floats such as ``1e-5`` (PyYAML's 1.1 rules read them as strings).
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file (PolicyError naming the file and field)."""
    p = Path(path)
    try:  # a FIFO, a device or a huge file is refused before it is read
        st = p.stat()
    except FileNotFoundError:
        raise PolicyError(
            f"{p}: policy file not found (rule POLICY-MISSING); every dataset needs a policy"
        ) from None
    except OSError as exc:
        raise PolicyError(
            f"{p}: cannot read policy file ({exc.strerror}) (rule POLICY-MISSING)"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise PolicyError(f"{p}: policy file is not a regular file (rule POLICY-SYNTAX)")
    if st.st_size > MAX_POLICY_BYTES:
        raise PolicyError(
            f"{p}: policy file is over the {MAX_POLICY_BYTES}-byte limit (rule POLICY-SYNTAX)"
        )
    try:
        raw = read_regular_file(p, "policy file", max_bytes=MAX_POLICY_BYTES)
    except UnsafeFileError as exc:  # changed between the check and the read
        raise PolicyError(str(exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{p}: policy file is not UTF-8 (rule POLICY-SYNTAX)") from None
    if not text.strip():
        raise PolicyError(f"{p}: policy file is empty (rule POLICY-SYNTAX)")
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise PolicyError(f"{p}: malformed YAML{where}: {problem} (rule POLICY-SYNTAX)") from None
    if data is None:
        raise PolicyError(f"{p}: policy file is empty (rule POLICY-SYNTAX)")
    return parse_policy(data, str(p), sha256=hashlib.sha256(raw).hexdigest())


def parse_policy(mapping: dict, source: str, *, sha256: str | None = None) -> Policy:
    """Validate a policy mapping; ``source`` names it in messages.

    ``sha256`` defaults to the hash of the mapping's canonical JSON form.
    """
    if not isinstance(mapping, dict):
        raise PolicyError(f"{source}: policy must be a YAML mapping (rule POLICY-SYNTAX)")
    _no_unknown(mapping, _TOP_KEYS, source, "top level")
    for key in ("version", "dataset", "columns", "dp"):
        if key not in mapping:
            raise PolicyError(f"{source}: field '{key}' is required (rule POLICY-REQUIRED)")
    version = mapping["version"]
    if type(version) is not int or version != 1:
        raise PolicyError(f"{source}: field 'version' must be 1 (rule POLICY-VALUE)")
    dataset = mapping["dataset"]
    if not isinstance(dataset, str) or not dataset.strip():
        raise PolicyError(
            f"{source}: field 'dataset' must be a non-empty string (rule POLICY-VALUE)"
        )
    unknown = mapping.get("unknown_columns", "refuse")
    if unknown != "refuse":
        raise PolicyError(
            f"{source}: field 'unknown_columns' must be 'refuse' "
            "(the only supported value) (rule POLICY-VALUE)"
        )
    columns = _parse_columns(mapping["columns"], source)
    dp = _parse_dp(mapping["dp"], source)
    if sha256 is None:
        canon = json.dumps(mapping, sort_keys=True, default=str, ensure_ascii=False)
        sha256 = hashlib.sha256(canon.encode("utf-8")).hexdigest()
    policy = Policy(1, dataset, "refuse", columns, dp, source, sha256)
    errors = [f"{msg} (rule {r.rule_id})" for r in _POLICY_RULES if (msg := r.check(policy))]
    if errors:
        raise PolicyError(f"{source}: " + "; ".join(errors))
    return policy


def _no_unknown(mapping: dict, allowed: tuple, source: str, where: str) -> None:
    extra = [k for k in mapping if k not in allowed]
    if extra:
        names = sorted({_name(k) for k in extra})
        raise PolicyError(
            f"{source}: {where}: unknown key(s) {', '.join(names)} "
            f"(rule POLICY-UNKNOWN-KEY); allowed: {', '.join(allowed)}"
        )


def _parse_columns(raw: object, source: str) -> dict[str, ColumnRule]:
    if not isinstance(raw, dict) or not raw:
        raise PolicyError(
            f"{source}: field 'columns' must be a non-empty mapping (rule POLICY-VALUE)"
        )
    columns: dict[str, ColumnRule] = {}
    errors: list[str] = []
    for name, body in raw.items():
        if not isinstance(name, str) or not name:
            raise PolicyError(
                f"{source}: column names must be non-empty strings, got a "
                f"{type(name).__name__} (rule POLICY-VALUE); quote it in YAML"
            )
        col = _parse_column(name, body, source)
        errors += [
            f"column '{name}': {msg} (rule {r.rule_id})"
            for r in _COLUMN_RULES
            if (msg := r.check(col))
        ]
        columns[name] = col
    if errors:
        raise PolicyError(f"{source}: " + "; ".join(errors))
    return columns


def _parse_column(name: str, body: object, source: str) -> ColumnRule:
    where = f"column '{name}'"
    if not isinstance(body, dict):
        raise PolicyError(
            f"{source}: {where}: must be a mapping with at least 'tier' (rule POLICY-VALUE)"
        )
    _no_unknown(body, _COLUMN_KEYS, source, where)
    if "tier" not in body:
        raise PolicyError(f"{source}: {where}: field 'tier' is required (rule POLICY-REQUIRED)")
    try:
        tier = Tier(body["tier"])
    except ValueError:
        raise PolicyError(
            f"{source}: {where}: unknown tier (rule POLICY-VALUE); use one of: "
            f"{', '.join(t.value for t in Tier)}"
        ) from None
    role = body.get("role", "none")
    if role not in ROLES:
        raise PolicyError(
            f"{source}: {where}: unknown role (rule POLICY-VALUE); use one of: {', '.join(ROLES)}"
        )
    try:
        spec = parse_transform(body.get("transform", "keep"))
    except TransformSyntaxError as exc:
        raise PolicyError(
            f"{source}: {where}: field 'transform': {exc} (rule POLICY-VALUE)"
        ) from None
    except (ValueError, OverflowError):  # e.g. a 5000-digit number inside the transform
        raise PolicyError(
            f"{source}: {where}: field 'transform' holds a number that cannot be read "
            "(rule POLICY-VALUE)"
        ) from None
    maps_to = body.get("maps_to", name)
    if not isinstance(maps_to, str) or not maps_to:
        raise PolicyError(
            f"{source}: {where}: field 'maps_to' must be a non-empty string (rule POLICY-VALUE)"
        )
    return ColumnRule(name, tier, role, spec.canonical, maps_to)


def _parse_dp(raw: object, source: str) -> DPLimits:
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: field 'dp' must be a mapping (rule POLICY-VALUE)")
    _no_unknown(raw, _DP_KEYS, source, "dp")
    values = {}
    for key in _DP_KEYS[:3]:
        if key not in raw:
            raise PolicyError(f"{source}: field 'dp.{key}' is required (rule POLICY-REQUIRED)")
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 or v == float("inf"):
            raise PolicyError(
                f"{source}: field 'dp.{key}' must be a positive finite number (rule POLICY-VALUE)"
            )
        values[key] = float(v)
    if values["max_delta"] >= 1:
        raise PolicyError(f"{source}: field 'dp.max_delta' must be below 1 (rule POLICY-VALUE)")
    require = raw.get("require_dp", True)
    if not isinstance(require, bool):
        raise PolicyError(
            f"{source}: field 'dp.require_dp' must be true or false (rule POLICY-VALUE)"
        )
    return DPLimits(
        values["max_epsilon_per_run"], values["lifetime_epsilon"], values["max_delta"], require
    )
