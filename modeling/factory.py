"""Models come from a fixed registry by name, with validated hyper-parameters.

A model config is data: ``{"name": "mlp", "net": {"hidden": [32], "dropout": 0.0}}``. The name
must be registered here; the hyper-parameters are checked for type and range, and unknown keys
are refused. Nothing in a config, a received job or a model file is imported or instantiated:
there is no class path anywhere, and Hydra's ``_target_`` family of keys is refused outright.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from confide.modeling.errors import ConfideError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "INSTANTIATION_KEYS",
    "MODELS",
    "ModelConfigError",
    "ModelEntry",
    "ModelRegistry",
    "ModelRegistryError",
    "ModelSpec",
    "build_model",
    "find_instantiation_key",
    "model_spec_from_config",
    "parse_model_spec",
]

#: Hydra's instantiation keys: none of them is ever accepted from a received job or a file.
INSTANTIATION_KEYS = frozenset({"_target_", "_args_", "_partial_", "_recursive_", "_convert_"})
_FIELD = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_RULE = "rule: model registry"


class ModelConfigError(ConfideError):
    """A model config names no registered model, or its hyper-parameters are invalid."""


class ModelRegistryError(ConfideError):
    """A model registration would silently replace an existing one."""


def _field(key: object) -> str:
    """A key as it may appear in an error: a plain field name, never an arbitrary value."""
    return key if isinstance(key, str) and _FIELD.fullmatch(key) else "<unnamed key>"


def _walk(obj: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            here = (*path, _field(key))
            yield here, key
            yield from _walk(value, here)
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from _walk(value, (*path, f"[{index}]"))


def find_instantiation_key(obj: Any, allow: frozenset[tuple[str, ...]] = frozenset()) -> str | None:
    """The dotted path of the first Hydra instantiation key (``_target_``, ``_args_``, ...)
    anywhere in ``obj`` (nested mappings and lists), or ``None``. Paths in ``allow`` are skipped.
    """
    for path, key in _walk(obj, ()):
        if isinstance(key, str) and key in INSTANTIATION_KEYS and path not in allow:
            return ".".join(path).replace(".[", "[")
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(float(value))  # type: ignore[arg-type]


def _check_keys(raw: Any, allowed: Sequence[str], name: str, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ModelConfigError(
            f"{where}: hyper-parameters of model '{name}' must be a mapping ({_RULE})"
        )
    for key in raw:
        if key not in allowed:
            raise ModelConfigError(
                f"{where}.{_field(key)}: not a hyper-parameter of model '{name}' "
                f"(allowed: {', '.join(allowed) or 'none'}) ({_RULE})"
            )
    return raw


def _logreg_params(raw: Any, where: str) -> dict[str, Any]:
    _check_keys(raw, (), "logreg", where)
    return {}


def _mlp_params(raw: Any, where: str) -> dict[str, Any]:
    params = _check_keys(raw, ("hidden", "dropout"), "mlp", where)
    hidden = params.get("hidden", [32])
    if (
        isinstance(hidden, (str, bytes, Mapping))
        or not isinstance(hidden, Sequence)
        or not 1 <= len(hidden) <= 4
        or not all(_is_int(h) and 1 <= h <= 1024 for h in hidden)
    ):
        raise ModelConfigError(
            f"{where}.hidden: must be a list of 1 to 4 integer layer widths in 1..1024 ({_RULE})"
        )
    dropout = params.get("dropout", 0.0)
    if not _is_number(dropout) or not 0.0 <= float(dropout) < 1.0:
        raise ModelConfigError(f"{where}.dropout: must be a number in [0, 1) ({_RULE})")
    return {"hidden": tuple(int(h) for h in hidden), "dropout": float(dropout)}


@dataclass(frozen=True)
class Deferred:
    """A model class imported on first use, so checking a job's model never loads torch."""

    load: Callable[[], Callable[..., nn.Module]]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: ``builder(input_dim, **params)`` and its hyper-parameter check
    ``validate(raw, where)``, which returns the normalised parameters or raises."""

    name: str
    source: Callable[..., nn.Module] | Deferred
    validate: Callable[[Any, str], dict[str, Any]]

    @property
    def builder(self) -> Callable[..., nn.Module]:
        """The model class (for the shipped models, imported here on first use)."""
        return self.source.load() if isinstance(self.source, Deferred) else self.source


class ModelRegistry:
    """Models by name; registering a name twice is refused (no silent overwrite)."""

    def __init__(self, entries: Sequence[ModelEntry] = ()) -> None:
        self._entries: dict[str, ModelEntry] = {}
        for entry in entries:
            self.register(entry)

    def register(self, entry: ModelEntry) -> None:
        """Add ``entry``; a name that is already registered is refused."""
        if entry.name in self._entries:
            raise ModelRegistryError(
                f"model registry: '{_field(entry.name)}' is already registered "
                "(rule: no silent overwrite)"
            )
        self._entries[entry.name] = entry

    def get(self, name: Any, where: str = "model.name") -> ModelEntry:
        """The entry registered as ``name``; anything else is refused."""
        if not isinstance(name, str) or name not in self._entries:
            raise ModelConfigError(
                f"{where}: not a registered model (registered: {', '.join(self.names())}) ({_RULE})"
            )
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._entries))


def _models():
    from confide.modeling import models

    return models


#: The fixed registry every node, server and file loader uses. Built here, in one place.
MODELS = ModelRegistry(
    (
        ModelEntry("logreg", Deferred(lambda: _models().LogisticRegression), _logreg_params),
        ModelEntry("mlp", Deferred(lambda: _models().MLP), _mlp_params),
    )
)


@dataclass(frozen=True)
class ModelSpec:
    """A validated model choice: a registered name and its normalised hyper-parameters."""

    name: str
    params: Mapping[str, Any]

    def build(self, input_dim: int, seed: int = 0, out_dim: int = 1) -> nn.Module:
        """The model for ``input_dim`` inputs (``out_dim`` logits), initialised from ``seed``."""
        return build_model(self.name, self.params, input_dim, seed, out_dim)

    def to_config(self) -> dict[str, Any]:
        """Plain data (``{"name", "net"}``) for a config or a model file."""
        net = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        return {"name": self.name, "net": net}


def parse_model_spec(
    name: Any, params: Any, where: str = "model", registry: ModelRegistry = MODELS
) -> ModelSpec:
    """Check ``name`` against the registry and ``params`` against its hyper-parameter rules."""
    entry = registry.get(name, f"{where}.name")
    hidden_key = find_instantiation_key(params)
    if hidden_key is not None:
        raise ModelConfigError(
            f"{where}.net.{hidden_key}: a model is named from the registry, never by a class "
            f"path ({_RULE})"
        )
    normalised = entry.validate(params, f"{where}.net")
    return ModelSpec(entry.name, MappingProxyType(dict(normalised)))


def model_spec_from_config(section: Any, where: str = "model") -> ModelSpec:
    """The :class:`ModelSpec` of a config's ``model`` section (``name`` + ``net``); its other
    keys (``learning_rate``, ``grad_sample_mode``) are proposals read elsewhere."""
    if not isinstance(section, Mapping):
        raise ModelConfigError(f"{where}: must be a mapping with 'name' and 'net' ({_RULE})")
    hidden_key = find_instantiation_key(section)
    if hidden_key is not None:
        raise ModelConfigError(
            f"{where}.{hidden_key}: a model is named from the registry, never by a class path "
            f"({_RULE})"
        )
    return parse_model_spec(section.get("name"), section.get("net"), where)


def build_model(
    name: str,
    params: Mapping[str, Any] | None,
    input_dim: int,
    seed: int = 0,
    out_dim: int = 1,
) -> nn.Module:
    """Build registered model ``name`` with validated ``params`` for ``input_dim`` inputs and
    ``out_dim`` output logits (1 for a binary task, one per interval for a survival task).

    The torch seed is set to ``seed`` right before construction, so the initial weights depend
    only on (name, params, input_dim, seed).
    """
    entry = MODELS.get(name)
    checked = entry.validate(params, "model.net")
    try:
        width = operator.index(input_dim)
    except TypeError:
        width = 0
    if width < 1:
        raise ModelConfigError(f"model: input_dim must be a positive integer ({_RULE})")
    if isinstance(out_dim, bool) or not isinstance(out_dim, int) or not 1 <= out_dim <= 64:
        raise ModelConfigError(f"model: out_dim must be an integer in 1..64 ({_RULE})")
    import torch

    torch.default_generator.manual_seed(seed)  # CPU only (see local_training); same weights
    if out_dim == 1:  # binary heads are built exactly as before (same initial weights)
        return entry.builder(width, **checked)
    return entry.builder(width, **checked, out_dim=out_dim)
