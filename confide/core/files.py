"""File I/O helpers shared by every layer: atomic writes, locks, checked reads.

Rules, in one place:

- **Atomic writes.** Data goes to a hidden temporary sibling (``.<name>.<random>.tmp``), is
  fsynced, then renamed over the target; on any failure, including ``KeyboardInterrupt`` and a
  ``SIGTERM`` turned into an exception, the temporary file is removed, so no partial output
  remains.
- **Symlinks are written through.** When the target is a symbolic link, the write replaces the
  link's final target, so a linked ledger or key file stays one file (never split into two).
- **Checked reads.** Configuration, key, ledger and model files are read only after checking that
  they are regular files within a size cap: a FIFO, a device (``/dev/zero``) or a huge file is
  refused with one line instead of hanging or exhausting memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from confide.core.errors import ConfideError

__all__ = [
    "UnsafeFileError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_writer",
    "file_lock",
    "read_regular_file",
    "remove_stale_temps",
    "resolve_write_target",
]

_TEMP_SUFFIX = ".tmp"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class UnsafeFileError(ConfideError):
    """A file is not a regular file, is too large, or cannot be read or written safely."""


def resolve_write_target(path: str | Path) -> Path:
    """The file a write to ``path`` must replace: the final target of a symlink chain."""
    p = Path(path).expanduser()
    return Path(os.path.realpath(p)) if p.is_symlink() else p


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


@contextlib.contextmanager
def atomic_writer(
    path: str | Path,
    mode: str = "w",
    *,
    file_mode: int | None = None,
    overwrite: bool = True,
) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. ``file_mode`` (e.g. ``0o600``) is applied to
    the temporary file before any byte is written. With ``overwrite=False`` the file is created
    with a hard link instead of a rename, which fails with ``FileExistsError`` when ``path``
    exists (also as a symlink), atomically. On any exception the temporary file is removed and
    ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_writer mode must be 'w' or 'wb'")
    # a new file is created at ``path`` itself (an existing symlink there is refused by link())
    target = resolve_write_target(path) if overwrite else Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=_TEMP_SUFFIX, dir=target.parent)
    try:
        if file_mode is not None:
            os.fchmod(fd, file_mode)
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, file_mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, "wb", file_mode=file_mode) as handle:
        handle.write(data)


def atomic_write_text(
    path: str | Path, text: str, *, file_mode: int | None = None, overwrite: bool = True
) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, "w", file_mode=file_mode, overwrite=overwrite) as handle:
        handle.write(text)


def atomic_write_json(path: str | Path, obj: Any, *, file_mode: int | None = None) -> None:
    """Write ``obj`` as indented JSON (finite numbers only) to ``path`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write_text(path, text, file_mode=file_mode)


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``<path>.lock`` (next to the symlink-resolved path)."""
    target = resolve_write_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(target.name + ".lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove temporary siblings an interrupted atomic write of ``path`` left behind.

    Only files named like this module's temporaries for this exact target are removed (they may
    hold plaintext of an interrupted decrypt). Returns what was removed.
    """
    target = resolve_write_target(path)
    if not target.parent.is_dir():
        return []
    removed: list[Path] = []
    prefix = _temp_prefix(target)
    for candidate in target.parent.iterdir():
        name = candidate.name
        if name.startswith(prefix) and name.endswith(_TEMP_SUFFIX) and candidate.is_file():
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def read_regular_file(path: str | Path, what: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read ``path`` after checking it is a regular file of at most ``max_bytes``.

    ``what`` names the file's role in the error (``"key file"``, ``"policy"``). The check happens
    on the opened descriptor (no race between check and read); FIFOs are opened non-blocking so
    they cannot hang the caller.
    """
    p = Path(path).expanduser()
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise UnsafeFileError(f"{p}: {what} not found (rule: file exists)") from exc
    except OSError as exc:
        raise UnsafeFileError(
            f"{p}: {what} cannot be opened ({type(exc).__name__}) (rule: file readable)"
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"{p}: {what} is not a regular file (rule: regular file)")
        if info.st_size > max_bytes:
            raise UnsafeFileError(
                f"{p}: {what} is {info.st_size} bytes, over the {max_bytes}-byte limit "
                "(rule: file size)"
            )
        os.set_blocking(fd, True)
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise UnsafeFileError(f"{p}: {what} grew past {max_bytes} bytes (rule: file size)")
        return data
    finally:
        os.close(fd)
