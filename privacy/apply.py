"""Apply a policy to a DataFrame or a file (chunked, bounded memory, atomic output).

``apply_file`` reads CSV (all columns as text, only empty fields are null) or Parquet in chunks,
applies each column's transform, and writes to a temporary file in the output directory that is
renamed over ``out_path`` only when everything succeeded; on any error no output file remains.
Deterministic transforms give the same output whatever the chunk size; the low-cardinality
refusal for ``encrypt:deterministic`` is decided over the whole file.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from confide.core.files import atomic_writer, remove_stale_temps
from confide.core.paths import check_output_path

from .encryption import (
    check_cardinality,
    decrypt_series,
    encrypt_deterministic_series,
    encrypt_randomized_series,
    rotate_series,
)
from .errors import KeyMaterialError, PrivacyError, SchemaError, TransformError
from .generalize import generalize_series
from .keys import ENV_KEYRING_FILE, Keyring
from .masking import mask_series
from .policy import ColumnRule, Policy, load_policy
from .pseudonymize import pseudonymize_series
from .reader import open_csv, open_regular
from .tokens import SLICE

__all__ = [
    "DEFAULT_CHUNKSIZE",
    "ApplyStats",
    "apply_file",
    "apply_policy",
    "decrypt_file",
    "rotate_file",
    "transform_column",
]

DEFAULT_CHUNKSIZE = 100_000


@dataclass
class ApplyStats:
    """What a file run did."""

    rows: int = 0
    chunks: int = 0
    columns_in: list[str] = field(default_factory=list)
    columns_out: list[str] = field(default_factory=list)
    seconds: float = 0.0
    out_path: str = ""
    transforms: dict[str, str] = field(default_factory=dict)


def _require_keyring(policy: Policy, keyring: Keyring | None, cols: list[ColumnRule]) -> None:
    if keyring is None and cols:
        c = cols[0]
        raise KeyMaterialError(
            f"{policy.source}: column '{c.name}' needs a key (transform {c.transform}) but no "
            f"keyring was given; set {ENV_KEYRING_FILE} or pass --keys"
        )


def transform_column(
    s: pd.Series,
    col: ColumnRule,
    dataset: str,
    keyring: Keyring | None,
    *,
    check_cardinality: bool = True,
) -> pd.Series:
    """Apply one column rule's transform to ``s`` (``drop`` is handled by the caller)."""
    spec = col.spec
    if spec.family == "keep":
        return s
    if spec.family == "mask":
        return mask_series(s, spec.kind, spec.args, column=col.name)
    if spec.family == "generalize":
        return generalize_series(s, spec.kind, spec.args, column=col.name)
    if keyring is None:
        raise KeyMaterialError(
            f"column '{col.name}' needs a key (transform {col.transform}) "
            f"but no keyring was given; set {ENV_KEYRING_FILE} or pass --keys"
        )
    if spec.family == "pseudonymize":
        return pseudonymize_series(s, keyring, dataset, col.name)
    if spec.kind == "deterministic":
        return encrypt_deterministic_series(s, keyring, dataset, col.name, check=check_cardinality)
    return encrypt_randomized_series(s, keyring, dataset, col.name)


def apply_policy(
    df: pd.DataFrame,
    policy: Policy,
    keyring: Keyring | None = None,
    source: str = "<data>",
    *,
    check_cardinality: bool = True,
) -> pd.DataFrame:
    """Check the schema, transform every column, drop ``drop`` columns (policy order)."""
    return _apply(df, policy, keyring, source, check_cardinality, consume=False)


def _apply(
    df: pd.DataFrame,
    policy: Policy,
    keyring: Keyring | None,
    source: str,
    check_cardinality: bool,
    *,
    consume: bool,
) -> pd.DataFrame:
    """``consume=True`` removes each input column from ``df`` once transformed (less memory)."""
    policy.check_columns(list(df.columns), source)
    _require_keyring(policy, keyring, [c for c in policy.columns.values() if c.spec.needs_key])
    index = df.index
    out: dict[str, pd.Series] = {}
    for col in policy.columns.values():
        s = df.pop(col.name) if consume else df[col.name]
        if col.spec.family == "drop":
            continue
        try:
            out[col.name] = transform_column(
                s, col, policy.dataset, keyring, check_cardinality=check_cardinality
            )
        except TransformError as exc:
            raise TransformError(f"{source}: {exc}") from None
        del s
    return pd.DataFrame(out, index=index)


