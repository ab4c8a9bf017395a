"""Compose Confide's configuration with Hydra: the single source of configuration.

Every command that takes a config selection (simulate, baseline, audit) goes through
:func:`compose_config`, so a review resolves exactly what a run resolves. A user's own config
directory joins Hydra's search path with ``--config-dir`` (or ``hydra.searchpath=[...]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confide.core.errors import ConfideError

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["ConfigError", "compose_config", "to_container"]


class ConfigError(ConfideError):
    """The config selection or an override could not be composed."""


def _searchpath_override(config_dirs: Sequence[str | Path]) -> list[str]:
    if not config_dirs:
        return []
    entries = []
    for raw in config_dirs:
        path = Path(raw).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"{raw}: config directory does not exist (rule: --config-dir)")
        entries.append(f"file://{path}")
    return ["hydra.searchpath=[" + ",".join(entries) + "]"]


def compose_config(
    overrides: Sequence[str] = (), config_dirs: Sequence[str | Path] = ()
) -> DictConfig:
    """Compose ``conf/config.yaml`` with ``overrides`` and optional extra config directories.

    Hydra is imported here, not at module import, so commands that never compose stay fast."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    all_overrides = [*_searchpath_override(config_dirs), *overrides]
    try:
        with initialize_config_module(config_module="confide.conf", version_base=None):
            cfg = compose(config_name="config", overrides=all_overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"config: {first} (rule: config composition)") from exc
    finally:
        GlobalHydra.instance().clear()
    return cfg


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolve every interpolation and return plain Python containers."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config: {exc} (rule: config interpolation)") from exc
