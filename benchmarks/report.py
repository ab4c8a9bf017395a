"""Render one benchmark run's results as the Markdown table committed as ``BENCHMARKS.md``."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _machine(m: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    ram = f"{m['ram_gib']:.0f} GiB RAM" if m.get("ram_gib") else "RAM unknown"
    return [
        f"Machine: {m['cpu']}, {m['cores_available']} cores available, {ram}; "
        f"{m['platform']}; Python {m['python']}, torch {m['torch']}, opacus {m['opacus']}, "
        f"flwr {m['flwr']}, numpy {m['numpy']}.",
        "",
        f"Mode: `{meta['mode']}`; started {meta['started']}; took {meta['wall_s'] / 60:.1f} min"
        + (
            " (re-run later on their own: "
            + ", ".join(f"{k} at {v}" for k, v in meta["rerun"].items())
            + ")"
            if meta.get("rerun")
            else ""
        )
        + ". "
        f"1-minute load average at start: {_f(m.get('load_average_1m_at_start'), 1)}"
        + (
            " — the machine was **shared** with other work during the run, so absolute "
            "seconds are noisy; the ratios below compare measurements taken side by side "
            "in this run (interleaved, medians)."
            if meta.get("shared")
            else "."
        ),
    ]


def _dp(r: dict[str, Any]) -> list[str]:
    d = r["data"]
    out = [
        "## 1. DP-SGD overhead (one local epoch, DP vs no DP)",
        "",
        f"Data: the default federation's `{d['node']}` node, {d['rows']:,} training rows x "
        f"{d['features']} encoded features; shipped settings; median of {r['repeats']} "
        f"interleaved repetitions (wall clock; CPU-time ratios in brackets). Target: DP epoch "
        f"<= {r['target_ratio']}x the non-private epoch with the default engine. Engines: "
        "Confide's closed-form per-sample clipping (default for its Linear models) and Opacus in "
        "each grad-sample mode (the fallback for any other model), on the same Poisson batches "
        "and noise source.",
        "",
        "| model | no DP (s) | closed form (s) | Opacus hooks (s) | Opacus ew (s) | "
        "Opacus ghost (s) | closed form x | hooks x | ew x | ghost x | closed form vs fastest "
        "Opacus | target met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for name, m in r["models"].items():
        s, x, c = m["seconds_per_epoch_median"], m["ratio_to_no_dp"], m["cpu_ratio_to_no_dp"]
        ratios = " | ".join(
            f"{_f(x[e], 2)} ({_f(c[e], 2)})"
            for e in ("closed_form", "opacus_hooks", "opacus_ew", "opacus_ghost")
        )
        out.append(
            f"| {name} | {_f(s['off'])} | {_f(s['closed_form'])} | {_f(s['opacus_hooks'])} | "
            f"{_f(s['opacus_ew'])} | {_f(s['opacus_ghost'])} | {ratios} | "
            f"{_f(m['closed_form_speedup_over_fastest_opacus'], 2)}x faster than "
            f"{m['fastest_opacus_mode']} | {_f(m['target_met'])} |"
        )
    sampler = r.get("sampler_epoch_s")
    if sampler:
        out += [
            "",
            f"Drawing one epoch of Poisson batches: {_f(sampler['opacus_uniform_per_row'])} s "
            "with Opacus's sampler (one uniform number per row per step) vs "
            f"{_f(sampler['binomial_then_subset'])} s with Confide's (Binomial batch size, then "
            "a uniform subset of that size: the same distribution, O(batch) per step).",
        ]
    loader = r.get("loader_epoch_s")
    if loader:
        out += [
            "",
            f"Reading one epoch of batches: {_f(loader['row_by_row'])} s row by row (torch's "
            f"default) vs {_f(loader['batched'])} s with one indexing operation per batch (what "
            "the non-private epoch does; DP epochs index the sampled rows directly).",
        ]
    acc = r.get("accounting_s")
    if acc:
        out += [
            "",
            f"A node's budget check before each round and its epsilon report after it (two "
            f"evaluations per node per round), at round {acc['rounds']}: "
            f"{_f(acc['opacus_accountant'])} s each with Opacus's RDP accountant from scratch "
            f"(before) vs {_f(acc['cached'], 5)} s with the per-(sigma, q) RDP cache (now).",
        ]
    out += [
        "",
        "Where an epoch's time goes (cProfile, cumulative seconds per epoch; phases nest):",
        "",
    ]
    for name, m in r["models"].items():
        profiles = m["profile"]
        keys = list(profiles)
        parts = sorted({p for k in keys for p in profiles[k]["by_part"]})
        out += [
            f"| {name}: part | " + " | ".join(keys) + " |",
            "|---|" + "---:|" * len(keys),
        ]
        for part in sorted(parts, key=lambda p: -profiles[keys[0]]["by_part"].get(p, 0.0)):
            cells = " | ".join(_f(profiles[k]["by_part"].get(part, 0.0), 4) for k in keys)
            out.append(f"| {part} | {cells} |")
        total = " | ".join(_f(profiles[k]["seconds_per_epoch"], 4) for k in keys)
        out += [f"| **total (under the profiler)** | {total} |", ""]
    return out


def _engine(r: dict[str, Any]) -> list[str]:
    out = [
        "## 2. Engine overhead (Confide on the simulation engine vs a plain in-process loop)",
        "",
        "Same generated data, model, rounds, local epochs and DP; the plain loop "
        "(`simulations/in_process.py`) calls the same `NodeRuntime.train/evaluate` and averages "
        "state dicts like FedAvg, on one thread, node after node; Confide runs its nodes as "
        "Ray workers (`simulation.client_cpus=1`: two at a time on two cores). Steady state = "
        "median of rounds 2..R. Baselines off in both. The Flower floor "
        "(`benchmarks/flower_floor.py`) is plain Flower on the same engine and backend config "
        "with the same messages and no work at the nodes; its x is its steady round over the "
        "plain loop's. Peak RSS: Confide's driver plus every Ray process it started. Target: "
        f"steady-state round <= {r['target_ratio_10_nodes']}x the plain loop at 10 nodes.",
        "",
        "| nodes | rows | rounds | plain total (s) | Confide total (s) | total x | "
        "plain round (s) | Confide round (s) | round x | Flower floor round (s) | floor x | "
        "Confide - floor per message (ms) | Confide round 1 (s) | Confide outside rounds (s) | "
        "peak RSS (MiB) | same AUC | target met |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|",
    ]
    for n, e in r["sizes"].items():
        c, floor = e["confide"], e.get("floor") or {}
        plain_total = sorted(p["total_s"] for p in e["plain"])[len(e["plain"]) // 2]
        plain_round = e["confide"]["steady_round_s"] / e["ratio_steady_round"]
        rss = (c.get("peak_rss_mib") or {}).get("total_mib")
        out.append(
            f"| {n} | {e['rows']:,} | {e['rounds']} | {_f(plain_total, 1)} | "
            f"{_f(c['total_s'], 1)} | {_f(e['ratio_total'], 2)} | {_f(plain_round, 3)} | "
            f"{_f(c['steady_round_s'], 3)} | {_f(e['ratio_steady_round'], 2)} | "
            f"{_f(floor.get('steady_round_s'), 3)} | {_f(e.get('floor_ratio_steady_round'), 2)} | "
            f"{_f(e.get('confide_over_floor_ms_per_message'), 1)} | "
            f"{_f(c['round_s'][0] if c['round_s'] else None, 1)} | "
            f"{_f(c['outside_rounds_s'], 1)} | {_f(rss, 0)} | {_f(e['same_auc_within_0_01'])} | "
            f"{_f(e['target_met']) if 'target_met' in e else '-'} |"
        )
    return out


def _privacy(r: dict[str, Any]) -> list[str]:
    out = [
        "## 3. Privacy throughput (`benchmarks/privacy_throughput.py`)",
        "",
        f"{r['rows']:,} generated transaction rows ({r['customers']:,} customers).",
        "",
        "| transform | rows/s | target | met |",
        "|---|---:|---:|:---:|",
    ]
    for name, rate in r["per_transform_rows_per_s"].items():
        target = r["targets_rows_per_s"][name]
        out.append(f"| {name} | {rate:,.0f} | {target:,} | {_f(rate >= target)} |")
    out += [
        "",
        "| end to end (`apply_file`, CSV in/out) | chunksize | rows/s | live peak / chunk |",
        "|---|---:|---:|---:|",
    ]
    for label, e in r["end_to_end"].items():
        out.append(
            f"| {label} | {e['chunksize']:,} | {e['rows_per_s']:,.0f} | "
            f"{_f(e['live_over_chunk'], 1)} |"
        )
    out += ["", f"Chunked memory target met: {_f(r['memory_target_met'])}."]
    return out


def _scale(r: dict[str, Any], engine: dict[str, Any] | None) -> list[str]:
    o = r["one_node"]
    out = [
        "## 4. Scale",
        "",
        "| one node | rows | features | model | no-DP epoch (s) | DP epoch, closed form (s) | "
        "DP x | DP epoch, Opacus "
        f"{o['fallback_grad_sample_mode']} (s) | Opacus x | data (MiB) | RSS before training "
        "(MiB) | training peak RSS (MiB) | peak above RSS before the data (MiB) | that / data | "
        "Poisson sampler share of DP epoch |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| generated, encoded | {o['rows']:,} | {o['features']} | {o['model']} | "
        f"{_f(o['no_dp_epoch_s'], 2)} | {_f(o['dp_epoch_s'], 2)} | "
        f"{_f(o['dp_ratio'], 2)} ({_f(o['dp_cpu_ratio'], 2)} CPU) | "
        f"{_f(o['opacus_dp_epoch_s'], 2)} | {_f(o['opacus_dp_ratio'], 2)} | "
        f"{_f(o['data_mib'], 0)} | {_f(o['rss_before_training_mib'], 0)} | "
        f"{_f(o['training_peak_rss_mib'], 0)} | "
        f"{_f(o['peak_above_baseline_mib'], 0)} | {_f(o['peak_above_baseline_over_data'], 1)} | "
        f"{_f(o['poisson_sampler_share_of_dp_epoch'], 3)} |",
        "",
        f"Median of {o['repeats']} interleaved epochs each; target: DP epoch <= "
        f"{o['target_ratio']}x the non-private one — {'met' if o['target_met'] else 'NOT met'}. "
        f"One step's batch draw: {_f(o['poisson_sampler_s_per_step'] * 1e6, 0)} us with "
        f"Confide's sampler vs {_f(o['opacus_sampler_s_per_step'] * 1e6, 0)} us with Opacus's "
        f"({_f(o['opacus_sampler_epoch_s'], 2)} s per epoch at this size).",
    ]
    fifty = (engine or {}).get("sizes", {}).get("50")
    if fifty:
        c = fifty["confide"]
        out += [
            "",
            f"50 simulated nodes ({fifty['rows']:,} rows) x {fifty['rounds']} rounds on the "
            f"simulation engine: **{c['status']}** in {_f(c['total_s'], 1)} s "
            f"(steady round {_f(c['steady_round_s'], 2)} s; max epsilon per node "
            f"{_f(c['max_epsilon'], 2)}).",
        ]
    return out


def _utility(r: dict[str, Any]) -> list[str]:
    out = [
        "## 5. Utility on the default federation (`confide simulate`, shipped config)",
        "",
        f"Run {r['status']} in {_f(r['wall_s'], 1)} s ({r['rounds']} rounds, epsilon target "
        f"{r['epsilon_target']} per node).",
        "",
        "| model | pooled test ROC-AUC | epsilon |",
        "|---|---:|---:|",
        f"| federated (global) | {_f(r['global_roc_auc'])} | per node, below |",
        f"| centralised, no DP | {_f(r['centralised_roc_auc'])} | - |",
        f"| centralised, DP | {_f(r['centralised_dp_roc_auc'])} | "
        f"{_f(r['centralised_dp_epsilon'], 2)} |",
    ]
    for name, local in r["local_only"].items():
        out.append(
            f"| local only: {name} | {_f(local['pooled_roc_auc'])} | {_f(local['epsilon'], 2)} |"
        )
    out += [
        "",
        "| node | rows | epsilon spent | global model on own test AUC | "
        "local-only on own test AUC |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, n in r["nodes"].items():
        out.append(
            f"| {name} | {n['rows']:,} | {_f(n['epsilon'], 3)} | "
            f"{_f(n['global_model_own_test_roc_auc'])} | {_f(n['local_only_own_test_roc_auc'])} |"
        )
    return out


def _secure_noise(r: dict[str, Any]) -> list[str]:
    g = r["generator"]
    rate = g["normals_per_s"]
    out = [
        "## Secure DP noise (AES-256-CTR keystream) against seeded noise",
        "",
        f"Data: `{r['data']['node']}`, {r['data']['rows']:,} rows x {r['data']['features']} "
        f"features; shipped settings; median of {r['repeats']} interleaved repetitions. "
        f"Target: secure noise adds <= {r['target_extra']:.0%} to a DP epoch, judged on the "
        "steps x per-step draw difference (the two DP epochs differ only in that call); the "
        "direct epoch-vs-epoch ratio is shown beside it.",
        "",
        "| model | parameters | steps | no DP (s) | DP, seeded (s) | DP, secure (s) | "
        "one step's draw, seeded (µs) | secure (µs) | secure extra (draws x steps) | "
        "secure extra (epochs) | target met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for name, m in r["models"].items():
        s, step = m["seconds_per_epoch_median"], m["one_step_draw_s"]
        out.append(
            f"| {name} | {m['parameters']:,} | {m['steps_per_epoch_median']:g} | "
            f"{_f(s['no_dp'])} | {_f(s['seeded'])} | {_f(s['secure'])} | "
            f"{_f(step['seeded'] * 1e6, 1)} | {_f(step['secure'] * 1e6, 1)} | "
            f"{m['secure_extra_share_of_dp_epoch']:+.1%} | {m['secure_extra_direct']:+.1%} | "
            f"{_f(m['target_met'])} |"
        )
    out += [
        "",
        f"Raw generators, {g['normals_per_call']:,} normals per call: seeded (torch) "
        f"{rate['seeded'] / 1e6:.1f} M normals/s, secure {rate['secure'] / 1e6:.1f} M normals/s "
        f"({g['secure_over_seeded_time']:.1f}x the time; each secure value is four keystream "
        "normals summed, Opacus's floating-point mitigation).",
    ]
    return out


def _defaults(r: dict[str, Any]) -> list[str]:
    table, choice = r["table"], r["choice"]
    labels = list(next(iter(table.values()))["settings"])
    old, new = r["old_default"], choice["chosen"]
    real = r["real_data"]
    out = [
        "## Defaults on non-IID data (`benchmarks/defaults_evidence.py`)",
        "",
        f"Each cell: a federated run (FedAvg, {r['model']}, DP at epsilon = "
        f"{r['epsilon_per_node']:g} per node, in-process loop with the node runtime), scored on "
        "the scenario's pooled held-out splits; mean (sd) over seeds "
        f"{', '.join(str(s) for s in r['seeds'])} of the ROC-AUC gap to the scenario's best "
        "centralised non-private AUC over these settings (pooled training rows, same model and "
        "preprocessing). Settings are rounds x local epochs. Public data: "
        + (
            f"the Telco churn sample ({real['note']}), brought in as one CSV with its own policy "
            "and task spec and split into 3 nodes."
            if real["used"]
            else f"not used ({real['note']})."
        )
        + (f" DP engine of commit {r['engine_commit']}." if r.get("engine_commit") else ""),
        "",
        "| scenario | centralised | centralised DP | "
        + " | ".join(f"{label}{' (old)' if label == old else ''}" for label in labels)
        + " |",
        "|---|---:|---:|" + "---:|" * len(labels),
    ]
    for name, t in table.items():
        cells = " | ".join(
            f"{_f(t['settings'][label]['gap_to_centralised']['mean'])} "
            f"({_f(t['settings'][label]['gap_to_centralised']['sd'])})"
            for label in labels
        )
        out.append(
            f"| {name} | {_f(t['centralised_roc_auc']['mean'])} | "
            f"{_f(t['centralised_dp_roc_auc']['mean'])} | {cells} |"
        )
    worst = " | ".join(
        f"**{_f(choice['worst_case_gap'][label])}** ({choice['worst_scenario'][label]})"
        for label in labels
    )
    out += [
        f"| **worst case** | | | {worst} |",
        "",
        f"Rule: {choice['rule']}. Eligible: {', '.join(choice['eligible'])}; chosen: "
        f"**{new}** ({choice['rounds']} rounds x {choice['local_epochs']} local epochs); "
        f"shipped now: {r['shipped_default']}.",
        "",
        f"| scenario | old {old}: AUC | gap | gap to centralised DP | new {new}: AUC | gap | "
        "gap to centralised DP |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in table.items():
        a, b = t["settings"][old], t["settings"][new]
        out.append(
            f"| {name} | {_f(a['federated_roc_auc']['mean'])} | "
            f"{_f(a['gap_to_centralised']['mean'])} | {_f(a['gap_to_centralised_dp']['mean'])} | "
            f"{_f(b['federated_roc_auc']['mean'])} | {_f(b['gap_to_centralised']['mean'])} | "
            f"{_f(b['gap_to_centralised_dp']['mean'])} |"
        )
    return out


def _analytics(r: dict[str, Any]) -> list[str]:
    out = [
        "## DP analytics (`benchmarks/analytics.py`)",
        "",
        "Regional sums (monetary_12m by province, bounds [0, 20000], one row per customer) on the "
        f"default synthetic federation ({', '.join(f'{n} {v:,}' for n, v in r['data'].items())} "
        "customers), fresh OpenDP noise per repetition; truth: the sum of clamped values. "
        "Calibration 1.0 means the reported 95% error is the empirical 95th percentile.",
        "",
        "| epsilon | repetitions | p95 abs error / reported | coverage | worst 95% rel. error, "
        "groups >= 1,000 (reported / empirical) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c in r["calibration"]:
        out.append(
            f"| {c['epsilon']:g} | {c['repetitions']} | {_f(c['p95_abs_error_over_reported'])} | "
            f"{c['coverage']:.1%} | {c['max_reported_relative_error95']:.2%} / "
            f"{c['max_empirical_relative_error95']:.2%} |"
        )
    b = r["builtin"]
    out += [
        "",
        f"Every number of the built-in analysis ({b['repetitions']} repetitions, per node and "
        "federated; means, variances, rates and quantiles use the delta method or CDF "
        "inversion, so their calibration is approximate):",
        "",
        "| kind | numbers | coverage | p95 abs error / reported |",
        "|---|---:|---:|---:|",
    ]
    for kind, k in b["by_kind"].items():
        out.append(
            f"| {kind} | {k['numbers']:,} | {k['coverage']:.1%} | "
            f"{_f(k['p95_abs_error_over_reported'])} |"
        )
    km = r["kmeans"]
    out += [
        "",
        f"DP k-means (k = {km['k']}, {km['customers']:,} customers, {km['nodes']} nodes, "
        f"{km['repetitions']} runs per epsilon): clustering cost over scikit-learn's "
        "non-private k-means on the pooled data, and the worst segment's churn-rate error.",
        "",
        "| segments epsilon | cost ratio, median | cost ratio, max | churn error, median | "
        "churn error, max |",
        "|---:|---:|---:|---:|---:|",
    ]
    for eps, e in km["epsilons"].items():
        out.append(
            f"| {eps} | {_f(e['cost_ratio_median'])} | {_f(e['cost_ratio_max'])} | "
            f"{_f(e['churn_error_max_median'], 4)} | {_f(e['churn_error_max_max'], 4)} |"
        )
    sp = r["speed"]
    rel = sp["release_s_per_repetition"]
    out += [
        "",
        f"Speed ({sp['repetitions']} repetitions of the built-in analysis, "
        f"{sp['noisy_numbers_per_repetition']} noisy numbers each, samplers interleaved): node "
        f"releases {_f(rel['opendp'] * 1000, 1)} ms with OpenDP, {_f(rel['seeded'] * 1000, 1)} ms "
        f"seeded ({sp['opendp_over_seeded']:.1f}x); combine "
        f"{_f(sp['combine_s_per_repetition'] * 1000, 1)} ms; rows prepared once in "
        f"{_f(sp['prepare_once_s'], 2)} s.",
    ]
    return out


def render(results: dict[str, Any], notes: list[str]) -> str:
    """The whole page: machine, one section per benchmark that ran, then the notes."""
    meta = results["meta"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m confide.benchmarks` (raw numbers: `benchmarks/results/*.json`). "
        "Timings are ratios of measurements taken in this one run.",
        "",
        *_machine(results["machine"], meta),
        "",
    ]
    if "dp_overhead" in results:
        lines += [*_dp(results["dp_overhead"]), ""]
    if "engine_overhead" in results:
        lines += [*_engine(results["engine_overhead"]), ""]
    if "privacy_throughput" in results:
        lines += [*_privacy(results["privacy_throughput"]), ""]
    if "scale" in results:
        lines += [*_scale(results["scale"], results.get("engine_overhead")), ""]
    if "utility" in results:
        lines += [*_utility(results["utility"]), ""]
    if "defaults_evidence" in results:
        lines += [*_defaults(results["defaults_evidence"]), ""]
    if "secure_noise" in results:
        lines += [*_secure_noise(results["secure_noise"]), ""]
    if "analytics" in results:
        lines += [*_analytics(results["analytics"]), ""]
    if "psi_throughput" in results:
        from confide.benchmarks.psi_throughput import render_lines

        lines += [*render_lines(results["psi_throughput"]), ""]
    if notes:
        lines += ["## Targets and findings", "", *notes, ""]
    return "\n".join(lines)
