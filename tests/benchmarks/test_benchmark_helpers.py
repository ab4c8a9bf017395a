"""Benchmark helpers: the plain FedAvg loop, generated scale data, config and table rendering.

Nothing here times anything; speed targets are checked by ``python -m confide.benchmarks``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from confide.benchmarks.common import base_config, federation_nodes, load_nodes, machine_info
from confide.benchmarks.engine_overhead import engine_config
from confide.benchmarks.report import render
from confide.benchmarks.scale import generate_encoded
from confide.benchmarks.utility import summarise
from confide.job import parse_job
from confide.modeling.model_io import load_model
from confide.simulations.in_process import plain_fedavg, weighted_average
from confide.simulations.simulate import simulate
from tests.epsilon_checks import assert_run_epsilon

TINY = ["federation.nodes.0.rows=400", "federation.nodes.1.rows=200", "rounds=2"]


def test_weighted_average_is_fedavg():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor([4.0])}
    avg = weighted_average([(a, 1.0), (b, 3.0)])
    torch.testing.assert_close(avg["w"], torch.tensor([2.5, 5.0]))
    torch.testing.assert_close(avg["b"], torch.tensor([3.0]))
    assert avg["w"].dtype == torch.float32


def test_generated_federation_has_distinct_nodes_and_is_a_valid_job(tmp_path):
    cfg = engine_config(50, rounds=1, run_dir=tmp_path / "run")
    job = parse_job(cfg)
    assert len(job.nodes) == 50 == len({n.name for n in job.nodes})
    assert len({(n.profile, n.rows) for n in job.nodes}) == 50  # no two nodes share data
    assert federation_nodes(3, 100)[2]["rows"] == 114


def test_plain_loop_is_deterministic_and_spends_the_budget(tmp_path):
    job = parse_job(base_config(TINY))
    job, nodes = load_nodes(job, tmp_path / "nodes")
    first = plain_fedavg(job, "run-a")
    second = plain_fedavg(job, "run-b")
    assert len(first.round_seconds) == 2 == len(first.global_metrics)
    for key, value in first.state_dict.items():
        assert torch.equal(value, second.state_dict[key])
    assert set(first.epsilon) == {"retailer", "ecommerce"}
    for node in nodes:  # the accountant over both rounds, at the run's target
        assert_run_epsilon(
            first.epsilon[node.name],
            target=job.dp.epsilon,
            delta=job.dp.delta,
            train_rows=len(node.y_train),
            batch_size=job.train.batch_size,
            local_epochs=job.train.local_epochs,
            rounds=2,
        )
    assert 0.5 < first.global_metrics[-1]["roc_auc"] <= 1.0


def test_generated_scale_data_looks_like_encoded_customers():
    x, y = generate_encoded(5000)
    assert x.shape == (5000, 40) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.allclose(x[:, 24:30].sum(axis=1), 1.0)  # one-hot block
    assert abs(y.mean() - 0.2) < 0.02


def test_render_names_the_machine_and_every_section():
    results = json.loads(json.dumps(_fake_results()))
    page = render(results, ["- a note"])
    machine = machine_info()
    assert machine["cpu"] in page and f"torch {machine['torch']}" in page
    for heading in ("## 1.", "## 2.", "## 4.", "## 5.", "shared"):
        assert heading in page
    assert "| logreg |" in page and "| 10 |" in page and "- a note" in page


def _fake_results():
    profile = {"seconds_per_epoch": 0.1, "by_part": {"x": 0.1}, "top_functions": []}
    model = {
        "seconds_per_epoch_median": {
            "off": 0.1,
            "closed_form": 0.11,
            "opacus_hooks": 0.12,
            "opacus_ew": 0.2,
            "opacus_ghost": 0.3,
        },
        "ratio_to_no_dp": {
            "closed_form": 1.1,
            "opacus_hooks": 1.2,
            "opacus_ew": 2.0,
            "opacus_ghost": 3.0,
        },
        "cpu_ratio_to_no_dp": {
            "closed_form": 1.0,
            "opacus_hooks": 1.2,
            "opacus_ew": 2.0,
            "opacus_ghost": 3.0,
        },
        "fastest_opacus_mode": "hooks",
        "closed_form_speedup_over_fastest_opacus": 1.09,
        "configured_ratio": 1.1,
        "configured_cpu_ratio": 1.0,
        "target_met": True,
        "profile": {"dp_closed_form": profile, "no_dp": profile},
    }
    run = {"total_s": 10.0, "steady_round_s": 1.0, "round_s": [5.0, 1.0], "status": "completed"}
    size = {
        "rows": 1000,
        "rounds": 2,
        "plain": [{"total_s": 5.0}],
        "confide": {**run, "outside_rounds_s": 4.0, "max_epsilon": 3.0},
        "ratio_total": 2.0,
        "ratio_steady_round": 1.0,
        "same_auc_within_0_01": True,
    }
    return {
        "machine": machine_info(),
        "meta": {"mode": "quick", "started": "now", "wall_s": 60.0, "shared": True},
        "dp_overhead": {
            "data": {"node": "retailer", "rows": 16000, "features": 43},
            "repeats": 3,
            "target_ratio": 1.5,
            "models": {"logreg": model},
        },
        "engine_overhead": {
            "target_ratio_10_nodes": 3.0,
            "sizes": {"10": {**size, "target_met": True}, "50": size},
        },
        "scale": {
            "one_node": {
                "rows": 1000,
                "features": 40,
                "model": "logreg",
                "fallback_grad_sample_mode": "ew",
                "repeats": 3,
                "dp_epoch_s": 1.0,
                "opacus_dp_epoch_s": 2.0,
                "no_dp_epoch_s": 0.5,
                "dp_ratio": 2.0,
                "dp_cpu_ratio": 1.9,
                "opacus_dp_ratio": 4.0,
                "data_mib": 1.0,
                "rss_before_training_mib": 290.0,
                "training_peak_rss_mib": 300.0,
                "training_peak_above_pre_training_mib": 10.0,
                "peak_above_baseline_mib": 30.0,
                "peak_above_baseline_over_data": 30.0,
                "poisson_sampler_s_per_step": 2e-5,
                "poisson_sampler_share_of_dp_epoch": 0.01,
                "opacus_sampler_s_per_step": 5e-4,
                "opacus_sampler_epoch_s": 1.9,
                "target_ratio": 2.0,
                "target_met": True,
            }
        },
        "utility": summarise(_fake_metrics())
        | {"status": "completed", "wall_s": 30.0, "rounds": 5},
    }


def _fake_metrics():
    own = {"roc_auc": 0.8}
    return {
        "dp": {"epsilon_target": 3.0},
        "global": {"roc_auc": 0.85},
        "nodes": {"a": {"rows": 10, "epsilon": 2.9, "global_model_on_own_test": own}},
        "baselines": {
            "centralised": {"pooled": {"roc_auc": 0.86}},
            "centralised_dp": {"pooled": {"roc_auc": 0.855}, "epsilon": 2.99},
            "local_only:a": {"pooled": {"roc_auc": 0.7}, "own": own, "epsilon": 2.9, "rows": 10},
        },
    }


@pytest.mark.e2e
def test_plain_loop_computes_the_same_global_model_as_a_flower_run(tmp_path):
    """One Flower simulation and the plain loop on its very node files: the same weights."""
    cfg = base_config([*TINY, "baselines.enabled=false", "run.quiet=true"])
    cfg["run"]["dir"] = str(tmp_path / "run")
    sim = simulate(cfg)
    assert sim.status == "completed"
    flower_model, _, _ = load_model(sim.run_dir / "model.pt")
    job = parse_job(cfg)
    nodes_root = sim.run_dir / "nodes"
    job = job.with_nodes(  # the run's own node files; a fresh ledger for the second run
        tuple(
            replace(
                n,
                data=nodes_root / n.name / "customers.csv",
                keys=nodes_root / n.name / "keys.json",
                ledger=tmp_path / f"{n.name}.ledger.json",
            )
            for n in job.nodes
        )
    )
    plain = plain_fedavg(job, "plain-check")
    for key, value in flower_model.state_dict().items():
        torch.testing.assert_close(plain.state_dict[key], value, rtol=0, atol=1e-6)
    history = json.loads(Path(sim.run_dir / "history.json").read_text(encoding="utf-8"))
    assert all(r["wall_s"] > 0 for r in history["rounds"])
    assert history["rounds"][-1]["global"]["roc_auc"] == pytest.approx(
        plain.global_metrics[-1]["roc_auc"], abs=1e-9
    )
