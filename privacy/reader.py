"""The one CSV reader of every node-side consumer: the node loader (``simulate``, ``score``,
``node check``) and ``privacy apply``/``decrypt``/``rotate`` share its rules.

Rules (each refusal is one line naming the file, the row, the column and the rule; never a value):

* the path is a regular file (a FIFO or a device is refused without being read);
* UTF-8 text with a header row; every header name is non-empty and appears once;
* every row has exactly as many fields as the header (a short row, or a value with an unquoted
  line break, is a malformed row, never padded with empty values);
* no value is longer than :data:`MAX_CELL_BYTES` (a header longer than :data:`MAX_ROW_BYTES`
  is refused; a quoted value that is never closed is refused);
* values are read as text; only empty fields are null.

Rows are numbered as in the file, counting the header as row 1. Reading is chunked: memory is
bounded by the chunk size and Arrow's small read blocks, whatever the file's size.
"""

from __future__ import annotations

import csv
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import SchemaError

__all__ = [
    "MAX_CELL_BYTES",
    "MAX_ROW_BYTES",
    "CsvFormatError",
    "CsvTable",
    "open_csv",
    "open_regular",
    "read_csv_frame",
]

MAX_CELL_BYTES = 64 * 1024  # longest value allowed in any cell
MAX_ROW_BYTES = 256 * 1024  # Arrow read block (bounds read-ahead memory); longest header row


class CsvFormatError(SchemaError):
    """A CSV file breaks the shared reader's rules (path, encoding, header, row width, size)."""


