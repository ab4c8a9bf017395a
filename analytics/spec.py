"""The analysis spec: what a DP analysis computes, over which declared columns, at which epsilon.

:func:`load_analysis_spec` validates a plain mapping (a Hydra ``analysis=`` group, or the wire
dict a node receives) and returns a frozen :class:`AnalysisSpec`. Validation is strict and fails
closed with one line naming the source, the field and the rule: unknown keys, unknown
statistics, inverted bounds, empty or duplicate categories, a non-positive epsilon, parts whose
epsilons do not sum to the analysis's epsilon, a group-by, filter or statistic on an undeclared
column, bins that do not increase, ``k < 2``. ``spec.to_wire()`` is the plain JSON form a node
receives; :meth:`AnalysisSpec.from_wire` re-validates it (data, never code).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confide.core.errors import ConfideError

__all__ = [
    "FORMATS",
    "STATS",
    "AnalysisSpec",
    "AnalysisSpecError",
    "ColumnDecl",
    "QualitySpec",
    "Query",
    "RFMDimension",
    "RFMSpec",
    "SegmentsSpec",
    "Unit",
    "load_analysis_spec",
]

STATS = ("count", "sum", "mean", "variance", "histogram", "quantiles")
#: Formats a data-quality column may be checked against (confide.privacy.validators).
FORMATS = ("mobile", "national_id", "email", "bank_card")
SPEC_RULE = "ANALYSIS-SPEC"
UNBOUNDED_RULE = "ANALYSIS-UNBOUNDED"

_TOP = ("name", "epsilon", "delta", "unit", "columns", "queries", "rfm", "segments", "quality")
_QUERY_KEYS = ("name", "stat", "column", "group_by", "where", "bins", "q", "epsilon")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_TOLERANCE = 1e-9  # epsilons are decimal parts: 0.1 + 0.2 must equal 0.3
_MAX_CATEGORIES = 1000
_MAX_BINS = 1000
_MAX_CELLS = 100_000
_MAX_QUERIES = 200
_MAX_K = 50
_MAX_ITERATIONS = 50
_MAX_ROWS_PER_CUSTOMER = 10_000
_MAX_TEXT = 200
_MAX_COLUMNS = 500


class AnalysisSpecError(ConfideError):
    """An analysis spec broke a rule; ``rule_id`` is ANALYSIS-SPEC or ANALYSIS-UNBOUNDED."""

    def __init__(self, message: object = "", rule_id: str = SPEC_RULE) -> None:
        super().__init__(message)
        self.rule_id = rule_id


@dataclass(frozen=True)
class ColumnDecl:
    """A declared column: numeric bounds, a category list, or (quality only) a format."""

    name: str
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    format: str | None = None

    @property
    def kind(self) -> str:
        """``numeric``, ``categorical`` or ``format``."""
        if self.categories is not None:
            return "categorical"
        return "format" if self.format is not None else "numeric"

    @property
    def bound(self) -> float:
        """The largest absolute value a clamped value can take (a sum's per-row sensitivity)."""
        return max(abs(self.min), abs(self.max))  # type: ignore[arg-type]

    def to_wire(self) -> dict[str, Any]:
        """Plain JSON form."""
        if self.kind == "categorical":
            return {"categories": list(self.categories or ())}
        if self.kind == "format":
            return {"format": self.format}
        return {"min": self.min, "max": self.max}


@dataclass(frozen=True)
class Unit:
    """The privacy unit: rows sharing ``id_column`` belong to one customer; at most
    ``max_rows_per_customer`` of them are used (enforced by the node)."""

    id_column: str
    max_rows_per_customer: int = 1


@dataclass(frozen=True)
class Query:
    """One statistic, optionally grouped by declared categories and filtered."""

    name: str
    stat: str
    epsilon: float
    column: str | None = None
    group_by: tuple[str, ...] = ()
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    bins: tuple[float, ...] | None = None
    q: tuple[float, ...] | None = None

    def to_wire(self) -> dict[str, Any]:
        """Plain JSON form (only the fields that are set)."""
        out: dict[str, Any] = {"name": self.name, "stat": self.stat, "epsilon": self.epsilon}
        if self.column is not None:
            out["column"] = self.column
        if self.group_by:
            out["group_by"] = list(self.group_by)
        if self.where:
            out["where"] = {c: list(v) for c, v in self.where}
        if self.bins is not None:
            out["bins"] = list(self.bins)
        if self.q is not None:
            out["q"] = list(self.q)
        return out


@dataclass(frozen=True)
class RFMDimension:
    """One RFM dimension: a numeric column and its score bin edges."""

    column: str
    bins: tuple[float, ...]


@dataclass(frozen=True)
class RFMSpec:
    """RFM scores by declared bins; released as noisy cell counts and monetary sums."""

    epsilon: float
    recency: RFMDimension
    frequency: RFMDimension
    monetary: RFMDimension

    def dimensions(self) -> dict[str, RFMDimension]:
        """``{'recency': ..., 'frequency': ..., 'monetary': ...}``."""
        return {"recency": self.recency, "frequency": self.frequency, "monetary": self.monetary}

    def to_wire(self) -> dict[str, Any]:
        """Plain JSON form."""
        out: dict[str, Any] = {"epsilon": self.epsilon}
        for key, dim in self.dimensions().items():
            out[key] = {"column": dim.column, "bins": list(dim.bins)}
        return out


@dataclass(frozen=True)
class SegmentsSpec:
    """DP k-means (DP-Lloyd) over bounded features, with per-segment outcome and value."""

    epsilon: float
    k: int
    iterations: int
    features: tuple[str, ...]
    outcome: str | None = None
    value: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """Plain JSON form."""
        out: dict[str, Any] = {
            "epsilon": self.epsilon,
            "k": self.k,
            "iterations": self.iterations,
            "features": list(self.features),
        }
        if self.outcome is not None:
            out["outcome"] = self.outcome
        if self.value is not None:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class QualitySpec:
    """Per-column missing, out-of-bounds and invalid-format rates, released under DP."""

    epsilon: float
    columns: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {"epsilon": self.epsilon, "columns": list(self.columns)}


@dataclass(frozen=True)
class AnalysisSpec:
    """A validated analysis (see :func:`load_analysis_spec`); ``epsilon`` is per node."""

    name: str
    epsilon: float
    delta: float
    unit: Unit
    columns: dict[str, ColumnDecl]
    queries: tuple[Query, ...] = ()
    rfm: RFMSpec | None = None
    segments: SegmentsSpec | None = None
    quality: QualitySpec | None = None

    def __hash__(self) -> int:
        return hash((self.name, self.epsilon, tuple(self.columns)))

    def parts(self) -> dict[str, float]:
        """Epsilon of each part: ``query:<name>``, ``rfm``, ``segments``, ``quality``."""
        out = {f"query:{q.name}": q.epsilon for q in self.queries}
        for key in ("rfm", "segments", "quality"):
            part = getattr(self, key)
            if part is not None:
                out[key] = part.epsilon
        return out

    def column_uses(self) -> list[tuple[str, str, str]]:
        """``(column, part, use)`` for every use; ``use`` is value, group_by, where, feature,
        outcome or quality."""
        uses: list[tuple[str, str, str]] = []
        for q in self.queries:
            part = f"query:{q.name}"
            if q.column is not None:
                uses.append((q.column, part, "value"))
            uses += [(c, part, "group_by") for c in q.group_by]
            uses += [(c, part, "where") for c, _ in q.where]
        if self.rfm is not None:
            uses += [(d.column, "rfm", "value") for d in self.rfm.dimensions().values()]
        if self.segments is not None:
            s = self.segments
            uses += [(c, "segments", "feature") for c in s.features]
            if s.outcome is not None:
                uses.append((s.outcome, "segments", "outcome"))
            if s.value is not None:
                uses.append((s.value, "segments", "value"))
        if self.quality is not None:
            uses += [(c, "quality", "quality") for c in self.quality.columns]
        return uses

    def columns_used(self) -> list[str]:
        """Every column the analysis reads (not the id column), in first-use order."""
        return list(dict.fromkeys(c for c, _, _ in self.column_uses()))

    def to_wire(self) -> dict[str, Any]:
        """The plain JSON form (what the coordinator sends; :meth:`from_wire` reads it)."""
        out: dict[str, Any] = {
            "name": self.name,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "unit": {
                "id_column": self.unit.id_column,
                "max_rows_per_customer": self.unit.max_rows_per_customer,
            },
            "columns": {n: c.to_wire() for n, c in self.columns.items()},
            "queries": [q.to_wire() for q in self.queries],
        }
        for key in ("rfm", "segments", "quality"):
            part = getattr(self, key)
            if part is not None:
                out[key] = part.to_wire()
        return out

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any], source: str) -> AnalysisSpec:
        """Re-validate a received wire dict (every rule of :func:`load_analysis_spec`)."""
        return load_analysis_spec(wire, source)


