"""Parsing and canonical form of transform strings used in policy files.

Grammar (canonical form)::

    keep | drop | pseudonymize | encrypt:deterministic | encrypt:randomized
    mask:mobile | mask:national_id | mask:bank_card | mask:email | mask:name | mask:address
    mask:keep:<first>:<last>
    generalize:numeric_bins:<e1>,<e2>,... | generalize:age_band | generalize:date_month
    generalize:date_quarter | generalize:city_to_province | generalize:address_to_province
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

__all__ = [
    "CRYPTO_TRANSFORMS",
    "GENERALIZE_KINDS",
    "MASK_KINDS",
    "TransformSpec",
    "TransformSyntaxError",
    "parse_transform",
]

MASK_KINDS = ("mobile", "national_id", "bank_card", "email", "name", "address", "keep")
GENERALIZE_KINDS = (
    "numeric_bins",
    "age_band",
    "date_month",
    "date_quarter",
    "city_to_province",
    "address_to_province",
)
CRYPTO_TRANSFORMS = ("pseudonymize", "encrypt:deterministic", "encrypt:randomized")


class TransformSyntaxError(ValueError):
    """Raised for an unknown or malformed transform string (wrapped into PolicyError)."""


@dataclass(frozen=True)
class TransformSpec:
    """A parsed transform: ``family`` is keep/drop/mask/generalize/pseudonymize/encrypt."""

    family: str
    kind: str | None = None
    args: tuple = ()

    @property
    def canonical(self) -> str:
        """The canonical transform string."""
        if self.family in ("keep", "drop", "pseudonymize"):
            return self.family
        if self.family == "encrypt":
            return f"encrypt:{self.kind}"
        if self.family == "mask" and self.kind == "keep":
            return f"mask:keep:{self.args[0]}:{self.args[1]}"
        if self.family == "generalize" and self.kind == "numeric_bins":
            return "generalize:numeric_bins:" + ",".join(_fmt_edge(e) for e in self.args)
        return f"{self.family}:{self.kind}"

    @property
    def needs_key(self) -> bool:
        """True for pseudonymize and encrypt:* (they need a keyring)."""
        return self.family in ("pseudonymize", "encrypt")


def _fmt_edge(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def parse_transform(text: object) -> TransformSpec:
    """Parse a transform string; TransformSyntaxError (message without the value) if invalid."""
    if not isinstance(text, str) or not text.strip():
        raise TransformSyntaxError("transform must be a non-empty string")
    parts = [p.strip() for p in text.strip().split(":")]
    head, rest = parts[0], parts[1:]
    if head in ("keep", "drop", "pseudonymize") and not rest:
        return TransformSpec(head)
    if head == "encrypt" and rest in (["deterministic"], ["randomized"]):
        return TransformSpec("encrypt", rest[0])
    if head == "mask" and rest:
        return _parse_mask(rest)
    if head == "generalize" and rest:
        return _parse_generalize(rest)
    raise TransformSyntaxError(
        "unknown transform; use keep, drop, pseudonymize, encrypt:deterministic, "
        "encrypt:randomized, mask:<kind> or generalize:<kind>"
    )


def _parse_mask(rest: list[str]) -> TransformSpec:
    kind = rest[0]
    if kind not in MASK_KINDS:
        raise TransformSyntaxError(f"unknown mask kind; use one of: {', '.join(MASK_KINDS)}")
    if kind != "keep":
        if len(rest) != 1:
            raise TransformSyntaxError(f"mask:{kind} takes no arguments")
        return TransformSpec("mask", kind)
    if len(rest) != 3 or not all(p.isascii() and p.isdigit() for p in rest[1:]):
        raise TransformSyntaxError(
            "mask:keep needs two non-negative integers: mask:keep:<first>:<last>"
        )
    first, last = int(rest[1]), int(rest[2])
    if first > 64 or last > 64:
        raise TransformSyntaxError("mask:keep may keep at most 64 characters at each end")
    return TransformSpec("mask", "keep", (first, last))


def _parse_generalize(rest: list[str]) -> TransformSpec:
    kind = rest[0]
    if kind not in GENERALIZE_KINDS:
        raise TransformSyntaxError(
            f"unknown generalize kind; use one of: {', '.join(GENERALIZE_KINDS)}"
        )
    if kind != "numeric_bins":
        if len(rest) != 1:
            raise TransformSyntaxError(f"generalize:{kind} takes no arguments")
        return TransformSpec("generalize", kind)
    if len(rest) != 2 or not rest[1]:
        raise TransformSyntaxError(
            "generalize:numeric_bins needs comma-separated edges, e.g. numeric_bins:0,100,500"
        )
    try:
        edges = tuple(float(e) for e in rest[1].split(","))
    except ValueError:
        raise TransformSyntaxError("numeric_bins edges must be numbers") from None
    if not all(math.isfinite(e) for e in edges):
        raise TransformSyntaxError("numeric_bins edges must be finite numbers")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise TransformSyntaxError("numeric_bins edges must be strictly increasing")
    return TransformSpec("generalize", "numeric_bins", edges)