# --------------------------------------------------------------------------- file I/O


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _read_chunks(
    path: Path, chunksize: int, stack: contextlib.ExitStack
) -> tuple[list[str], pa.Schema | None, Iterator[pd.DataFrame]]:
    """Header, Arrow schema (Parquet only) and chunks of ``path``; files close with ``stack``."""
    if _is_parquet(path):
        handle = stack.enter_context(open_regular(path, "data file"))
        try:
            pf = pq.ParquetFile(handle)
        except (pa.ArrowInvalid, OSError):
            raise SchemaError(f"{path}: not a readable Parquet file (rule: schema)") from None
        schema = pf.schema_arrow
        it = (b.to_pandas() for b in pf.iter_batches(batch_size=chunksize))
        return list(schema.names), schema, it
    table = stack.enter_context(open_csv(path, "data file"))
    return table.names, None, table.chunks(chunksize)


class _Writer:
    """Writes DataFrame chunks as CSV or Parquet to an open temporary file."""

    def __init__(self, fh, parquet: bool, schema: pa.Schema | None) -> None:
        self.fh, self.parquet, self.schema = fh, parquet, schema
        self._pq: pq.ParquetWriter | None = None
        self._header = True

    def write(self, df: pd.DataFrame) -> None:
        if not self.parquet:
            table = pa.Table.from_pandas(df, preserve_index=False)
            pacsv.write_csv(
                table,
                self.fh,
                pacsv.WriteOptions(include_header=self._header, quoting_style="needed"),
            )
            self._header = False
            return
        table = pa.Table.from_pandas(df, schema=self.schema, preserve_index=False)
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.fh, self.schema)
        self._pq.write_table(table)

    def close(self) -> None:
        if self.parquet:
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.fh, self.schema)
            self._pq.close()


def _out_schema(
    columns: list[str], in_schema: pa.Schema | None, passthrough: Callable[[str], bool]
) -> pa.Schema:
    fields = []
    for c in columns:
        if in_schema is not None and passthrough(c):
            fields.append(in_schema.field(c))
        else:
            fields.append(pa.field(c, pa.large_string()))
    return pa.schema(fields)


def _inputs_of(policy: Policy, keyring: Keyring | None) -> dict[str, str | None]:
    """The policy and key files a command read (those that are files), for the output guard."""
    out: dict[str, str | None] = {}
    for role, src in (("policy", policy.source), ("key file", getattr(keyring, "source", None))):
        if src is not None and Path(src).is_file():
            out[role] = src
    return out


def _run(
    in_path: Path,
    out_path: Path,
    chunksize: int,
    check_header: Callable[[list[str]], None],
    out_columns: list[str],
    passthrough: Callable[[str], bool],
    fn: Callable[[pd.DataFrame], pd.DataFrame],
    finish: Callable[[], None] | None = None,
    inputs: dict[str, str | None] | None = None,
) -> ApplyStats:
    if chunksize < 1:
        raise PrivacyError(f"chunksize must be a positive integer, got {chunksize}")
    in_path, out_path = Path(in_path), Path(out_path)
    check_output_path(out_path, {"data file": in_path, **(inputs or {})})
    if not out_path.parent.is_dir():
        raise PrivacyError(f"{out_path}: output directory does not exist")
    remove_stale_temps(out_path)  # plaintext an interrupted earlier run may have left
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        columns, in_schema, chunks = _read_chunks(in_path, chunksize, stack)
        check_header(columns)
        stats = ApplyStats(
            columns_in=columns, columns_out=list(out_columns), out_path=str(out_path)
        )
        with atomic_writer(out_path, "wb") as fh:
            writer = _Writer(
                fh, _is_parquet(out_path), _out_schema(out_columns, in_schema, passthrough)
            )
            for chunk in chunks:
                stats.rows += len(chunk)
                stats.chunks += 1
                out = fn(chunk)  # may consume the chunk's columns
                del chunk
                writer.write(out)
                del out  # release before the next chunk is read
            if stats.chunks == 0 and not _is_parquet(out_path):
                writer.write(pd.DataFrame(columns=out_columns))
            if finish is not None:
                finish()
            writer.close()
    stats.seconds = time.perf_counter() - t0
    return stats


class _CardinalityTracker:
    """Distinct-token counts of deterministic columns across chunks (8 bytes per distinct)."""

    def __init__(self, names: list[str]) -> None:
        self.hashes = {n: np.empty(0, dtype=np.uint64) for n in names}
        self.nonnull = dict.fromkeys(names, 0)

    def add(self, out: pd.DataFrame) -> None:
        for name in self.hashes:
            arr = pc.unique(pa.array(out[name].array, type=pa.large_string()).drop_null())
            self.nonnull[name] += int(out[name].notna().sum())
            for start in range(0, len(arr), SLICE):  # bounded Python objects per step
                part = arr.slice(start, SLICE).to_numpy(zero_copy_only=False)
                self.hashes[name] = np.union1d(
                    self.hashes[name], pd.util.hash_array(part.astype(object))
                )

    def check(self, source: str) -> None:
        for name, h in self.hashes.items():
            try:
                check_cardinality(len(h), self.nonnull[name], name)
            except TransformError as exc:
                raise TransformError(f"{source}: {exc}") from None


