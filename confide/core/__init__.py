"""Confide's bottom layer: the root error type and file I/O helpers (no torch, no Flower)."""

from confide.core.errors import ConfideError
from confide.core.files import (
    UnsafeFileError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    file_lock,
    read_regular_file,
    remove_stale_temps,
    resolve_write_target,
)

__all__ = [
    "ConfideError",
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
