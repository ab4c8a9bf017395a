"""``python -m confide.benchmarks [--quick] [--only dp,engine,privacy,scale,utility]``.

Runs the benchmarks in one process (the privacy and one-node scale benchmarks in fresh
subprocesses, for clean memory figures), writes ``benchmarks/results/<name>.json`` after each and
``benchmarks/results/summary.json`` at the end, and renders the table: ``BENCHMARKS.md`` for a
full run of every benchmark, ``benchmarks/results/BENCHMARKS.quick.md`` otherwise (``--table``
overrides). A full run takes about 15 minutes on two cores; ``--quick`` a few.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confide.benchmarks.common import RESULTS_DIR, machine_info, write_json
from confide.benchmarks.report import render

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("dp", "engine", "privacy", "scale", "utility", "noise", "defaults", "analytics", "psi")
RESULT_NAMES = {
    "dp": "dp_overhead",
    "engine": "engine_overhead",
    "privacy": "privacy_throughput",
    "scale": "scale",
    "utility": "utility",
    "analytics": "analytics",
    "defaults": "defaults_evidence",
    "noise": "secure_noise",
    "psi": "psi_throughput",
}


def _privacy(quick: bool) -> dict[str, Any]:
    rows = 200_000 if quick else 1_000_000
    chunk = 50_000 if quick else 100_000
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "privacy_throughput.py"),
            "--rows",
            str(rows),
            "--chunksize",
            str(chunk),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads((RESULTS_DIR / "privacy_throughput.json").read_text(encoding="utf-8"))


def _previous(quick: bool, chosen: list[str]) -> dict[str, Any]:
    """The last run's results in the same mode, when this run repeats only some sections."""
    path = RESULTS_DIR / "summary.json"
    if set(chosen) == set(SECTIONS) or not path.is_file():
        return {}
    previous = json.loads(path.read_text(encoding="utf-8"))
    same_mode = previous.get("meta", {}).get("mode") == ("quick" if quick else "full")
    return previous if same_mode else {}


def _run_section(name: str, quick: bool) -> dict[str, Any]:
    if name == "dp":
        from confide.benchmarks import dp_overhead

        return dp_overhead.run(quick)
    if name == "engine":
        from confide.benchmarks import engine_overhead

        return engine_overhead.run(quick)
    if name == "privacy":
        return _privacy(quick)
    if name == "scale":
        from confide.benchmarks import scale

        return scale.run(quick)
    if name == "noise":
        from confide.benchmarks import secure_noise

        return secure_noise.run(quick)
    if name == "defaults":
        from confide.benchmarks import defaults_evidence

        return defaults_evidence.run(quick)
    if name == "analytics":
        from confide.benchmarks import analytics

        return analytics.run(quick)
    if name == "psi":
        from confide.benchmarks import psi_throughput

        return psi_throughput.run(quick)
    from confide.benchmarks import utility

    return utility.run(quick)