def _as_policy(policy: Policy | str | Path) -> Policy:
    return policy if isinstance(policy, Policy) else load_policy(policy)


def apply_file(
    policy: Policy | str | Path,
    in_path: str | Path,
    out_path: str | Path,
    keyring: Keyring | None = None,
    chunksize: int = DEFAULT_CHUNKSIZE,
) -> ApplyStats:
    """Apply ``policy`` to a CSV/Parquet file, chunk by chunk, writing ``out_path`` atomically."""
    pol = _as_policy(policy)
    _require_keyring(pol, keyring, [c for c in pol.columns.values() if c.spec.needs_key])
    src = str(in_path)
    det = [c.name for c in pol.columns.values() if c.transform == "encrypt:deterministic"]
    tracker = _CardinalityTracker(det)

    def fn(chunk: pd.DataFrame) -> pd.DataFrame:
        out = _apply(chunk, pol, keyring, src, False, consume=True)
        tracker.add(out)
        return out

    stats = _run(
        Path(in_path),
        Path(out_path),
        chunksize,
        lambda cols: pol.check_columns(cols, src),
        pol.output_columns,
        lambda c: pol.columns[c].spec.family == "keep",
        fn,
        lambda: tracker.check(src),
        _inputs_of(pol, keyring),
    )
    stats.transforms = {c.name: c.transform for c in pol.columns.values()}
    return stats


def _applied_header(pol: Policy, src: str) -> Callable[[list[str]], None]:
    def check(cols: list[str]) -> None:
        if cols != pol.output_columns:
            extra = [c for c in cols if c not in pol.output_columns]
            missing = [c for c in pol.output_columns if c not in cols]
            raise SchemaError(
                f"{src}: columns do not match the output of policy {pol.source} "
                f"(unexpected: {', '.join(extra) or '-'}; missing: {', '.join(missing) or '-'}) "
                "(rule: schema)"
            )

    return check


def _crypto_file(
    pol: Policy,
    in_path,
    out_path,
    keyring: Keyring,
    chunksize: int,
    op: Callable[[pd.Series, ColumnRule, str], pd.Series],
) -> ApplyStats:
    src = str(in_path)
    enc = [c for c in pol.columns.values() if c.spec.family == "encrypt"]

    def fn(chunk: pd.DataFrame) -> pd.DataFrame:
        out = chunk.copy()
        for c in enc:
            out[c.name] = op(chunk[c.name], c, src)
        return out

    enc_names = {c.name for c in enc}
    return _run(
        Path(in_path),
        Path(out_path),
        chunksize,
        _applied_header(pol, src),
        pol.output_columns,
        lambda c: c not in enc_names,
        fn,
        inputs=_inputs_of(pol, keyring),
    )


def decrypt_file(
    policy: Policy | str | Path,
    in_path: str | Path,
    out_path: str | Path,
    keyring: Keyring,
    chunksize: int = DEFAULT_CHUNKSIZE,
) -> ApplyStats:
    """Owner-side: decrypt the encrypt:* columns of a file produced by :func:`apply_file`.

    Pseudonyms, masks and generalisations are one-way and stay as they are.
    """
    pol = _as_policy(policy)
    _require_keyring(pol, keyring, [c for c in pol.columns.values() if c.spec.family == "encrypt"])

    def op(s: pd.Series, c: ColumnRule, src: str) -> pd.Series:
        return decrypt_series(s, keyring, pol.dataset, c.name, mode=c.spec.kind, source=src)

    return _crypto_file(pol, in_path, out_path, keyring, chunksize, op)


def rotate_file(
    policy: Policy | str | Path,
    in_path: str | Path,
    out_path: str | Path,
    keyring: Keyring,
    chunksize: int = DEFAULT_CHUNKSIZE,
) -> ApplyStats:
    """Re-encrypt the encrypt:* columns under the keyring's active key (old ids must remain).

    Pseudonym columns cannot be re-keyed without the raw values and are left unchanged.
    """
    pol = _as_policy(policy)
    _require_keyring(pol, keyring, [c for c in pol.columns.values() if c.spec.family == "encrypt"])

    def op(s: pd.Series, c: ColumnRule, src: str) -> pd.Series:
        return rotate_series(s, keyring, pol.dataset, c.name, c.spec.kind, source=src)

    return _crypto_file(pol, in_path, out_path, keyring, chunksize, op)
