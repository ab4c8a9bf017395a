"""Output-path guard shared by every command that writes a file next to its inputs.

A command's output must never be one of its inputs: ``privacy apply --out K.json --keys K.json``
would replace the key file with CSV and make every ciphertext under it unrecoverable. Paths are
compared after resolving symlinks (``realpath``) and, for existing files, by device and inode, so
a symlink or a hard link to an input is caught too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from confide.core.errors import ConfideError

__all__ = ["OutputPathError", "check_output_path"]


class OutputPathError(ConfideError):
    """An output path resolves to one of the command's inputs (or cannot be written)."""


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_output_path(
    out: str | Path, inputs: Mapping[str, str | Path | None], *, what: str = "output"
) -> Path:
    """Refuse ``out`` when it is, links to, or is a hard link of any of ``inputs``.

    ``inputs`` maps each input's role (``"key file"``, ``"policy"``, ``"data"``) to its path;
    ``None`` entries are skipped. Returns ``out`` as a :class:`~pathlib.Path`. Nothing is
    written or created.
    """
    out_p = Path(out).expanduser()
    out_real = os.path.realpath(out_p)
    out_id = _identity(out_p)
    for role, path in inputs.items():
        if path is None:
            continue
        in_p = Path(path).expanduser()
        same = os.path.realpath(in_p) == out_real
        if not same and out_id is not None:
            same = _identity(in_p) == out_id
        if same:
            raise OutputPathError(
                f"{out_p}: the {what} path resolves to the {role} {in_p} "
                "(rule: output is not an input); choose another output path"
            )
    return out_p