def open_regular(path: str | Path, what: str = "data file") -> BinaryIO:
    """Open ``path`` for binary reading after checking, on the descriptor, it is a regular file.

    A FIFO is opened non-blocking, so it is refused instead of hanging the caller.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CsvFormatError(f"{p}: file does not exist (rule: data path)") from None
    except OSError as exc:
        raise CsvFormatError(
            f"{p}: {what} cannot be opened ({exc.strerror or type(exc).__name__}) (rule: data path)"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CsvFormatError(f"{p}: not a regular file (rule: data path)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _header(handle: BinaryIO, source: str) -> list[str]:
    line = handle.readline(MAX_ROW_BYTES + 1)
    if not line.strip():
        raise CsvFormatError(f"{source}: file is empty, no header row (rule: non-empty data)")
    if len(line) > MAX_ROW_BYTES:
        raise CsvFormatError(
            f"{source}: row 1 (the header) is longer than {MAX_ROW_BYTES} bytes "
            "(rule: CSV row size)"
        )
    try:
        text = line.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise CsvFormatError(f"{source}: file is not UTF-8 text (rule: CSV encoding)") from None
    try:
        rows = list(csv.reader([text.rstrip("\r\n")], strict=True))
    except csv.Error:
        raise CsvFormatError(
            f"{source}: row 1 (the header) is malformed (rule: CSV format)"
        ) from None
    names = rows[0] if rows else []
    for i, name in enumerate(names, start=1):
        if not name.strip():
            raise CsvFormatError(f"{source}: header field {i} is empty (rule: schema)")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CsvFormatError(
                f"{source}: column '{name}' appears more than once in the header (rule: schema)"
            )
        seen.add(name)
    return names


def _count_quotes(handle: BinaryIO) -> int:
    """The number of quote characters in the file (an unclosed quote makes it odd; Arrow would
    otherwise read it as one value running to the end of the file)."""
    handle.seek(0)
    count = 0
    while chunk := handle.read(1 << 20):
        count += chunk.count(b'"')
    return count


def _native_stream(handle: BinaryIO) -> pa.NativeFile | None:
    """An Arrow-native input stream on the same open file (Linux: ``/proc/self/fd/N``, the
    inode already opened and checked, not the path again), or None where there is none.

    Arrow reads ahead on its own IO thread. Given a Python file object, that thread calls into
    Python; a refusal that ends the process while such a read is in flight aborts it at
    interpreter exit ("terminate called without an active exception"). A native stream never
    calls into Python."""
    proc = Path(f"/proc/self/fd/{handle.fileno()}")
    if not proc.exists():
        return None
    try:
        return pa.OSFile(str(proc), "r")
    except (OSError, pa.ArrowException):
        return None


class CsvTable:
    """An open CSV: its header ``names`` and its rows as text DataFrames (:meth:`chunks`)."""

    def __init__(self, path: str | Path, what: str = "data file") -> None:
        self.path = Path(path)
        self.source = str(path)
        self._handle = open_regular(path, what)
        try:
            self.names = _header(self._handle, self.source)
        except BaseException:
            self._handle.close()
            raise

    def close(self) -> None:
        """Release the file."""
        self._handle.close()

    def __enter__(self) -> CsvTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def chunks(self, chunksize: int) -> Iterator[pd.DataFrame]:
        """Yield the data rows as DataFrames of at most ``chunksize`` rows (text, ``str``)."""
        if chunksize < 1:
            raise ValueError("chunksize must be a positive integer")
        quotes = _count_quotes(self._handle)
        self._handle.seek(0)
        stream = _native_stream(self._handle)
        bad_rows: list[tuple[int | None, int, int]] = []

        def on_invalid(row) -> str:
            bad_rows.append((row.number, row.actual_columns, row.expected_columns))
            return "error"

        reader = None
        try:
            reader = pacsv.open_csv(
                stream if stream is not None else self._handle,
                read_options=pacsv.ReadOptions(block_size=MAX_ROW_BYTES, use_threads=False),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=on_invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(self.names, pa.large_string()),
                    strings_can_be_null=True,
                    null_values=[""],
                ),
            )
            if reader.schema.names != self.names:
                raise CsvFormatError(
                    f"{self.source}: row 1 (the header) is malformed (rule: CSV format)"
                )
            pending: list[pa.RecordBatch] = []
            rows = 0
            done = 0  # data rows already checked
            for batch in reader:
                self._check_cells(batch, done)
                done += len(batch)
                while len(batch):
                    take = min(len(batch), chunksize - rows)
                    pending.append(batch.slice(0, take))
                    rows += take
                    batch = batch.slice(take)
                    if rows == chunksize:
                        rows = 0
                        yield _to_frame(_drain(pending))
            if quotes % 2 and _unclosed_quote(self._handle):
                raise CsvFormatError(
                    f"{self.source}: a quoted value is never closed (rule: CSV format)"
                )
            if rows:
                yield _to_frame(_drain(pending))
        except pa.ArrowInvalid as exc:  # Arrow's message may quote row contents: never repeated
            raise self._explain(exc, bad_rows) from None
        finally:
            if reader is not None:
                reader.close()
            if stream is not None:
                stream.close()

    def _check_cells(self, batch: pa.RecordBatch, done: int) -> None:
        for name, col in zip(batch.schema.names, batch.columns, strict=True):
            lengths = pc.binary_length(col)
            longest = pc.max(lengths).as_py()
            if longest is not None and longest > MAX_CELL_BYTES:
                first = pc.index(pc.greater(lengths, MAX_CELL_BYTES), True).as_py()
                raise _cell_error(self.source, done + first + 2, name)

    def _explain(self, exc: pa.ArrowInvalid, bad_rows: list) -> CsvFormatError:
        if bad_rows:
            number, actual, expected = bad_rows[0]
            where = f"row {number}" if number is not None else "a row"
            return CsvFormatError(
                f"{self.source}: {where} has {actual} fields but the header has {expected} "
                "(rule: CSV row width); quote values that contain commas or line breaks"
            )
        if "UTF8" in str(exc) or "UTF-8" in str(exc):
            return CsvFormatError(f"{self.source}: file is not UTF-8 text (rule: CSV encoding)")
        found = _scan_sizes(self._handle, self.names, self.source)
        if found is not None:
            return found
        return CsvFormatError(
            f"{self.source}: malformed CSV, e.g. a quoted value that is never closed "
            "(rule: CSV format)"
        )


def _cell_error(source: str, row: int, column: str) -> CsvFormatError:
    return CsvFormatError(
        f"{source}: row {row}, column '{column}': value is longer than {MAX_CELL_BYTES} bytes "
        "(rule: CSV cell size)"
    )


_SPECIAL = re.compile(rb'[",\n]')


def _scan_sizes(handle: BinaryIO, names: list[str], source: str) -> CsvFormatError | None:
    """Find the first over-long value or row by a streaming scan (error path only)."""
    handle.seek(0)
    row, col, cell, row_len, in_quotes = 1, 0, 0, 0, False

    def column() -> str:
        return names[col] if col < len(names) else f"#{col + 1}"

    while chunk := handle.read(1 << 20):
        pos = 0
        for m in _SPECIAL.finditer(chunk):
            step = m.start() - pos + 1
            cell += step
            row_len += step
            pos = m.end()
            char = chunk[m.start()]
            if char == 0x22:  # '"'
                in_quotes = not in_quotes
                continue
            if in_quotes:
                continue
            if cell - 1 > MAX_CELL_BYTES + 2 and row > 1:  # +2: the value's quotes
                return _cell_error(source, row, column())
            if row_len > MAX_ROW_BYTES and row > 1:
                return CsvFormatError(
                    f"{source}: row {row} is longer than {MAX_ROW_BYTES} bytes (rule: CSV row size)"
                )
            cell = 0
            if char == 0x2C:  # ','
                col += 1
            else:
                row, col, row_len = row + 1, 0, 0
        cell += len(chunk) - pos
        row_len += len(chunk) - pos
        if cell > MAX_CELL_BYTES + 2 and row > 1:
            return _cell_error(source, row, column())
    if row_len > MAX_ROW_BYTES and row > 1:
        return CsvFormatError(
            f"{source}: row {row} is longer than {MAX_ROW_BYTES} bytes (rule: CSV row size)"
        )
    return None


def _unclosed_quote(handle: BinaryIO) -> bool:
    """True when a value opened with a quote is never closed (only run on an odd quote count:
    a quote inside an unquoted value, such as ``5'10"``, is literal text and does not count)."""
    handle.seek(0)
    in_quotes, at_start, quote_seen = False, True, False
    while chunk := handle.read(1 << 20):
        pos = 0
        for m in _SPECIAL.finditer(chunk):
            i, char = m.start(), chunk[m.start()]
            adjacent = i == pos
            pos = i + 1
            if quote_seen:  # the previous byte inside a quoted value was a quote
                quote_seen = False
                if adjacent and char == 0x22:  # '""' is an escaped quote
                    continue
                in_quotes, at_start = False, False
            if in_quotes:
                quote_seen = char == 0x22
                continue
            if char == 0x22:
                in_quotes = at_start and adjacent
                at_start = False
            else:
                at_start = True
        if pos < len(chunk):  # other bytes after the last special one
            if quote_seen:
                quote_seen, in_quotes = False, False
            if not in_quotes:
                at_start = False
    return in_quotes and not quote_seen


def _drain(batches: list) -> list:
    """Move the items out of ``batches`` so the generator holds no reference while yielding."""
    out = batches[:]
    batches.clear()
    return out


def _to_frame(batches: list[pa.RecordBatch]) -> pd.DataFrame:
    table = pa.Table.from_batches(batches)
    return pd.DataFrame(
        {
            name: pd.Series(col.to_pandas().array, dtype="str")
            for name, col in zip(table.column_names, table.columns, strict=True)
        }
    )


def open_csv(path: str | Path, what: str = "data file") -> CsvTable:
    """Open ``path`` under the reader's rules (header checked now, rows on iteration)."""
    return CsvTable(path, what)


def read_csv_frame(
    path: str | Path, *, require_rows: bool = True, chunksize: int = 100_000
) -> pd.DataFrame:
    """The whole file as one text DataFrame (empty fields are ``""``), under the reader's rules."""
    with open_csv(path) as table:
        parts = list(table.chunks(chunksize))
        names = table.names
    if not parts:
        if require_rows:
            raise CsvFormatError(
                f"{path}: file has a header but no data rows (rule: non-empty data)"
            )
        return pd.DataFrame({n: pd.Series([], dtype="str") for n in names})
    frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    return frame.fillna("")
