"""`confide score` treats model.pt as data: a crafted file runs nothing, NaN weights are refused,
and in every refusal no output is written; a legitimate file scores."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.modeling.models import LogisticRegression
from confide.simulations.federation import materialize_synthetic_nodes


@pytest.fixture(scope="module")
def node_and_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    cfg = to_container(compose_config(["federation.nodes.0.rows=300"]))
    job = materialize_synthetic_nodes(parse_job(cfg), root / "nodes")
    return job.nodes[0], cfg["task"], job.task.input_dim


def confide_score(run_dir, node, out):
    return subprocess.run(
        [
            *(sys.executable, "-m", "confide", "score", "--run", str(run_dir)),
            *("--data", str(node.data), "--policy", str(node.policy), "--out", str(out)),
            *("--keys", str(node.keys)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=run_dir,
    )


def legacy_payload(task, dim, net, state=None):
    """A round-1 (confide-model-v1) file as the old server wrote it."""
    if state is None:
        state = LogisticRegression(dim).state_dict()
    return {
        "format": "confide-model-v1",
        "state_dict": state,
        "task": task,
        "model": {"name": "logreg", "learning_rate": 2.0, "grad_sample_mode": "ew", "net": net},
        "extra": {},
    }


def assert_refused(proc, out):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))  # no temporary left either


def test_a_crafted_model_file_runs_no_code_and_writes_nothing(tmp_path, node_and_task):
    node, task, dim = node_and_task
    victim = tmp_path / "victim.txt"
    net = {
        "_target_": "builtins.print",
        "_args_": ["x"],
        "file": {"_target_": "builtins.open", "_args_": [str(victim), "a"]},
    }
    torch.save(legacy_payload(task, dim, net), tmp_path / "model.pt")
    out = tmp_path / "scores.csv"
    proc = confide_score(tmp_path, node, out)
    assert not victim.exists()
    assert_refused(proc, out)
    assert "model.net" in proc.stderr and "(rule: model registry)" in proc.stderr
    assert str(victim) not in proc.stderr


def test_nan_weights_are_refused_instead_of_empty_probabilities(tmp_path, node_and_task):
    node, task, dim = node_and_task
    state = LogisticRegression(dim).state_dict()
    state["linear.weight"][0, 1] = float("nan")
    net = {"_target_": "confide.modeling.models.LogisticRegression"}
    torch.save(legacy_payload(task, dim, net, state), tmp_path / "model.pt")
    out = tmp_path / "scores.csv"
    proc = confide_score(tmp_path, node, out)
    assert_refused(proc, out)
    assert proc.stderr.strip() == (
        f"error: {tmp_path / 'model.pt'}: field 'state_dict.linear.weight' holds NaN or infinite "
        "weights (rule: finite weights)"
    )


def test_a_legitimate_model_file_scores(tmp_path, node_and_task):
    """Control: the same command with a file the server writes succeeds (legacy round-1 files
    load too: tests/modeling/test_model_files.py)."""
    from confide.modeling.factory import build_model, parse_model_spec
    from confide.modeling.model_io import save_model

    node, task, dim = node_and_task
    model = build_model("logreg", {}, dim, seed=0)
    save_model(tmp_path / "model.pt", model, task, parse_model_spec("logreg", {}))
    out = tmp_path / "scores.csv"
    proc = confide_score(tmp_path, node, out)
    assert proc.returncode == 0, proc.stderr
    scores = pd.read_csv(out)
    assert len(scores) == 300 and proc.stdout.strip() == f"scored 300 rows -> {out}"
    prob = scores[f"{parse_job(to_container(compose_config())).task.name}_probability"]
    assert prob.notna().all() and prob.between(0, 1).all()


def test_non_finite_probabilities_are_refused_and_nothing_is_written(
    tmp_path, node_and_task, monkeypatch
):
    """Defence in depth behind the weight check: a non-finite score is never written."""
    from confide.clients import scoring
    from confide.modeling.factory import build_model, parse_model_spec
    from confide.modeling.model_io import save_model

    node, task, dim = node_and_task
    spec = parse_model_spec("logreg", {})
    save_model(tmp_path / "model.pt", build_model("logreg", {}, dim), task, spec)
    out = tmp_path / "scores.csv"
    assert scoring.score_file(tmp_path, node.data, node.policy, out, node.keys) == 300  # control
    out.unlink()
    monkeypatch.setattr(scoring, "predict_proba", lambda model, x: np.full(len(x), np.nan))
    with pytest.raises(scoring.ScoringError) as err:
        scoring.score_file(tmp_path, node.data, node.policy, out, node.keys)
    assert str(err.value) == (
        f"{tmp_path / 'model.pt'}: the model gives a non-finite probability for 300 rows of "
        f"{node.data} (rule: finite scores)"
    )
    assert not out.exists()
