"""Private set intersection (DH-PSI) on a normalised join key, for vertical federated learning.

Protocol (docs/vertical.md): the label node L blinds its IDs, m1 = H(id)^a; each feature node F
re-blinds them, m2 = m1^b (same order), and blinds its own IDs in a secret random order,
m3 = H(id)^b; L computes m4 = m3^a and matches m2 with m4: equal elements are the same ID
(H(x)^ab = H(x)^ba). Either side may append :func:`dummy_elements` so the other sees only the
padded size. Secrets are fresh per run; H is domain-separated and bound to the run id, so
elements of two runs cannot be linked.

**Group: the prime-order subgroup of Curve25519 with X25519 exponentiation** (PyNaCl's bundled
libsodium, Apache-2.0 / ISC; see :mod:`confide.privacy.psi_group`). Measured on the 2-core
development machine (one core, Python loop included, 20k elements):

- X25519 via PyNaCl: 24.6k exponentiations per core-second; via ``cryptography``: 21.3k.
- ristretto255 via the system libsodium (ctypes; PyNaCl 1.6 exposes no ristretto binding and
  hides the symbols of its bundled copy): 15.7k per core-second.
- Ed25519 ``scalarmult_noclamp`` via PyNaCl: 9.0k.

A 1M x 1M run needs 4M exponentiations and 2M hashes to the group (libsodium's Elligator 2,
about 30k per core-second): by these rates about 118 s on two idle cores with X25519 against
about 148 s with ristretto255, and X25519 needs no system library. Measured
(``python -m confide.benchmarks --only psi``, BENCHMARKS.md): 1M x 1M in 112.9 s, 100k x 100k in
11.6 s, about 17.7k exponentiations per core-second with two workers.

Security is that of ristretto255 for this use: the hash lands in the prime-order subgroup of
the curve (Elligator 2 with cofactor clearing, never the twist, so an element carries no
curve/twist bit of its ID's hash), DDH is assumed hard there, x-only encoding only
identifies P with -P, and X25519 clamping plus twist security mean a hostile input cannot
extract the secret; small-order and non-canonical inputs are refused. ``openmined-psi`` (P-256)
was not chosen: its API yields only the client's indices, while the protocol above needs the
pairing of L's rows with F's positions.

From 20k elements on, the work is split into one contiguous part per worker (default: the cores
this process may use): this process does one, fresh ``python`` worker processes the others. The
secret reaches a worker through its stdin pipe, in memory, never a file, argument or environment.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from confide.privacy import psi_group as _group
from confide.privacy.errors import PrivacyError

__all__ = [
    "ELEMENT_SIZE",
    "PsiError",
    "PsiParty",
    "dummy_elements",
    "intersect",
    "normalise_id",
    "normalise_ids",
    "shuffled",
]

#: Bytes per blinded element.
ELEMENT_SIZE: int = _group.ELEMENT_SIZE
#: Below this many elements the exponentiations stay in the calling process.
PARALLEL_MIN = 20_000
_SEED_MIN = 32


class PsiError(PrivacyError):
    """A PSI input or message Confide refuses (names the field and rule, never an ID)."""


def normalise_id(value: str) -> str:
    """NFKC, then strip whitespace (full-width included); an empty result is a PsiError."""
    if not isinstance(value, str):
        raise PsiError("join key: a value is not text (rule: join-key)")
    out = value.strip() if value.isascii() else unicodedata.normalize("NFKC", value).strip()
    if not out:
        raise PsiError("join key: a value is empty after normalisation (rule: join-key)")
    return out


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in {"NAType", "NaTType"}


def normalise_ids(values: Iterable[Any], *, source: str, column: str) -> list[str]:
    """Normalise every join-key value; refuse missing/empty and duplicates (counts only).

    Accepts a pandas Series or any iterable of text (integers are written in decimal). A
    duplicate is a row whose normalised value an earlier row already has.
    """
    out: list[str] = []
    empty = non_text = 0
    for value in values.tolist() if hasattr(values, "tolist") else values:
        if isinstance(value, str):
            v = value.strip() if value.isascii() else unicodedata.normalize("NFKC", value).strip()
        elif isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
            v = str(int(value))
        elif _is_missing(value):
            v = ""
        else:
            non_text += 1
            continue
        if not v:
            empty += 1
            continue
        out.append(v)
    duplicated = len(out) - len(set(out))
    if empty or duplicated or non_text:
        counts = f"{non_text} non-text, " if non_text else ""
        raise PsiError(
            f"{source}: join key '{column}' has {counts}{empty} empty and {duplicated} "
            "duplicated values (rule: join-key)"
        )
    return out


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class PsiParty:
    """One party's secret for one run: blinds its own IDs and re-blinds the other party's.

    The secret is a fresh 32-byte X25519 scalar from ``os.urandom`` (or derived from a node-local
    seed, :meth:`from_seed`); it cannot be pickled or copied and is not in the repr.
    """

    __slots__ = ("__secret", "_prefix", "run_id", "workers")

    def __init__(self, run_id: str, *, workers: int | None = None) -> None:
        self._setup(run_id, os.urandom(32), workers)

    def _setup(self, run_id: str, secret: bytes, workers: int | None) -> None:
        if not isinstance(run_id, str) or not run_id:
            raise PsiError("PSI: run_id must be a non-empty string (rule: psi-run-binding)")
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise PsiError("PSI: workers must be a positive integer (rule: psi-workers)")
        self.__secret = secret
        self.run_id = run_id
        self.workers = workers or _cores()
        self._prefix = _group.hash_prefix(run_id)

    @classmethod
    def from_seed(cls, run_id: str, seed: bytes, *, workers: int | None = None) -> PsiParty:
        """The same secret again from a node-local seed of 32+ random bytes (HKDF-SHA-512).

        The seed must stay at the node (e.g. its Flower context state between the two messages
        of one run). X25519 clamps the derived 32 bytes into a scalar; no reduction is needed.
        """
        if not isinstance(seed, bytes | bytearray) or len(seed) < _SEED_MIN:
            raise PsiError(f"PSI: seed must be at least {_SEED_MIN} bytes (rule: psi-secret)")
        party = cls.__new__(cls)
        party._setup(run_id, _hkdf_sha512(bytes(seed), _group.hash_prefix(run_id)), workers)
        return party

    def __repr__(self) -> str:
        return f"PsiParty(workers={self.workers}, secret=<hidden>)"

    def _refuse(self, *args: Any) -> NoReturn:
        raise TypeError("PsiParty holds a secret: it cannot be pickled or copied")

    __reduce__ = __reduce_ex__ = __getstate__ = __copy__ = __deepcopy__ = _refuse

    def blind(self, ids: Sequence[str]) -> bytes:
        """H(normalised id)^secret for each ID, concatenated in the same order."""
        norm = [normalise_id(i) for i in ids]
        if len(set(norm)) != len(norm):
            raise PsiError(
                f"PSI: {len(norm) - len(set(norm))} join-key values are duplicated after "
                "normalisation (rule: join-key)"
            )
        parts = [norm[lo:hi] for lo, hi in _bounds(len(norm), self.workers)]
        try:
            return _run("blind", self.__secret, self._prefix, parts)
        except _group.BadElement as err:
            raise PsiError(f"PSI: {err} (rule: psi-element)") from None

    def reblind(self, blinded: bytes) -> bytes:
        """element^secret for each 32-byte element, same order; refuses malformed input."""
        if not isinstance(blinded, bytes | bytearray | memoryview):
            raise PsiError("PSI: blinded elements must be bytes (rule: psi-element)")
        data = bytes(blinded)
        if len(data) % ELEMENT_SIZE:
            raise PsiError(
                f"PSI: blinded message length is not a multiple of {ELEMENT_SIZE} bytes "
                "(rule: psi-element)"
            )
        bad = _group.malformed_count(data)
        if bad:
            raise PsiError(f"PSI: {bad} blinded elements are not canonical (rule: psi-element)")
        n = len(data) // ELEMENT_SIZE
        bounds = [(lo * ELEMENT_SIZE, hi * ELEMENT_SIZE) for lo, hi in _bounds(n, self.workers)]
        try:
            return _run("reblind", self.__secret, b"", [data[a:b] for a, b in bounds])
        except _group.BadElement as err:
            raise PsiError(f"PSI: {err} in the blinded message (rule: psi-element)") from None


def _hkdf_sha512(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(hashes.SHA512(), length, salt=_group.DOMAIN, info=info).derive(ikm)


def _bounds(n: int, workers: int) -> list[tuple[int, int]]:
    """One contiguous part per worker (one part in all below :data:`PARALLEL_MIN`)."""
    if n < PARALLEL_MIN or workers <= 1:
        return [(0, n)]
    size = -(-n // workers)
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


_WORKER = "from confide.privacy.psi_group import serve; serve()"


def _run(op: str, secret: bytes, prefix: bytes, parts: list[Any]) -> bytes:
    """Run ``op`` on each part: the first in this process, the others in worker processes.

    Workers are fresh interpreters (``python -P``: the working directory cannot shadow Confide)
    on pipes: no fork of a threaded process, no re-import of the caller's ``__main__``. A worker
    that fails raises; it is never silently replaced.
    """
    fn = _group.blind_chunk if op == "blind" else _group.reblind_chunk

    def here(part: Any) -> bytes:
        return fn(secret, prefix, part) if op == "blind" else fn(secret, part)

    if not sys.executable:  # an embedded interpreter: no worker processes
        return b"".join(here(part) for part in parts)
    procs: list[subprocess.Popen] = []
    try:
        try:
            for part in parts[1:]:
                proc = subprocess.Popen(
                    [sys.executable, "-P", "-c", _WORKER],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                procs.append(proc)
                assert proc.stdin is not None
                proc.stdin.write(pickle.dumps((op, secret, prefix, part)))
                proc.stdin.close()
            results = [here(parts[0])]
            for proc in procs:
                assert proc.stdout is not None
                out = proc.stdout.read()
                if proc.wait() != 0 or not out:
                    raise PsiError("PSI: a worker process failed (rule: psi-workers)")
                if out[:1] != b"\x00":
                    raise _group.BadElement(out[1:].decode())
                results.append(out[1:])
        except OSError:
            raise PsiError(
                "PSI: a worker process could not start or failed (rule: psi-workers)"
            ) from None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return b"".join(results)


def dummy_elements(count: int) -> bytes:
    """``count`` uniformly random subgroup elements (padding that matches nothing)."""
    if not isinstance(count, int) or count < 0:
        raise PsiError("PSI: the dummy count must be a non-negative integer (rule: psi-padding)")
    return _group.random_elements(count)


def _as_rows(data: bytes, name: str) -> np.ndarray:
    if len(data) % ELEMENT_SIZE:
        raise PsiError(
            f"PSI: {name} length is not a multiple of {ELEMENT_SIZE} bytes (rule: psi-element)"
        )
    return np.frombuffer(bytes(data), dtype=f"S{ELEMENT_SIZE}")


def _repeats(values: np.ndarray) -> bool:
    ordered = np.sort(values)
    return bool((ordered[1:] == ordered[:-1]).any())


def intersect(own_double: bytes, other_double: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i into own list, j into other list) of equal doubly-blinded elements, by i.

    Exact: candidates are matched on each element's first 8 bytes (elements are pseudo-random)
    and confirmed on all 32; a list whose 8-byte keys repeat is matched on whole elements.
    """
    own, other = _as_rows(own_double, "own list"), _as_rows(other_double, "other list")
    keys = []
    for arr, name in ((own, "own list"), (other, "other list")):
        key = np.ascontiguousarray(np.frombuffer(arr.tobytes(), np.uint64).reshape(-1, 4)[:, 0])
        if _repeats(key):
            if _repeats(arr):
                raise PsiError(f"PSI: the {name} repeats an element (rule: psi-element)")
            key = arr  # 8-byte keys collide: match on whole elements
        keys.append(key)
    if keys[0].dtype != keys[1].dtype:
        keys = [own, other]
    _, i, j = np.intersect1d(keys[0], keys[1], assume_unique=True, return_indices=True)
    same = own[i] == other[j]
    i, j = i[same], j[same]
    order = np.argsort(i, kind="stable")
    return i[order].astype(np.int64), j[order].astype(np.int64)


def shuffled(ids: Sequence[str], rng_seed: bytes | None = None) -> tuple[list[str], np.ndarray]:
    """``ids`` in a secret random order and the permutation: ``out[k] == ids[perm[k]]``."""
    seed = int.from_bytes(rng_seed if rng_seed is not None else os.urandom(32), "little")
    perm = np.random.Generator(np.random.PCG64DXSM(seed)).permutation(len(ids))
    return [ids[k] for k in perm], perm
