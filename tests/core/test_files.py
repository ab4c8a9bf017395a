"""confide.core.files: atomic writes, write-through symlinks, exclusive create, checked reads."""

from __future__ import annotations

import os
import stat

import pytest

from confide.core.errors import ConfideError
from confide.core.files import (
    UnsafeFileError,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    file_lock,
    read_regular_file,
    remove_stale_temps,
)


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "ledger.json"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write("half of the new content")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert _siblings(target) == ["ledger.json"]


def test_a_keyboard_interrupt_also_removes_the_temp(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt), atomic_writer(target) as handle:
        handle.write("plaintext")
        raise KeyboardInterrupt
    assert not target.exists() and _siblings(target) == []


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    real = tmp_path / "store" / "ledger.json"
    real.parent.mkdir()
    real.write_text("v1\n")
    link = tmp_path / "ledger.json"
    link.symlink_to(real)
    atomic_write_text(link, "v2\n")
    assert link.is_symlink(), "the link must stay a link (one ledger, never two)"
    assert real.read_text() == "v2\n"
    # control: a plain os.replace onto the link path splits it into two files
    tmp = tmp_path / "tmp"
    tmp.write_text("v3\n")
    os.replace(tmp, link)
    assert not link.is_symlink() and real.read_text() == "v2\n"


def test_exclusive_create_refuses_an_existing_file_or_link(tmp_path):
    target = tmp_path / "keys.json"
    atomic_write_text(target, "secret\n", file_mode=0o600, overwrite=False)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        atomic_write_text(target, "other\n", overwrite=False)
    assert target.read_text() == "secret\n"
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(FileExistsError):
        atomic_write_text(link, "x\n", overwrite=False)
    assert not (tmp_path / "elsewhere.json").exists()
    assert sorted(_siblings(target)) == ["keys.json", "link.json"]


def test_json_refuses_non_finite_numbers_and_writes_nothing(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(ValueError):
        atomic_write_json(target, {"epsilon": float("nan")})
    assert _siblings(target) == []


def test_stale_temps_of_the_same_target_only_are_removed(tmp_path):
    target = tmp_path / "plain.csv"
    stale = tmp_path / ".plain.csv.abc123.tmp"
    other = tmp_path / ".other.csv.abc123.tmp"
    stale.write_text("plaintext left by a killed run")
    other.write_text("not ours")
    assert remove_stale_temps(target) == [stale]
    assert not stale.exists() and other.exists()


def test_checked_read_refuses_fifos_devices_and_oversized_files(tmp_path):
    fifo = tmp_path / "keys.json"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        read_regular_file(fifo, "key file")  # returns at once: no writer, no hang
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        read_regular_file("/dev/zero", "policy")
    big = tmp_path / "policy.yaml"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(UnsafeFileError, match="over the 1024-byte limit"):
        read_regular_file(big, "policy", max_bytes=1024)
    assert read_regular_file(big, "policy", max_bytes=4096) == b"x" * 2048
    with pytest.raises(UnsafeFileError, match="not found"):
        read_regular_file(tmp_path / "missing.yaml", "policy")


def test_errors_are_confide_errors_on_one_line():
    err = UnsafeFileError("a\nb   c")
    assert isinstance(err, ConfideError) and str(err) == "a b c"


def test_the_lock_sits_beside_the_resolved_target(tmp_path):
    real = tmp_path / "store" / "run-ledger.jsonl"
    real.parent.mkdir()
    link = tmp_path / "run-ledger.jsonl"
    link.symlink_to(real)
    with file_lock(link):
        assert (real.parent / "run-ledger.jsonl.lock").exists()
    assert not (tmp_path / "run-ledger.jsonl.lock").exists()