# --------------------------------------------------------------------------- validation


class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, rule: str, rule_id: str = SPEC_RULE) -> AnalysisSpecError:
        return AnalysisSpecError(
            f"{self.source}: field '{where}': {rule} (rule {rule_id})", rule_id
        )


def _mapping(ctx: _Ctx, raw: object, where: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ctx.fail(where, "must be a mapping")
    for key in raw:
        if not isinstance(key, str) or key not in allowed:
            shown = f"'{key}'" if isinstance(key, str) and _NAME.fullmatch(key) else "a key"
            raise ctx.fail(where, f"unknown key {shown}; allowed: {', '.join(allowed)}")
    return raw


def _required(ctx: _Ctx, raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] is None:
        raise ctx.fail(f"{where}.{key}" if where else key, "is required")
    return raw[key]


def _name(ctx: _Ctx, raw: object, where: str) -> str:
    if not isinstance(raw, str) or not _NAME.fullmatch(raw):
        raise ctx.fail(where, "must be a name of letters, digits and _ (at most 64)")
    return raw


def _number(ctx: _Ctx, raw: object, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ctx.fail(where, "must be a number")
    try:
        value = float(raw)
    except OverflowError:
        raise ctx.fail(where, "must be finite") from None
    if not math.isfinite(value):
        raise ctx.fail(where, "must be finite")
    return value


def _epsilon(ctx: _Ctx, raw: object, where: str) -> float:
    value = _number(ctx, raw, where)
    if value <= 0:
        raise ctx.fail(where, "epsilon must be > 0")
    return value


def _int(ctx: _Ctx, raw: object, where: str, lo: int, hi: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ctx.fail(where, "must be an integer")
    if not lo <= raw <= hi:
        raise ctx.fail(where, f"must be between {lo} and {hi}")
    return int(raw)


def _list(ctx: _Ctx, raw: object, where: str, max_len: int) -> list[Any]:
    if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Sequence):
        raise ctx.fail(where, "must be a list")
    if len(raw) > max_len:
        raise ctx.fail(where, f"has more than {max_len} entries")
    return list(raw)


def _names(ctx: _Ctx, raw: object, where: str, max_len: int = 64) -> tuple[str, ...]:
    items = _list(ctx, raw, where, max_len)
    names = tuple(_name(ctx, v, f"{where}[{i}]") for i, v in enumerate(items))
    if len(set(names)) != len(names):
        raise ctx.fail(where, "lists a column twice")
    return names


def _edges(ctx: _Ctx, raw: object, where: str) -> tuple[float, ...]:
    items = _list(ctx, raw, where, _MAX_BINS + 1)
    edges = tuple(_number(ctx, v, f"{where}[{i}]") for i, v in enumerate(items))
    if len(edges) < 2:
        raise ctx.fail(where, "needs at least 2 edges")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ctx.fail(where, "bin edges must be strictly increasing")
    return edges


def _categories(ctx: _Ctx, raw: object, where: str) -> tuple[str, ...]:
    items = _list(ctx, raw, where, _MAX_CATEGORIES)
    if not items:
        raise ctx.fail(where, "categories must not be empty")
    out: list[str] = []
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise ctx.fail(f"{where}[{i}]", "a category must be a string or an integer")
        text = str(v)
        if not text.strip() or len(text) > _MAX_TEXT:
            raise ctx.fail(f"{where}[{i}]", f"a category must be 1..{_MAX_TEXT} characters")
        out.append(text)
    if len(set(out)) != len(out):
        raise ctx.fail(where, "categories must not repeat")
    return tuple(out)


def _column(ctx: _Ctx, name: str, raw: object) -> ColumnDecl:
    where = f"columns.{name}"
    body = _mapping(ctx, raw, where, ("min", "max", "categories", "format"))
    kinds = [k for k in (("min", "max"), ("categories",), ("format",)) if any(x in body for x in k)]
    if len(kinds) != 1:
        raise ctx.fail(
            where,
            "declare exactly one of bounds (min and max), categories or format",
            UNBOUNDED_RULE,
        )
    if "categories" in body:
        return ColumnDecl(name, categories=_categories(ctx, body["categories"], where))
    if "format" in body:
        fmt = body["format"]
        if fmt not in FORMATS:
            raise ctx.fail(f"{where}.format", f"must be one of {', '.join(FORMATS)}")
        return ColumnDecl(name, format=str(fmt))
    if "min" not in body or "max" not in body:
        raise ctx.fail(where, "numeric bounds need both min and max", UNBOUNDED_RULE)
    lo = _number(ctx, body["min"], f"{where}.min")
    hi = _number(ctx, body["max"], f"{where}.max")
    if not lo < hi:
        raise ctx.fail(where, "bounds inverted or empty: min must be below max")
    if max(abs(lo), abs(hi)) > 1e12:
        raise ctx.fail(where, "bounds must lie within ±1e12")
    return ColumnDecl(name, min=lo, max=hi)


def _declared(
    ctx: _Ctx, columns: dict[str, ColumnDecl], name: str, where: str, kind: str
) -> ColumnDecl:
    decl = columns.get(name)
    if decl is None:
        raise ctx.fail(where, f"column '{name}' is not declared under columns", UNBOUNDED_RULE)
    if decl.kind != kind:
        need = {"numeric": "bounds (min, max)", "categorical": "categories"}[kind]
        raise ctx.fail(where, f"column '{name}' needs declared {need} here", UNBOUNDED_RULE)
    return decl


def _within(ctx: _Ctx, edges: tuple[float, ...], decl: ColumnDecl, where: str) -> None:
    if edges[0] < decl.min or edges[-1] > decl.max:  # type: ignore[operator]
        raise ctx.fail(where, f"bins must lie within the bounds of column '{decl.name}'")


def _query(ctx: _Ctx, i: int, raw: object, columns: dict[str, ColumnDecl]) -> Query:
    where = f"queries[{i}]"
    body = _mapping(ctx, raw, where, _QUERY_KEYS)
    name = _name(ctx, _required(ctx, body, "name", where), f"{where}.name")
    where = f"queries.{name}"
    stat = _required(ctx, body, "stat", where)
    if stat not in STATS:
        raise ctx.fail(f"{where}.stat", f"unknown statistic; use one of {', '.join(STATS)}")
    eps = _epsilon(ctx, _required(ctx, body, "epsilon", where), f"{where}.epsilon")
    column = body.get("column")
    if stat == "count":
        if column is not None:
            raise ctx.fail(f"{where}.column", "a count takes no column")
    else:
        column = _name(ctx, _required(ctx, body, "column", where), f"{where}.column")
        _declared(ctx, columns, column, f"{where}.column", "numeric")
    group_by = _names(ctx, body.get("group_by", []), f"{where}.group_by", 4)
    cells = 1
    for g in group_by:
        cells *= len(_declared(ctx, columns, g, f"{where}.group_by", "categorical").categories)
    if cells > _MAX_CELLS:
        raise ctx.fail(f"{where}.group_by", f"more than {_MAX_CELLS} groups")
    where_raw = body.get("where", {})
    if not isinstance(where_raw, Mapping):
        raise ctx.fail(f"{where}.where", "must be a mapping of column to allowed categories")
    filters: list[tuple[str, tuple[str, ...]]] = []
    for col, values in where_raw.items():
        col = _name(ctx, col, f"{where}.where")
        decl = _declared(ctx, columns, col, f"{where}.where.{col}", "categorical")
        allowed = _categories(ctx, values, f"{where}.where.{col}")
        if set(allowed) - set(decl.categories or ()):
            raise ctx.fail(f"{where}.where.{col}", "filter values must be declared categories")
        filters.append((col, allowed))
    bins = q = None
    if "bins" in body and stat not in ("histogram", "quantiles"):
        raise ctx.fail(f"{where}.bins", "only histogram and quantiles take bins")
    if "q" in body and stat != "quantiles":
        raise ctx.fail(f"{where}.q", "only quantiles take q")
    if stat == "histogram":
        bins = _edges(ctx, _required(ctx, body, "bins", where), f"{where}.bins")
    if stat == "quantiles":
        if "bins" in body:
            bins = _edges(ctx, body["bins"], f"{where}.bins")
        items = _list(ctx, _required(ctx, body, "q", where), f"{where}.q", 99)
        q = tuple(_number(ctx, v, f"{where}.q[{j}]") for j, v in enumerate(items))
        if not q or any(not 0 < v < 1 for v in q) or list(q) != sorted(set(q)):
            raise ctx.fail(f"{where}.q", "q must be increasing probabilities strictly in (0, 1)")
    if bins is not None:
        _within(ctx, bins, columns[column], f"{where}.bins")  # type: ignore[index]
    return Query(name, str(stat), eps, column, group_by, tuple(filters), bins, q)


def _rfm(ctx: _Ctx, raw: object, columns: dict[str, ColumnDecl]) -> RFMSpec:
    body = _mapping(ctx, raw, "rfm", ("epsilon", "recency", "frequency", "monetary"))
    eps = _epsilon(ctx, _required(ctx, body, "epsilon", "rfm"), "rfm.epsilon")
    dims = {}
    cells = 1
    for key in ("recency", "frequency", "monetary"):
        where = f"rfm.{key}"
        dim = _mapping(ctx, _required(ctx, body, key, "rfm"), where, ("column", "bins"))
        col = _name(ctx, _required(ctx, dim, "column", where), f"{where}.column")
        decl = _declared(ctx, columns, col, f"{where}.column", "numeric")
        edges = _edges(ctx, _required(ctx, dim, "bins", where), f"{where}.bins")
        _within(ctx, edges, decl, f"{where}.bins")
        cells *= len(edges) - 1
        dims[key] = RFMDimension(col, edges)
    if cells > _MAX_CELLS:
        raise ctx.fail("rfm", f"more than {_MAX_CELLS} RFM cells")
    return RFMSpec(eps, **dims)


def _segments(ctx: _Ctx, raw: object, columns: dict[str, ColumnDecl]) -> SegmentsSpec:
    keys = ("epsilon", "k", "iterations", "features", "outcome", "value")
    body = _mapping(ctx, raw, "segments", keys)
    eps = _epsilon(ctx, _required(ctx, body, "epsilon", "segments"), "segments.epsilon")
    k = _int(ctx, _required(ctx, body, "k", "segments"), "segments.k", 2, _MAX_K)
    its = _required(ctx, body, "iterations", "segments")
    its = _int(ctx, its, "segments.iterations", 1, _MAX_ITERATIONS)
    features = _names(ctx, _required(ctx, body, "features", "segments"), "segments.features", 8)
    if not features:
        raise ctx.fail("segments.features", "needs at least one feature")
    for f in features:
        _declared(ctx, columns, f, "segments.features", "numeric")
    outcome = value = None
    if body.get("outcome") is not None:
        outcome = _name(ctx, body["outcome"], "segments.outcome")
        decl = _declared(ctx, columns, outcome, "segments.outcome", "numeric")
        if (decl.min, decl.max) != (0.0, 1.0):
            raise ctx.fail("segments.outcome", "the outcome must be declared with min 0, max 1")
    if body.get("value") is not None:
        value = _name(ctx, body["value"], "segments.value")
        _declared(ctx, columns, value, "segments.value", "numeric")
    return SegmentsSpec(eps, k, its, features, outcome, value)


def _quality(ctx: _Ctx, raw: object, columns: dict[str, ColumnDecl]) -> QualitySpec:
    body = _mapping(ctx, raw, "quality", ("epsilon", "columns"))
    eps = _epsilon(ctx, _required(ctx, body, "epsilon", "quality"), "quality.epsilon")
    names = _names(ctx, _required(ctx, body, "columns", "quality"), "quality.columns")
    if not names:
        raise ctx.fail("quality.columns", "needs at least one column")
    for c in names:
        if c not in columns:
            raise ctx.fail(
                "quality.columns", f"column '{c}' is not declared under columns", UNBOUNDED_RULE
            )
    return QualitySpec(eps, names)


def load_analysis_spec(raw: Mapping[str, Any], source: str) -> AnalysisSpec:
    """Validate ``raw`` (a mapping) into an :class:`AnalysisSpec`; ``source`` names it in errors.

    Raises :class:`AnalysisSpecError` (one line: source, field, rule) on the first problem.
    """
    ctx = _Ctx(source)
    body = _mapping(ctx, raw, "(top level)", _TOP)
    name = _name(ctx, _required(ctx, body, "name", ""), "name")
    epsilon = _epsilon(ctx, _required(ctx, body, "epsilon", ""), "epsilon")
    delta = _number(ctx, body.get("delta", 0.0), "delta")
    if delta != 0.0:
        raise ctx.fail("delta", "must be 0: every part uses the Laplace mechanism (pure DP)")
    unit_raw = _mapping(
        ctx, _required(ctx, body, "unit", ""), "unit", ("id_column", "max_rows_per_customer")
    )
    id_column = _name(ctx, _required(ctx, unit_raw, "id_column", "unit"), "unit.id_column")
    k_rows = _int(
        ctx,
        unit_raw.get("max_rows_per_customer", 1),
        "unit.max_rows_per_customer",
        1,
        _MAX_ROWS_PER_CUSTOMER,
    )
    cols_raw = _required(ctx, body, "columns", "")
    if not isinstance(cols_raw, Mapping) or not cols_raw:
        raise ctx.fail("columns", "must be a non-empty mapping of column declarations")
    if len(cols_raw) > _MAX_COLUMNS:
        raise ctx.fail("columns", f"declares more than {_MAX_COLUMNS} columns")
    columns: dict[str, ColumnDecl] = {}
    for col_name, decl in cols_raw.items():
        col_name = _name(ctx, col_name, "columns")
        if col_name == id_column:
            raise ctx.fail(f"columns.{col_name}", "the id column is never an analysis column")
        columns[col_name] = _column(ctx, col_name, decl)
    queries = tuple(
        _query(ctx, i, q, columns)
        for i, q in enumerate(_list(ctx, body.get("queries", []), "queries", _MAX_QUERIES))
    )
    if len({q.name for q in queries}) != len(queries):
        raise ctx.fail("queries", "query names must be unique")
    rfm = _rfm(ctx, body["rfm"], columns) if body.get("rfm") is not None else None
    seg = _segments(ctx, body["segments"], columns) if body.get("segments") is not None else None
    qual = _quality(ctx, body["quality"], columns) if body.get("quality") is not None else None
    spec = AnalysisSpec(
        name, epsilon, delta, Unit(id_column, k_rows), columns, queries, rfm, seg, qual
    )
    parts = spec.parts()
    if not parts:
        raise ctx.fail(
            "queries", "the analysis releases nothing (no query, rfm, segments or quality)"
        )
    total = math.fsum(parts.values())
    if abs(total - epsilon) > _TOLERANCE * max(1.0, epsilon):
        raise ctx.fail(
            "epsilon",
            f"the parts' epsilons sum to {total:g}, not the analysis epsilon {epsilon:g}",
        )
    return spec
