"""DP analytics: error calibration, DP k-means cost against scikit-learn, and release speed.

* Calibration: the regional-sum query (monetary_12m by province, bounds [0, 20000], one row per
  customer) on the default synthetic federation, repeated with fresh OpenDP noise at several
  epsilons: the empirical 95th percentile of |error| over the reported 95% half-width (1.0 =
  calibrated), the share of releases within the reported error, and the worst relative 95%
  error over provinces with >= 1,000 customers. The truth is the sum of clamped values.
* Every number of the built-in analysis (conf/analysis/customer_profile.yaml), by kind: the
  same calibration for counts, sums, means, variances, histogram bins, quantiles, RFM cells and
  quality rates (the last ones use the delta method, so their calibration is approximate).
* DP k-means on 22,000 customers across three nodes: the clustering cost of the DP centroids
  over scikit-learn's non-private k-means on the pooled data (same clamped, [0, 1]-scaled
  features), and the worst per-segment churn-rate error, at several epsilons.
* Speed: repetitions of the built-in analysis's node releases with OpenDP's exact sampler and
  with NumPy's seeded sampler, interleaved (the ratio is the cost of exact sampling), and the
  coordinator's combine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.cluster import KMeans

from confide.analytics.combine import combine_releases
from confide.analytics.inprocess import run_segments_in_process
from confide.analytics.kmeans import assign_segments
from confide.analytics.mechanisms import OpenDPLaplace, SeededLaplace
from confide.analytics.node import release_prepared
from confide.analytics.prepare import prepare
from confide.analytics.spec import AnalysisSpec, load_analysis_spec
from confide.simulations import node_profiles as npf
from confide.simulations import synth

__all__ = ["run"]

_CONF = Path(__file__).resolve().parents[1] / "conf" / "analysis" / "customer_profile.yaml"
_PROVINCES = ["北京", "上海", "广东", "浙江", "江苏", "四川", "湖北", "山东", "福建", "陕西"]
_FEATURES = ["recency_days", "frequency_12m", "monetary_12m"]
_LO, _HI = np.zeros(3), np.array([365.0, 60.0, 20_000.0])


class _Exact:
    name = "exact (benchmark reference)"

    def add_laplace(self, values: np.ndarray, scale: float) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).copy()


def _default_frames() -> dict[str, pd.DataFrame]:
    return {
        p.name: synth.generate_customers(p, 42).frame for p in (npf.retailer(), npf.ecommerce())
    }


def _sum_spec(epsilon: float) -> AnalysisSpec:
    raw = {
        "name": "regional_sums",
        "epsilon": epsilon,
        "unit": {"id_column": "customer_id"},
        "columns": {
            "monetary_12m": {"min": 0, "max": 20_000},
            "province": {"categories": _PROVINCES},
        },
        "queries": [
            {
                "name": "spend_by_province",
                "stat": "sum",
                "column": "monetary_12m",
                "group_by": ["province"],
                "epsilon": epsilon,
            }
        ],
    }
    return load_analysis_spec(raw, "benchmark")


def _calibration(frames: dict[str, pd.DataFrame], epsilon: float, reps: int) -> dict[str, Any]:
    spec = _sum_spec(epsilon)
    pooled = pd.concat(frames.values())
    truth = pooled["monetary_12m"].clip(0, 20_000).groupby(pooled["province"]).sum()
    truth = truth.reindex(_PROVINCES, fill_value=0.0).to_numpy(float)
    sizes = pooled["province"].value_counts().reindex(_PROVINCES, fill_value=0).to_numpy()
    prep = {n: prepare(spec, f, n) for n, f in frames.items()}
    errors, hw = [], np.zeros(len(_PROVINCES))
    for _ in range(reps):
        rel = {n: release_prepared(spec, p) for n, p in prep.items()}
        rows = combine_releases(spec, rel)["queries"]["spend_by_province"]["federated"]
        errors.append(np.array([r["value"] for r in rows]) - truth)
        hw = np.array([r["error95"] for r in rows])
    err = np.abs(np.array(errors))
    big = sizes >= 1_000
    return {
        "epsilon": epsilon,
        "repetitions": reps,
        "p95_abs_error_over_reported": float(np.quantile(err / hw, 0.95)),
        "coverage": float(np.mean(err <= hw)),
        "groups_over_1000": int(big.sum()),
        "max_reported_relative_error95": float((hw[big] / truth[big]).max()),
        "max_empirical_relative_error95": float(
            np.quantile(err[:, big] / truth[big], 0.95, axis=0).max()
        ),
    }


def _pairs(noisy: Any, exact: Any, kind: str, out: dict[str, list]) -> None:
    if isinstance(noisy, dict):
        if "value" in noisy and "error95" in noisy:
            if noisy["value"] is not None and exact["value"] is not None:
                out.setdefault(kind, []).append((noisy["value"] - exact["value"], noisy["error95"]))
            return
        for key, val in noisy.items():
            if key not in ("spec", "parts", "noise"):
                _pairs(val, exact[key], kind, out)
    elif isinstance(noisy, list):
        for a, b in zip(noisy, exact, strict=True):
            _pairs(a, b, kind, out)


def _by_kind(
    spec: AnalysisSpec, combined: dict[str, Any], exact: dict[str, Any], out: dict
) -> None:
    for q in spec.queries:
        _pairs(combined["queries"][q.name], exact["queries"][q.name], q.stat, out)
    _pairs(combined["rfm"], exact["rfm"], "rfm", out)
    _pairs(combined["quality"], exact["quality"], "quality rate", out)


def _builtin_calibration(
    frames: dict[str, pd.DataFrame], spec: AnalysisSpec, reps: int
) -> dict[str, Any]:
    prep = {n: prepare(spec, f, n) for n, f in frames.items()}
    exact = combine_releases(
        spec, {n: release_prepared(spec, p, _Exact()) for n, p in prep.items()}
    )
    pairs: dict[str, list] = {}
    for _ in range(reps):
        noisy = combine_releases(spec, {n: release_prepared(spec, p) for n, p in prep.items()})
        _by_kind(spec, noisy, exact, pairs)
    out = {}
    for kind, values in pairs.items():
        a = np.array(values, dtype=float)
        ratio = np.abs(a[:, 0]) / np.where(a[:, 1] > 0, a[:, 1], np.nan)
        out[kind] = {
            "numbers": len(a),
            "coverage": float(np.nanmean(ratio <= 1.0)),
            "p95_abs_error_over_reported": float(np.nanquantile(ratio, 0.95)),
        }
    return {"repetitions": reps, "by_kind": out}


def segments_spec(epsilon: float) -> AnalysisSpec:
    """The RFM segmentation spec (k = 4, 3 iterations) the benchmark and its must-show test use."""
    raw = {
        "name": "segments",
        "epsilon": epsilon,
        "unit": {"id_column": "customer_id"},
        "columns": {
            "recency_days": {"min": 0, "max": 365},
            "frequency_12m": {"min": 0, "max": 60},
            "monetary_12m": {"min": 0, "max": 20_000},
            "churned": {"min": 0, "max": 1},
        },
        "segments": {
            "epsilon": epsilon,
            "k": 4,
            "iterations": 3,
            "features": _FEATURES,
            "outcome": "churned",
            "value": "monetary_12m",
        },
    }
    return load_analysis_spec(raw, "benchmark")


def _kmeans(epsilons: list[float], reps: int) -> dict[str, Any]:
    profiles = (npf.retailer(12_000), npf.ecommerce(4_000), npf.bank(6_000))
    frames = {p.name: synth.generate_customers(p, 7).frame for p in profiles}
    pooled = pd.concat(frames.values())
    z = np.clip((pooled[_FEATURES].to_numpy(float) - _LO) / (_HI - _LO), 0, 1)
    best = float(KMeans(n_clusters=4, n_init=10, random_state=0).fit(z).inertia_)
    table = {}
    for eps in epsilons:
        spec = segments_spec(eps)
        ratios, churn = [], []
        for _ in range(reps):
            summary = run_segments_in_process(spec, frames, sampler=OpenDPLaplace())
            cents = [[c[f] for f in _FEATURES] for c in summary["centroids"]]
            cz = (np.array(cents) - _LO) / (_HI - _LO)
            ratios.append(float(((z[:, None] - cz[None]) ** 2).sum(2).min(1).sum() / best))
            labels = pd.concat([assign_segments(spec, f, cents) for f in frames.values()])
            true = pooled["churned"].groupby(labels.to_numpy()).mean()
            errs = [
                abs(r["outcome_rate"]["value"] - true.get(r["segment"], np.nan))
                for r in summary["federated"]
                if r["outcome_rate"]["value"] is not None
            ]
            churn.append(float(np.nanmax(errs)) if errs else float("nan"))
        table[f"{eps:g}"] = {
            "cost_ratio_median": float(np.median(ratios)),
            "cost_ratio_max": float(np.max(ratios)),
            "churn_error_max_median": float(np.nanmedian(churn)),
            "churn_error_max_max": float(np.nanmax(churn)),
        }
    return {"customers": len(pooled), "nodes": 3, "k": 4, "repetitions": reps, "epsilons": table}


def _speed(frames: dict[str, pd.DataFrame], spec: AnalysisSpec, reps: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    prep = {n: prepare(spec, f, n) for n, f in frames.items()}
    prepare_s = time.perf_counter() - t0
    samplers = {"opendp": OpenDPLaplace(), "seeded": SeededLaplace(0)}
    spent = dict.fromkeys(samplers, 0.0)
    combine_s, numbers = 0.0, 0
    for _ in range(reps):
        for name, sampler in samplers.items():  # interleaved: a busy neighbour slows both alike
            t = time.perf_counter()
            rel = {n: release_prepared(spec, p, sampler) for n, p in prep.items()}
            spent[name] += time.perf_counter() - t
        t = time.perf_counter()
        combine_releases(spec, rel)
        combine_s += time.perf_counter() - t
    numbers = sum(len(c["values"]) for r in rel.values() for c in _components(r))
    return {
        "repetitions": reps,
        "noisy_numbers_per_repetition": numbers,
        "prepare_once_s": prepare_s,
        "release_s_per_repetition": {k: v / reps for k, v in spent.items()},
        "opendp_over_seeded": spent["opendp"] / spent["seeded"],
        "combine_s_per_repetition": combine_s / reps,
        "total_opendp_s": spent["opendp"] + combine_s,
    }


def _components(release: dict[str, Any]) -> list[dict[str, Any]]:
    parts = list(release["queries"].values())
    parts += [release[p] for p in ("rfm", "quality") if p in release]
    return [c for part in parts for c in part["components"].values()]


def run(quick: bool) -> dict[str, Any]:
    """All analytics measurements (``quick``: fewer repetitions and epsilons)."""
    frames = _default_frames()
    spec = load_analysis_spec(yaml.safe_load(_CONF.read_text(encoding="utf-8")), str(_CONF))
    reps = 50 if quick else 200
    return {
        "data": {n: len(f) for n, f in frames.items()},
        "calibration": [
            _calibration(frames, eps, reps) for eps in ([1.0] if quick else [0.25, 0.5, 1.0, 2.0])
        ],
        "builtin": _builtin_calibration(frames, spec, 10 if quick else 50),
        "kmeans": _kmeans([0.25, 1.0] if quick else [0.1, 0.25, 0.5, 1.0, 2.0], 3 if quick else 10),
        "speed": _speed(frames, spec, 20 if quick else 200),
    }
