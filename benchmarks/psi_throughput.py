"""PSI throughput: the whole two-party protocol of docs/vertical.md on N x N generated IDs.

Full mode: 100k x 100k and 1M x 1M; quick mode: 10k x 10k (below the worker threshold, so one
process: its rate is per that one core). Half of each side's IDs are shared. Each size times,
on one wall clock: normalising both ID lists, L blinding (m1), F re-blinding m1 (m2), F
blinding its shuffled IDs (m3), L re-blinding m3 (m4) and the match; the intersection must be
exactly the shared IDs.

The rate compared with SecretFlow is exponentiations (4 per ID pair: blind and re-blind on each
side) per core-second of the whole protocol's wall time; SecretFlow's ECDH-PSI does 10M x 10M
in 67 s on 32 cores, 4 x 10M / (67 x 32) = 18.7k per core-second. The hashes to the group (one
per ID) are extra work this rate counts in the wall time but not as operations.
"""

from __future__ import annotations

import resource
import time
from typing import Any

from confide.privacy import psi
from confide.privacy.psi import PsiParty, intersect, normalise_ids, shuffled
from confide.privacy.psi_group import blind_chunk, hash_prefix, hash_to_group, reblind_chunk

__all__ = ["SECRETFLOW_OPS_PER_CORE_S", "TARGET_1M_S", "render_lines", "run"]

SECRETFLOW_OPS_PER_CORE_S = 4 * 10_000_000 / (67 * 32)
TARGET_1M_S = 120.0
_ONE_CORE_N = 20_000


def _ids(prefix: str, lo: int, hi: int) -> list[str]:
    return [f"{prefix}{k:010d}" for k in range(lo, hi)]


def _single_core() -> dict[str, float]:
    """One core, in-process: hashes to the group and exponentiations per second."""
    ids = _ids("S", 0, _ONE_CORE_N)
    prefix = hash_prefix("bench-single-core")
    key = b"\x07" * 32  # a fixed scalar for timing the raw chunk functions; generated IDs only
    t = time.perf_counter()
    hashed = hash_to_group(prefix, ids)
    hash_s = time.perf_counter() - t
    blob = b"".join(hashed)
    t = time.perf_counter()
    reblind_chunk(key, blob)
    exp_s = time.perf_counter() - t
    t = time.perf_counter()
    blind_chunk(key, prefix, ids)
    blind_s = time.perf_counter() - t
    return {
        "elements": _ONE_CORE_N,
        "hash_to_group_per_s": _ONE_CORE_N / hash_s,
        "exponentiations_per_s": _ONE_CORE_N / exp_s,
        "blind_per_s": _ONE_CORE_N / blind_s,
    }


def _protocol(n: int, run_id: str) -> dict[str, Any]:
    shared = n // 2
    l_raw = _ids("C", 0, n)
    f_raw = _ids("C", n - shared, 2 * n - shared)
    phases: dict[str, float] = {}
    started = time.perf_counter()

    def phase(name: str, fn):
        t = time.perf_counter()
        out = fn()
        phases[name] = time.perf_counter() - t
        return out

    l_ids = phase("L normalise", lambda: normalise_ids(l_raw, source="L", column="id"))
    f_ids = phase("F normalise", lambda: normalise_ids(f_raw, source="F", column="id"))
    label, feature = PsiParty(run_id), PsiParty(run_id)
    m1 = phase("L blind (m1)", lambda: label.blind(l_ids))
    m2 = phase("F re-blind m1 (m2)", lambda: feature.reblind(m1))
    f_order, perm = phase("F shuffle", lambda: shuffled(f_ids))
    m3 = phase("F blind (m3)", lambda: feature.blind(f_order))
    m4 = phase("L re-blind m3 (m4)", lambda: label.reblind(m3))
    i, j = phase("L match", lambda: intersect(m2, m4))
    wall = time.perf_counter() - started
    found = {l_ids[a] for a in i.tolist()}
    correct = len(i) == shared and all(
        l_ids[a] == f_ids[perm[b]] for a, b in zip(i.tolist(), j.tolist(), strict=True)
    )
    if not correct or found != set(l_ids[n - shared :]):
        raise RuntimeError("PSI benchmark: the intersection is not exactly the shared IDs")
    cores = label.workers if n >= psi.PARALLEL_MIN else 1  # below it, all in one process
    exps = 4 * n
    return {
        "label_ids": n,
        "feature_ids": n,
        "shared": shared,
        "intersection": len(i),
        "workers": cores,
        "phases_s": phases,
        "wall_s": wall,
        "exponentiations": exps,
        "hashes_to_group": 2 * n,
        "exponentiations_per_s": exps / wall,
        "exponentiations_per_core_s": exps / (wall * cores),
        "message_bytes": {"m1": len(m1), "m2": len(m2), "m3": len(m3), "m4": len(m4)},
    }


def run(quick: bool) -> dict[str, Any]:
    """Time the protocol at each size and the single-core primitives."""
    sizes = [10_000] if quick else [100_000, 1_000_000]
    out: dict[str, Any] = {
        "group": "Curve25519 prime-order subgroup, X25519 (PyNaCl/libsodium), Elligator 2 hash",
        "secretflow_ops_per_core_s": SECRETFLOW_OPS_PER_CORE_S,
        "target_1m_s": TARGET_1M_S,
        "single_core": _single_core(),
        "sizes": {},
    }
    for n in sizes:
        out["sizes"][str(n)] = _protocol(n, f"bench-psi-{n}")
    big = out["sizes"].get("1000000")
    out["target_met"] = None if big is None else big["wall_s"] <= TARGET_1M_S
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_rss_children_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def render_lines(r: dict[str, Any]) -> list[str]:
    """The BENCHMARKS.md section."""
    sc = r["single_core"]
    out = [
        "## PSI throughput (`benchmarks/psi_throughput.py`)",
        "",
        f"Group: {r['group']}. Whole protocol (normalise, blind and re-blind on both sides, "
        "match), half the IDs shared, intersection checked exactly. One core in-process: "
        f"{sc['exponentiations_per_s']:,.0f} exponentiations/s, "
        f"{sc['hash_to_group_per_s']:,.0f} hashes to the group/s.",
        "",
        "| IDs per side | workers | wall s | exponentiations per core-s | "
        "vs SecretFlow (per core) | slowest phase |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for n, s in r["sizes"].items():
        slow = max(s["phases_s"].items(), key=lambda kv: kv[1])
        out.append(
            f"| {int(n):,} | {s['workers']} | {s['wall_s']:.1f} | "
            f"{s['exponentiations_per_core_s']:,.0f} | "
            f"{s['exponentiations_per_core_s'] / r['secretflow_ops_per_core_s']:.2f}x | "
            f"{slow[0]} {slow[1]:.1f} s |"
        )
    return out
