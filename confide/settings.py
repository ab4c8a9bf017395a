"""Typed settings for the ``secure`` and ``deployment`` config sections, parsed once.

The server (strategy wrappers, SecAgg+ rounds), the run report, the compliance audit and the
review rules all read these dataclasses instead of the raw mappings, so they share one set of
defaults and one set of refusals:

* a missing ``secure``, ``secure.client_dp`` or ``secure.secagg`` section, or a missing
  ``enabled`` in one of them, is OFF;
* no ``deployment`` section means the local simulation engine (no network transport);
  ``deployment.transport`` is ``tls`` (the default) or ``insecure``; anything else is refused
  here, at parse time.

This module imports only :mod:`confide.core` (no torch, Flower or typer), so the privacy
package's review rules can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confide.core.errors import ConfideError

__all__ = [
    "CLIPPING_SIDES",
    "TRANSPORTS",
    "ClientDPSettings",
    "DeploymentSettings",
    "SecAggSettings",
    "SecureConfigError",
    "SecureSettings",
    "SettingsError",
    "parse_deployment",
    "parse_secure",
]

TRANSPORTS = ("simulation", "tls", "insecure")
CLIPPING_SIDES = ("client", "server")
_SECURE_KEYS = {"name", "client_dp", "secagg"}
_CLIENT_DP_KEYS = {"enabled", "clipping", "noise_multiplier", "clipping_norm"}
_SECAGG_KEYS = {
    "enabled",
    "num_shares",
    "reconstruction_threshold",
    "max_weight",
    "clipping_range",
    "quantization_range",
    "modulus_range",
}
_DEPLOYMENT_KEYS = {"transport", "insecure"}


class SettingsError(ConfideError):
    """A ``secure`` or ``deployment`` setting is malformed or unsafe."""


class SecureConfigError(SettingsError):
    """The ``secure`` config asks for something that cannot be done safely."""


@dataclass(frozen=True)
class ClientDPSettings:
    """Client-level DP (Flower's fixed-clipping wrappers) on top of every node's DP-SGD."""

    enabled: bool = False
    clipping: str = "client"
    noise_multiplier: float | None = None
    clipping_norm: float | None = None

    def describe(self) -> str:
        """One line for reports: ``off`` or the clipping side, norm and noise multiplier."""
        if not self.enabled:
            return "off"
        return (
            f"on (clipping on the {self.clipping}, clipping norm {self.clipping_norm}, "
            f"noise multiplier {self.noise_multiplier})"
        )


@dataclass(frozen=True)
class SecAggSettings:
    """Flower's SecAgg+ parameters (the defaults are Flower's ``SecAggPlusWorkflow``'s)."""

    enabled: bool = False
    num_shares: float = 1.0
    reconstruction_threshold: float = 0.5
    max_weight: float = 100000.0
    clipping_range: float = 8.0
    quantization_range: int = 2**24
    modulus_range: int = 2**32

    def workflow_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SecAggPlusWorkflow`` (without ``timeout``)."""
        return {
            "num_shares": self.num_shares,
            "reconstruction_threshold": self.reconstruction_threshold,
            "max_weight": self.max_weight,
            "clipping_range": self.clipping_range,
            "quantization_range": self.quantization_range,
            "modulus_range": self.modulus_range,
        }


@dataclass(frozen=True)
class SecureSettings:
    """The ``secure`` section: client-level DP and SecAgg+, both off unless enabled."""

    client_dp: ClientDPSettings = field(default_factory=ClientDPSettings)
    secagg: SecAggSettings = field(default_factory=SecAggSettings)

    @property
    def unit_weights(self) -> bool:
        """Whether the Message-API strategy must weight nodes equally (client DP without
        SecAgg+: the noise of Flower's wrappers assumes an unweighted mean)."""
        return self.client_dp.enabled and not self.secagg.enabled


@dataclass(frozen=True)
class DeploymentSettings:
    """Which engine and transport a job runs on: ``simulation``, ``tls`` or ``insecure``."""

    transport: str = "simulation"

    @property
    def networked(self) -> bool:
        """Whether the job crosses a network (the deployment engine)."""
        return self.transport != "simulation"


def _mapping(raw: Any, where: str, error: type[SettingsError]) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise error(f"{where} must be a mapping (rule: settings)")
    return raw


def _unknown(raw: Mapping[str, Any], allowed: set[str], where: str, error: type) -> None:
    unknown = sorted(str(k) for k in set(raw) - allowed)
    if unknown:
        raise error(f"{where}: unknown keys {unknown} (rule: settings)")


def _enabled(raw: Mapping[str, Any], where: str) -> bool:
    value = raw.get("enabled", False)
    if not isinstance(value, bool):
        raise SecureConfigError(f"{where}.enabled must be true or false (rule: settings)")
    return value


def _number(raw: Mapping[str, Any], key: str, where: str, rule: str, default: Any = None):
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SecureConfigError(f"{where}.{key} must be a number (rule: {rule})")
    return value


def _client_dp(raw: Mapping[str, Any], secagg_on: bool) -> ClientDPSettings:
    where, rule = "secure.client_dp", "client DP"
    _unknown(raw, _CLIENT_DP_KEYS, where, SecureConfigError)
    if not _enabled(raw, where):
        return ClientDPSettings()
    clipping = raw.get("clipping", "client")
    if clipping not in CLIPPING_SIDES:
        raise SecureConfigError(f"{where}.clipping must be client or server (rule: {rule})")
    try:
        noise = float(_number(raw, "noise_multiplier", where, rule))
        norm = float(_number(raw, "clipping_norm", where, rule))
    except SecureConfigError as exc:
        raise SecureConfigError(
            f"{where} needs numeric noise_multiplier and clipping_norm (rule: {rule})"
        ) from exc
    if noise <= 0 or norm <= 0:
        raise SecureConfigError(
            f"{where}.noise_multiplier and clipping_norm must be > 0 (rule: {rule})"
        )
    if clipping == "server" and secagg_on:
        raise SecureConfigError(
            f"{where}.clipping=server cannot work with SecAgg+: the server never sees one "
            f"node's update to clip it; use clipping=client (rule: {rule})"
        )
    return ClientDPSettings(True, str(clipping), noise, norm)


def _secagg(raw: Mapping[str, Any]) -> SecAggSettings:
    where, rule = "secure.secagg", "secure aggregation"
    _unknown(raw, _SECAGG_KEYS, where, SecureConfigError)
    if not _enabled(raw, where):
        return SecAggSettings()
    base = SecAggSettings(enabled=True)
    values: dict[str, Any] = {}
    for key in ("num_shares", "reconstruction_threshold"):
        values[key] = _number(raw, key, where, rule, getattr(base, key))
    for key in ("max_weight", "clipping_range"):
        values[key] = float(_number(raw, key, where, rule, getattr(base, key)))
    for key in ("quantization_range", "modulus_range"):
        value = _number(raw, key, where, rule, getattr(base, key))
        if int(value) != value:
            raise SecureConfigError(f"{where}.{key} must be a whole number (rule: {rule})")
        values[key] = int(value)
    if any(v <= 0 for v in values.values()):
        raise SecureConfigError(f"{where}: every parameter must be > 0 (rule: {rule})")
    return SecAggSettings(enabled=True, **values)


def parse_secure(config: Mapping[str, Any]) -> SecureSettings:
    """Parse ``config["secure"]`` (a composed run config) into :class:`SecureSettings`."""
    raw = _mapping(config.get("secure"), "secure", SecureConfigError)
    _unknown(raw, _SECURE_KEYS, "secure", SecureConfigError)
    secagg = _secagg(_mapping(raw.get("secagg"), "secure.secagg", SecureConfigError))
    client_dp = _client_dp(
        _mapping(raw.get("client_dp"), "secure.client_dp", SecureConfigError), secagg.enabled
    )
    return SecureSettings(client_dp=client_dp, secagg=secagg)


def parse_deployment(config: Mapping[str, Any]) -> DeploymentSettings:
    """Parse ``config["deployment"]``: absent is the simulation engine; ``transport`` is
    ``tls`` (default) or ``insecure`` (``insecure: true`` says the same); anything else is an
    error."""
    if config.get("deployment") is None:
        return DeploymentSettings("simulation")
    raw = _mapping(config["deployment"], "deployment", SettingsError)
    _unknown(raw, _DEPLOYMENT_KEYS, "deployment", SettingsError)
    flag = raw.get("insecure", False)
    if not isinstance(flag, bool):
        raise SettingsError("deployment.insecure must be true or false (rule: transport)")
    value = raw.get("transport", "insecure" if flag else "tls")
    if not isinstance(value, str) or value.lower() not in ("tls", "insecure"):
        raise SettingsError(
            "deployment.transport must be tls or insecure; an unknown transport is refused "
            "(rule: transport)"
        )
    value = value.lower()
    if flag and value != "insecure":
        raise SettingsError(
            "deployment.insecure=true contradicts deployment.transport=tls (rule: transport)"
        )
    return DeploymentSettings(value)
