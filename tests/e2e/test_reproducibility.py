"""Reproducibility across processes: two fresh ``confide simulate`` processes with the same seed
write the same global model (every weight bit-identical), the same per-round history and the
same metrics.

``model.pt`` cannot be byte-identical: torch.save writes a random ``.data/serialization_id``
into every archive, and the payload's ``extra.run_id`` carries the run's UTC timestamp. Every
other part of the payload is compared exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.modeling.factory import build_model

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SMALL = [
    "federation.nodes.0.rows=2400",
    "federation.nodes.1.rows=600",
    "rounds=2",
    "baselines.enabled=false",
    "run.quiet=true",
]


def _simulate_in_fresh_process(root: Path, extra: list[str] | None = None) -> Path:
    run_dir = root / "runs" / "same-name"  # the run id is the directory name; keep it equal
    args = [*SMALL, f"run.root={root / 'runs'}", f"run.dir={run_dir}", *(extra or [])]
    env = {**os.environ, "CI": "true", "PYTHONHASHSEED": str(hash(str(root)) % 1000)}
    done = subprocess.run(
        [sys.executable, "-m", "confide", "simulate", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return run_dir


def _json(run_dir: Path, name: str):
    return json.loads((run_dir / name).read_text(encoding="utf-8"))


def _payload(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", weights_only=False)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return _payload(run_dir)["state_dict"]


def test_two_processes_with_the_same_seed_write_the_same_model(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _simulate_in_fresh_process(tmp_path / "a")
    second = _simulate_in_fresh_process(tmp_path / "b")
    a, b = _weights(first), _weights(second)
    assert list(a) == list(b)
    for key, value in a.items():
        assert torch.equal(value, b[key]), key  # exact, not merely within 1e-6
    p1, p2 = _payload(first), _payload(second)
    assert p1["extra"].pop("run_id") != p2["extra"].pop("run_id")  # timestamped, see above
    assert {k: v for k, v in p1.items() if k != "state_dict"} == {
        k: v for k, v in p2.items() if k != "state_dict"
    }
    h1, h2 = _json(first, "history.json")["rounds"], _json(second, "history.json")["rounds"]
    assert [r["round"] for r in h1] == [r["round"] for r in h2] == [1, 2]
    for r1, r2 in zip(h1, h2, strict=True):
        assert r1["train"] == r2["train"] and r1["global"] == r2["global"]
    m1, m2 = _json(first, "metrics.json"), _json(second, "metrics.json")
    assert m1["global"] == m2["global"] and m1["nodes"] == m2["nodes"]
    # control: the compared weights are the product of DP training, not the seeded start, so
    # equal weights are not the trivial outcome of a no-op
    job = parse_job(to_container(compose_config(SMALL)))
    start = build_model(job.model_name, job.model_net.params, job.task.input_dim, seed=job.seed)
    assert any(not torch.equal(v, a[k]) for k, v in start.state_dict().items())