def notes_for(results: dict[str, Any]) -> list[str]:
    """One line per target: met, or the gap and what the profile says dominates."""
    notes = []
    dp = results.get("dp_overhead")
    if dp:
        for name, m in dp["models"].items():
            profile = m["profile"]["dp_closed_form"]["by_part"]
            plain = m["profile"]["no_dp"]["by_part"]
            extra = {k: v - plain.get(k, 0.0) for k, v in profile.items()}
            top = sorted(extra.items(), key=lambda kv: -kv[1])[:3]
            where = ", ".join(f"{k} {v * 1000:+.0f} ms" for k, v in top)
            verdict = "met" if m["target_met"] else "**not met**"
            fastest = m["fastest_opacus_mode"]
            notes.append(
                f"- DP overhead, {name} (closed-form engine): {m['configured_ratio']:.2f}x wall, "
                f"{m['configured_cpu_ratio']:.2f}x CPU — target {dp['target_ratio']}x {verdict}. "
                f"Opacus on the same batches: {m['ratio_to_no_dp'][f'opacus_{fastest}']:.2f}x "
                f"at best ({fastest}). What DP adds per epoch (profile, phases nest): {where}."
            )
    engine = results.get("engine_overhead")
    if engine and "10" in engine["sizes"]:
        e = engine["sizes"]["10"]
        verdict = "met" if e.get("target_met") else "**not met**"
        notes.append(
            f"- Engine overhead at 10 nodes: steady-state round {e['ratio_steady_round']:.2f}x "
            f"the plain loop — target {engine['target_ratio_10_nodes']}x {verdict}; total "
            f"{e['ratio_total']:.2f}x (engine start-up and round 1)."
        )
        notes.append(
            "  Confide's round 1 also starts the Ray workers, each of which reads, "
            "policy-checks and encodes its nodes' data and calibrates their noise (once per run "
            "per node; both sides pay the calibration). Later rounds reuse the per-process "
            "caches (encoded data, the accountant's per-step RDP); a node that lands on the "
            "other worker in round 2 pays its data preparation there once. Steady rounds run "
            "two nodes at a time on two cores (`simulation.client_cpus=1`), the plain loop one "
            "after another, so Confide can be faster per round than the plain loop."
        )
    for n, e in sorted((engine or {}).get("sizes", {}).items(), key=lambda kv: int(kv[0])):
        if int(n) < 50 or "floor" not in e:
            continue
        c, floor = e["confide"], e["floor"]
        rss = c.get("peak_rss_mib") or {}
        notes.append(
            f"- Engine overhead at {n} nodes (no target): steady round "
            f"{e['ratio_steady_round']:.2f}x the plain loop ({c['steady_round_s']:.2f} s per "
            f"round, status {c['status']}); the Flower floor, plain Flower with the same "
            f"messages and no work, is {e['floor_ratio_steady_round']:.2f}x "
            f"({floor['per_message_ms']:.1f} ms per message). Confide's round is "
            f"{e['confide_over_floor_ms_per_message']:.1f} ms per message above the floor: "
            "the nodes' own work (the plain loop's, run two at a time), what the engine adds "
            "around each call, and in the first rounds each node's data preparation on the "
            "second worker. Peak memory, driver plus every Ray process: "
            f"{rss.get('total_mib', 0):,.0f} MiB ({rss.get('ray_workers_mib', 0):,.0f} MiB in "
            "the workers)."
        )
    privacy = results.get("privacy_throughput")
    if privacy:
        missed = [k for k, ok in privacy["targets_met"].items() if not ok]
        notes.append(
            "- Privacy throughput: every per-transform target met."
            if not missed
            else f"- Privacy throughput: targets missed in this run: {', '.join(missed)}. "
            "These absolute rates depend on the load of the shared machine during the section "
            "(the ratios elsewhere do not); the privacy module's own benchmark tracks them."
        )
    scale = results.get("scale")
    if scale:
        o = scale["one_node"]
        verdict = "met" if o["target_met"] else "**not met**"
        notes.append(
            f"- One node, {o['rows']:,} rows: a DP epoch takes {o['dp_epoch_s']:.1f} s, "
            f"{o['dp_ratio']:.2f}x the non-private epoch — target {o['target_ratio']}x {verdict}; "
            f"training peaks at {o['training_peak_rss_mib']:.0f} MiB resident "
            f"({o['training_peak_above_pre_training_mib']:.0f} MiB above its level before "
            "training). The "
            "sampler draws a Binomial batch size and that many distinct rows, "
            f"{o['poisson_sampler_s_per_step'] * 1e6:.0f} us per step "
            f"({o['poisson_sampler_share_of_dp_epoch']:.1%} of the DP epoch); Opacus's sampler "
            f"would take {o['opacus_sampler_epoch_s']:.1f} s per epoch here."
        )
    noise = results.get("secure_noise")
    if noise:
        for name, m in noise["models"].items():
            verdict = "met" if m["target_met"] else "**not met**"
            notes.append(
                f"- Secure noise, {name}: the AES-256-CTR source adds "
                f"{m['secure_extra_share_of_dp_epoch']:+.1%} to a DP epoch (per-step draw time x "
                f"steps; epoch against epoch {m['secure_extra_direct']:+.1%}) — target "
                f"<= {noise['target_extra']:.0%} {verdict}."
            )
    defaults = results.get("defaults_evidence")
    if defaults:
        choice, new, old = defaults["choice"], defaults["choice"]["chosen"], defaults["old_default"]
        gap, where = choice["worst_case_gap"], choice["worst_scenario"]
        notes.append(
            f"- Defaults (rounds x local epochs): {choice['rule']}: {new} (worst case "
            f"{gap[new]:.3f} ROC-AUC, {where[new]}; the old {old}: {gap[old]:.3f}, {where[old]}); "
            f"shipped: {defaults['shipped_default']}."
        )
    analytics = results.get("analytics")
    if analytics:
        cal = {c["epsilon"]: c for c in analytics["calibration"]}
        c = cal.get(1.0) or next(iter(cal.values()))
        km = analytics["kmeans"]["epsilons"]
        k1 = km.get("1") or next(iter(km.values()))
        sp = analytics["speed"]
        notes.append(
            f"- DP analytics: regional sums at epsilon {c['epsilon']:g}: empirical 95th "
            f"percentile of |error| = {c['p95_abs_error_over_reported']:.2f}x the reported 95% "
            f"error (target 0.8-1.2); worst 95% relative error for provinces >= 1,000 customers "
            f"{c['max_empirical_relative_error95']:.2%} (target <= 2%). DP k-means at epsilon 1: "
            f"cost {k1['cost_ratio_max']:.3f}x scikit-learn at worst (target <= 1.10). OpenDP's "
            f"exact sampling costs {sp['opendp_over_seeded']:.1f}x NumPy's seeded draws; "
            f"{sp['repetitions']} repetitions of the built-in analysis (node releases and "
            f"combine) took {sp['total_opendp_s']:.0f} s."
        )
    psi = results.get("psi_throughput")
    if psi:
        notes.append(_psi_note(psi))
    return notes


