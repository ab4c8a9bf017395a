"""Which Confide code a process runs: the installed version and a digest of its source.

In deployment the Flower app bundle (FAB) carries no Confide code at all (see
``[tool.flwr.app]`` in pyproject.toml): the SuperLink and every SuperNode run their own
installed, vetted Confide, and a node never imports code the coordinator sent. ``confide
deploy`` puts the coordinator's version and source digest into the run config
(:func:`identity_run_config`); each node compares them with its own
(:func:`check_coordinator_code`) and refuses the run, with the reason, when they differ, so a
federation never silently mixes two versions of the protocol.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from confide.core.errors import ConfideError

__all__ = [
    "DIGEST_KEY",
    "VERSION_KEY",
    "CodeIdentity",
    "CodeMismatch",
    "check_coordinator_code",
    "identity_run_config",
    "installed_identity",
    "source_digest",
]

VERSION_KEY = "confide-version"
DIGEST_KEY = "confide-code-digest"
# Sub-packages installed from folders outside confide/ (pyproject's package-dir mapping).
_MAPPED = ("benchmarks", "clients", "conf", "modeling", "privacy", "server", "simulations")
_SOURCE_SUFFIXES = (".py", ".yaml")


class CodeMismatch(ConfideError):
    """The coordinator runs different Confide code from this node (or did not say which)."""


@dataclass(frozen=True)
class CodeIdentity:
    """A Confide installation: its version and the SHA-256 digest of its source files."""

    version: str
    digest: str


def _files(root: Path, prefix: str, skip: tuple[str, ...] = ()) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (
            not path.is_file()
            or path.suffix not in _SOURCE_SUFFIXES
            or "__pycache__" in rel.parts
            or (rel.parts and rel.parts[0] in skip)
        ):
            continue
        out[f"{prefix}/{rel.as_posix()}"] = path
    return out


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def source_digest(package: str = "confide", mapped: tuple[str, ...] = _MAPPED) -> str:
    """SHA-256 over an installed package's source (``.py`` and ``.yaml``) files: their
    package-relative names and contents, the same for editable and regular installs.
    ``mapped``: sub-packages installed from folders outside the package's own folder."""
    root = _package_dir(package)
    if root is None:
        raise CodeMismatch(f"the {package} package is not installed (rule: code version)")
    files = _files(root, package, skip=mapped)
    for sub in mapped:
        folder = _package_dir(f"{package}.{sub}")
        if folder is not None:
            files.update(_files(folder, f"{package}/{sub}"))
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(files[name].read_bytes()).digest())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def installed_identity() -> CodeIdentity:
    """This process's Confide version and source digest (computed once per process)."""
    try:
        version = metadata.version("confide")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return CodeIdentity(version, source_digest())


def identity_run_config(identity: CodeIdentity | None = None) -> dict[str, str]:
    """The run-config entries that tell nodes which code the coordinator runs."""
    identity = identity or installed_identity()
    return {VERSION_KEY: identity.version, DIGEST_KEY: identity.digest}


def check_coordinator_code(
    run_config: Mapping[str, object], own: CodeIdentity | None = None
) -> None:
    """Refuse (:class:`CodeMismatch`) unless the run config names exactly this node's Confide
    version and source digest."""
    own = own or installed_identity()
    version = str(run_config.get(VERSION_KEY) or "")
    digest = str(run_config.get(DIGEST_KEY) or "")
    if not version or not digest:
        raise CodeMismatch(
            f"the run config does not say which Confide code the coordinator runs "
            f"('{VERSION_KEY}', '{DIGEST_KEY}'); start runs with `confide deploy` "
            "(rule: code version)"
        )
    if version != own.version or digest != own.digest:
        raise CodeMismatch(
            f"the coordinator runs Confide {version[:40]} (source digest {digest[:12]}), this "
            f"node runs {own.version} (source digest {own.digest[:12]}); every organisation "
            "must run the same vetted release (rule: code version)"
        )
