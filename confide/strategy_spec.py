"""Federated strategies come from a fixed registry by name, with validated keyword arguments.

A strategy config is data: ``{"name": "fedprox", "algorithm": {"proximal_mu": 0.1, ...}}``. The
name must be registered here; every keyword argument must be on that strategy's allow-list and
is checked for type and range. No class path is read from a config: Hydra's ``_target_`` family
of keys is refused outright, on the coordinator as on the nodes.

This module is Flower-free so that the job parser checks the strategy before anything starts;
the server maps each registered name to its Flower class (:mod:`confide.server.strategy`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from confide.core.errors import ConfideError
from confide.modeling.factory import find_instantiation_key

__all__ = [
    "COMMON_PARAMS",
    "STRATEGIES",
    "Param",
    "StrategyConfigError",
    "StrategyEntry",
    "StrategyRegistry",
    "StrategyRegistryError",
    "parse_strategy",
]

_RULE = "rule: strategy registry"


class StrategyConfigError(ConfideError):
    """A strategy config names no registered strategy, or its keyword arguments are invalid."""


class StrategyRegistryError(ConfideError):
    """A strategy registration would silently replace an existing one."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(float(value))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Param:
    """One allowed keyword argument: its kind (``int`` or ``float``), a range check and the
    range in words (for the error message)."""

    kind: type
    check: Callable[[float], bool]
    words: str

    def parse(self, value: object, where: str) -> int | float:
        """The validated value (floats normalised to ``float``) or :class:`StrategyConfigError`."""
        if self.kind is int:
            ok = _is_int(value) and self.check(value)  # type: ignore[arg-type]
            kind = "an integer"
        else:
            ok = _is_number(value) and self.check(float(value))  # type: ignore[arg-type]
            kind = "a finite number"
        if not ok:
            raise StrategyConfigError(f"{where}: must be {kind} {self.words} ({_RULE})")
        return int(value) if self.kind is int else float(value)  # type: ignore[arg-type]


_FRACTION = Param(float, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
_MIN_NODES = Param(int, lambda v: v >= 1, ">= 1")
_NON_NEGATIVE = Param(float, lambda v: v >= 0.0, ">= 0")
_POSITIVE = Param(float, lambda v: v > 0.0, "> 0")
_BETA = Param(float, lambda v: 0.0 <= v < 1.0, "in [0, 1)")

#: Sampling and minimums every Message-API strategy takes.
COMMON_PARAMS: Mapping[str, Param] = MappingProxyType(
    {
        "fraction_train": _FRACTION,
        "fraction_evaluate": _FRACTION,
        "min_train_nodes": _MIN_NODES,
        "min_evaluate_nodes": _MIN_NODES,
        "min_available_nodes": _MIN_NODES,
    }
)


@dataclass(frozen=True)
class StrategyEntry:
    """A registered strategy: the keyword arguments a config may set, and whether SecAgg+ can
    run it (SecAgg+ reveals only the weighted mean of the nodes' weights)."""

    name: str
    params: Mapping[str, Param]
    secagg: bool

    def parse(self, raw: object, where: str) -> dict[str, Any]:
        """The validated keyword arguments in ``raw`` (unknown keys are refused)."""
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise StrategyConfigError(
                f"{where}: the arguments of strategy '{self.name}' must be a mapping ({_RULE})"
            )
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            param = self.params.get(key) if isinstance(key, str) else None
            if param is None:
                shown = key if isinstance(key, str) and key.isidentifier() else "<unnamed key>"
                raise StrategyConfigError(
                    f"{where}.{shown}: not an argument of strategy '{self.name}' "
                    f"(allowed: {', '.join(self.params)}) ({_RULE})"
                )
            kwargs[key] = param.parse(value, f"{where}.{key}")
        return kwargs


class StrategyRegistry:
    """Strategies by name; registering a taken name is refused, never silently replaced."""

    def __init__(self) -> None:
        self._entries: dict[str, StrategyEntry] = {}

    def register(self, entry: StrategyEntry) -> StrategyEntry:
        """Add ``entry``; raise :class:`StrategyRegistryError` when its name is taken."""
        if entry.name in self._entries:
            raise StrategyRegistryError(
                f"strategy '{entry.name}' is already registered; a registration never "
                f"replaces another ({_RULE})"
            )
        self._entries[entry.name] = entry
        return entry

    def get(self, name: object, where: str = "strategy.name") -> StrategyEntry:
        """The entry registered as ``name`` or :class:`StrategyConfigError`."""
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise StrategyConfigError(
                f"{where}: not a registered strategy (registered: {', '.join(self)}) ({_RULE})"
            )
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries


STRATEGIES = StrategyRegistry()
STRATEGIES.register(StrategyEntry("fedavg", COMMON_PARAMS, secagg=True))
STRATEGIES.register(
    StrategyEntry(
        "fedprox",
        MappingProxyType({**COMMON_PARAMS, "proximal_mu": _NON_NEGATIVE}),
        secagg=True,
    )
)
STRATEGIES.register(
    StrategyEntry(
        "fedadam",
        MappingProxyType(
            {
                **COMMON_PARAMS,
                "eta": _POSITIVE,
                "eta_l": _POSITIVE,
                "beta_1": _BETA,
                "beta_2": _BETA,
                "tau": _POSITIVE,
            }
        ),
        secagg=False,
    )
)


def parse_strategy(
    strategy_cfg: object, where: str = "strategy"
) -> tuple[StrategyEntry, dict[str, Any]]:
    """The registered entry and validated keyword arguments of a ``strategy`` config section
    (``name`` plus ``algorithm``); a Hydra instantiation key anywhere in it is refused."""
    if not isinstance(strategy_cfg, Mapping):
        raise StrategyConfigError(f"{where}: must be a mapping with a name ({_RULE})")
    hidden = find_instantiation_key(strategy_cfg)
    if hidden is not None:
        raise StrategyConfigError(
            f"{where}.{hidden}: a strategy is named from the registry, never by a class path "
            f"({_RULE})"
        )
    for key in strategy_cfg:
        if key not in ("name", "algorithm"):
            shown = key if isinstance(key, str) and key.isidentifier() else "<unnamed key>"
            raise StrategyConfigError(
                f"{where}.{shown}: a strategy section holds only name and algorithm ({_RULE})"
            )
    entry = STRATEGIES.get(strategy_cfg.get("name"), f"{where}.name")
    return entry, entry.parse(strategy_cfg.get("algorithm"), f"{where}.algorithm")
