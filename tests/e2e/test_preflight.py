"""`confide simulate` validates everything it can before the engine starts, any budget is
reserved or a run directory exists; an engine that fails to start ends the run in seconds.

The in-process cases replace Flower's ``run_simulation`` with a sentinel that records a call:
a config that passes preflight would reach it, so each case proves that preflight stopped the
run first (the control case shows the sentinel is reached by a clean config).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from confide.config import compose_config, to_container
from confide.core.errors import ConfideError
from tests.byo_data import write_user_federation

MARKER = "Zq7hostileMARKER"


class EngineStarted(Exception):
    """Raised by the sentinel that stands in for Flower's simulation engine."""


@pytest.fixture
def user_conf(tmp_path):
    return write_user_federation(tmp_path / "org", {"shop_a": 300, "shop_b": 200})


@pytest.fixture
def engine(monkeypatch):
    calls = []

    def sentinel(**kwargs):
        calls.append(kwargs)
        raise EngineStarted("the simulation engine was started")

    import confide.simulations.simulate as sim

    monkeypatch.setattr(sim, "run_simulation", sentinel)
    monkeypatch.setattr(sim, "start_engine", lambda *a, **k: None, raising=False)
    return calls


def _config(conf_dir: Path, runs: Path, *extra: str) -> dict:
    return to_container(
        compose_config(
            ["federation=mine", f"run.root={runs}", "rounds=1", "baselines.enabled=false", *extra],
            [conf_dir],
        )
    )


def _state(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_control_a_clean_config_reaches_the_engine(user_conf, tmp_path, engine):
    from confide.simulations.simulate import SimulationEngineError, simulate

    runs = tmp_path / "runs"
    with pytest.raises(SimulationEngineError) as info:
        simulate(_config(user_conf, runs))
    assert len(engine) == 1
    assert str(info.value) == (
        "simulation engine: stopped before the run ended (EngineStarted); the partial run "
        "directory was removed (rule: simulation engine)"
    )
    assert list(runs.iterdir()) == []  # the partial run directory is gone


def _tamper_run_ledger(runs: Path) -> None:
    from confide.privacy.run_ledger import append_run

    ledger = runs / "run-ledger.jsonl"
    append_run(
        ledger,
        run_id="20260101T000000000000Z-mine-churn",
        config={"seed": 1},
        policy_sha256={"shop_a": "0" * 64},
        epsilon={"shop_a": 1.0},
        model_path=runs / "absent.pt",
        outcome="completed",
        key=None,
    )
    record = json.loads(ledger.read_text(encoding="utf-8"))
    record["epsilon"]["shop_a"] = 0.1
    ledger.write_text(json.dumps(record) + "\n", encoding="utf-8")


def _set_task_number(conf: Path, feature: str, key: str, value: float) -> None:
    from confide.job import resolve_path

    task = yaml.safe_load(resolve_path("pkg://confide.conf/task/churn.yaml", "t").read_text())
    for f in task["features"]:
        if f["name"] == feature:
            f[key] = value
    task["name"] = "hostile"
    (conf / "task").mkdir(exist_ok=True)
    (conf / "task" / "hostile.yaml").write_text(yaml.safe_dump(task), encoding="utf-8")


def _set_node(conf: Path, index: int, key: str, value) -> None:
    path = conf / "federation" / "mine.yaml"
    fed = yaml.safe_load(path.read_text(encoding="utf-8"))
    fed["nodes"][index][key] = value
    path.write_text(yaml.safe_dump(fed), encoding="utf-8")


CASES = {
    "task name with a space": (lambda c, r: None, [f"task.name='a {MARKER}'"], "task.name"),
    "task name climbs out of run.root": (
        lambda c, r: None,
        [f"task.name=../../{MARKER}"],
        "task.name",
    ),
    "federation name with a slash": (
        lambda c, r: None,
        [f"federation.name=x/{MARKER}"],
        "federation.name",
    ),
    "node name with a slash": (
        lambda c, r: _set_node(c, 1, "name", f"{MARKER}/b"),
        [],
        "federation.nodes[1].name",
    ),
    "fill .nan": (
        lambda c, r: _set_task_number(c, "nps", "fill", float("nan")),
        ["task=hostile"],
        "'fill'",
    ),
    "max .inf": (
        lambda c, r: _set_task_number(c, "age", "max", float("inf")),
        ["task=hostile"],
        "'max'",
    ),
    "max_epsilon_per_run abc": (
        lambda c, r: _set_node(c, 0, "max_epsilon_per_run", MARKER),
        [],
        "federation.nodes[0].max_epsilon_per_run",
    ),
    "tampered run ledger": (
        lambda c, r: _tamper_run_ledger(r),
        [],
        "run-ledger.jsonl",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_is_refused_before_engine_budget_or_run_directory(
    user_conf, tmp_path, engine, case
):
    from confide.simulations.simulate import simulate

    breaker, overrides, field = CASES[case]
    runs = tmp_path / "runs"
    runs.mkdir()
    breaker(user_conf, runs)
    config = _config(user_conf, runs, *overrides)
    before = _state(tmp_path)
    with pytest.raises(ConfideError) as info:
        simulate(config)
    message = str(info.value)
    assert field in message and "(rule: " in message
    assert MARKER not in message
    assert engine == []  # the engine never started
    assert _state(tmp_path) == before  # no run directory, no ledger charged, nothing written
    assert not list((user_conf.parent).rglob("ledger.json"))


_FAILING_RAY = textwrap.dedent(
    """
    import sys
    import ray

    def _refuse(*args, **kwargs):
        raise RuntimeError("raylet could not start (injected by the test)")

    ray.init = _refuse
    from confide.cli import main
    sys.argv = ["confide", *sys.argv[1:]]
    main()
    """
)


# Flower starts Ray itself (the pre-start switched off): the engine dies after the ServerApp
# thread started, which used to hold the process open until run.timeout_s.
_FAILING_RAY_UNDER_SERVER = _FAILING_RAY.replace(
    "from confide.cli import main",
    "import confide.simulations.simulate as sim\n"
    "sim.start_engine = lambda config: None\n"
    "from confide.cli import main",
)

_EXPECTED = {
    "before the ServerApp": (
        _FAILING_RAY,
        "error: simulation engine: Ray failed to start (RuntimeError); nothing was run and no "
        "budget was reserved (rule: simulation engine)",
    ),
    "under the ServerApp": (
        _FAILING_RAY_UNDER_SERVER,
        "error: simulation engine: stopped before the run ended (RuntimeError); the partial run "
        "directory was removed (rule: simulation engine)",
    ),
}


@pytest.mark.parametrize("when", list(_EXPECTED))
def test_engine_start_failure_fails_fast_with_one_line_and_leaves_nothing(
    user_conf, tmp_path, when
):
    script, expected = _EXPECTED[when]
    runs = tmp_path / "runs"
    ledgers = sorted(user_conf.parent.rglob("ledger.json"))
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "simulate",
            "--config-dir",
            str(user_conf),
            "federation=mine",
            f"run.root={runs}",
            "rounds=1",
            "baselines.enabled=false",
            "run.timeout_s=600",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,  # before the fix: a hang until run.timeout_s (600 s)
        cwd=tmp_path,
        env={**os.environ, "RAY_DEDUP_LOGS": "0"},
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [expected]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert elapsed < 150  # seconds, on a loaded 2-core machine; the hang lasted run.timeout_s
    assert not runs.exists() or list(runs.iterdir()) == []
    assert sorted(user_conf.parent.rglob("ledger.json")) == ledgers == []