def _psi_note(psi: dict[str, Any]) -> str:
    big = psi["sizes"].get("1000000")
    rates = ", ".join(
        f"{int(n):,} x {int(n):,} in {s['wall_s']:.1f} s "
        f"({s['exponentiations_per_core_s']:,.0f} exponentiations per core-second)"
        for n, s in psi["sizes"].items()
    )
    verdict = (
        "1M x 1M target not run (quick mode)"
        if big is None
        else f"1M x 1M target <= {psi['target_1m_s']:.0f} s "
        + ("met" if psi["target_met"] else "**not met**")
    )
    return (
        f"- PSI: {rates}; SecretFlow's ECDH-PSI does "
        f"{psi['secretflow_ops_per_core_s']:,.0f} per core-second; {verdict}."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and write their results and table."""
    parser = argparse.ArgumentParser(prog="python -m confide.benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated subset")
    parser.add_argument("--table", type=Path, default=None, help="where to write the table")
    parser.add_argument(
        "--shared",
        action="store_true",
        help="say the machine was shared (also set when the load at start exceeds 0.75 x cores)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="re-render the table from benchmarks/results/summary.json, run nothing",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        results = json.loads((RESULTS_DIR / "summary.json").read_text(encoding="utf-8"))
        table = args.table or (
            ROOT / "BENCHMARKS.md"
            if results["meta"]["mode"] == "full"
            and set(results["meta"]["sections"]) == set(SECTIONS)
            else RESULTS_DIR / "BENCHMARKS.quick.md"
        )
        table.write_text(render(results, notes_for(results)), encoding="utf-8")
        print(f"[benchmarks] table: {table}")
        return 0
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {SECTIONS}")
    logging.getLogger("flwr").setLevel(logging.WARNING)
    started, started_at = time.perf_counter(), datetime.now(UTC)
    results: dict[str, Any] = {"machine": machine_info()}
    previous = _previous(args.quick, chosen)
    section_runs = dict(previous.get("meta", {}).get("section_runs", {}))
    load, cores = (
        results["machine"]["load_average_1m_at_start"],
        results["machine"]["cores_available"],
    )
    busy = load is not None and cores is not None and load > 0.75 * cores
    for name in SECTIONS:
        if name not in chosen:
            continue
        print(f"[benchmarks] {name} ...", flush=True)
        t = time.perf_counter()
        section_runs[name] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        results[RESULT_NAMES[name]] = _run_section(name, args.quick)
        write_json(RESULTS_DIR / f"{RESULT_NAMES[name]}.json", results[RESULT_NAMES[name]])
        print(f"[benchmarks] {name} done in {time.perf_counter() - t:.0f} s", flush=True)
    for name in SECTIONS:  # a partial run keeps the other sections of the last run
        if name not in chosen and RESULT_NAMES[name] in previous:
            results[RESULT_NAMES[name]] = previous[RESULT_NAMES[name]]
    sections = [n for n in SECTIONS if RESULT_NAMES[n] in results]
    first = previous.get("meta", {}).get("started") or started_at.strftime("%Y-%m-%d %H:%M UTC")
    full = not args.quick and set(sections) == set(SECTIONS)
    results["meta"] = {
        "mode": "quick" if args.quick else "full",
        "sections": sections,
        "section_runs": {n: section_runs.get(n, first) for n in sections},
        "rerun": {
            **previous.get("meta", {}).get("rerun", {}),
            **({n: section_runs[n] for n in chosen} if previous else {}),
        },
        "started": first,
        "wall_s": previous.get("meta", {}).get("wall_s", 0.0) + time.perf_counter() - started,
        "shared": args.shared or busy or bool(previous.get("meta", {}).get("shared")),
    }
    write_json(RESULTS_DIR / "summary.json", results)
    table = args.table or (ROOT / "BENCHMARKS.md" if full else RESULTS_DIR / "BENCHMARKS.quick.md")
    table.write_text(render(results, notes_for(results)), encoding="utf-8")
    print(f"[benchmarks] table: {table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
