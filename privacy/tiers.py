"""Sensitivity tiers (core_sensitive > general_sensitive > non_sensitive)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from .errors import PolicyError

__all__ = ["Tier", "dataset_tier", "parse_tier"]


class Tier(StrEnum):
    """A field's sensitivity tier; compares by sensitivity (core is highest)."""

    CORE_SENSITIVE = "core_sensitive"
    GENERAL_SENSITIVE = "general_sensitive"
    NON_SENSITIVE = "non_sensitive"

    @property
    def rank(self) -> int:
        """0 for non_sensitive, 1 for general_sensitive, 2 for core_sensitive."""
        return _RANK[self]

    def __str__(self) -> str:
        return self.value

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Tier):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Tier):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Tier):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Tier):
            return NotImplemented
        return self.rank >= other.rank


_RANK = {Tier.NON_SENSITIVE: 0, Tier.GENERAL_SENSITIVE: 1, Tier.CORE_SENSITIVE: 2}


def parse_tier(value: object, where: str) -> Tier:
    """Return the Tier named by ``value``; PolicyError naming ``where`` otherwise."""
    try:
        return Tier(value)
    except ValueError:
        allowed = ", ".join(t.value for t in Tier)
        raise PolicyError(
            f"{where}: unknown tier (rule POLICY-VALUE); use one of: {allowed}"
        ) from None


def dataset_tier(tiers: Iterable[Tier | str]) -> Tier:
    """Highest tier among ``tiers`` (a dataset is as sensitive as its most sensitive field)."""
    parsed = [t if isinstance(t, Tier) else parse_tier(t, "dataset_tier") for t in tiers]
    if not parsed:
        raise PolicyError("dataset_tier: no fields given (rule POLICY-VALUE)")
    return max(parsed)
