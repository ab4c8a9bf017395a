"""Preflight of a composed config: names, finite numbers, types, run location, run ledger.

Each refusal is one line naming the field and the rule, never the offending value, and happens
in :func:`confide.job.parse_job` / :func:`confide.job.check_run_ledger`, before a run directory
exists or any budget is reserved (the run and the audit call the same functions).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from confide.config import compose_config, to_container
from confide.job import JobError, check_run_ledger, parse_job, preflight_config, run_location

MARKER = "Zq7hostileMARKER"


@pytest.fixture(scope="module")
def base_config() -> dict:
    return to_container(compose_config(["rounds=1"]))


def _with(config: dict, path: str, value) -> dict:
    out = copy.deepcopy(config)
    target = out
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return out


def test_control_the_shipped_config_passes_preflight(base_config, tmp_path):
    job = parse_job(base_config)
    assert job.task.name == "churn" and [n.name for n in job.nodes] == ["retailer", "ecommerce"]
    cfg = _with(base_config, "run.root", str(tmp_path / "runs"))
    run_id, run_dir = run_location(cfg, "20260101T000000000000Z")
    assert run_id == "20260101T000000000000Z-default-churn"
    assert run_dir == (tmp_path / "runs" / run_id)


BAD_NAMES = {
    "task name with a space": ("task.name", f"a {MARKER}"),
    "task name with a slash": ("task.name", f"x/{MARKER}"),
    "task name climbing out": ("task.name", f"../../{MARKER}"),
    "federation name with a slash": ("federation.name", f"{MARKER}/fed"),
    "federation name dot-dot": ("federation.name", ".."),
    "node name with a space": ("federation.nodes.1.name", f"e {MARKER}"),
    "node name with a slash": ("federation.nodes.0.name", f"{MARKER}/../r"),
    "run name climbing out": ("run.name", f"../{MARKER}"),
    "empty task name": ("task.name", ""),
    "task name not a string": ("task.name", 12),
}


@pytest.mark.parametrize("case", list(BAD_NAMES))
def test_unsafe_names_are_refused_naming_the_field_not_the_value(base_config, case):
    field, value = BAD_NAMES[case]
    config = _with(base_config, field, value)
    with pytest.raises(JobError) as info:
        parse_job(config)
    message = str(info.value)
    shown = field.replace(".nodes.1.", ".nodes[1].").replace(".nodes.0.", ".nodes[0].")
    assert shown in message
    assert "(rule: safe names)" in message
    assert MARKER not in message and "\n" not in message


BAD_NUMBERS = {
    "dp epsilon nan": ("dp.epsilon", float("nan"), "dp.epsilon"),
    "dp delta inf": ("dp.delta", float("inf"), "dp.delta"),
    "dp max_grad_norm nan": ("dp.max_grad_norm", float("nan"), "dp.max_grad_norm"),
    "dp max_grad_norm text": ("dp.max_grad_norm", MARKER, "dp.max_grad_norm"),
    "learning rate inf": ("train.learning_rate", float("inf"), "train.learning_rate"),
    "momentum nan": ("train.momentum", float("nan"), "train.momentum"),
    "batch size text": ("train.batch_size", MARKER, "train.batch_size"),
    "batch size float": ("train.batch_size", 12.5, "train.batch_size"),
    "rounds text": ("rounds", MARKER, "rounds"),
    "rounds huge": ("rounds", 10**5000, "rounds"),
    "seed text": ("seed", MARKER, "seed"),
    "test fraction nan": ("split.test_fraction", float("nan"), "split.test_fraction"),
    "proximal mu inf": ("strategy.algorithm.proximal_mu", float("inf"), "proximal_mu"),
    "node max epsilon text": (
        "federation.nodes.0.max_epsilon_per_run",
        MARKER,
        "federation.nodes[0].max_epsilon_per_run",
    ),
    "node max epsilon nan": (
        "federation.nodes.0.max_epsilon_per_run",
        float("nan"),
        "federation.nodes[0].max_epsilon_per_run",
    ),
    "node rows text": ("federation.nodes.1.rows", MARKER, "federation.nodes[1].rows"),
    "node rows negative": ("federation.nodes.1.rows", -5, "federation.nodes[1].rows"),
}


@pytest.mark.parametrize("case", list(BAD_NUMBERS))
def test_non_finite_and_mistyped_numbers_are_one_line_config_errors(base_config, case):
    field, value, shown = BAD_NUMBERS[case]
    config = _with(base_config, field, value)
    with pytest.raises(JobError) as info:
        parse_job(config)
    message = str(info.value)
    assert shown in message and "(rule: " in message
    assert MARKER not in message and "\n" not in message


def test_a_derived_run_directory_outside_run_root_is_refused(base_config, tmp_path):
    # run_location re-checks containment itself (defence in depth behind the name rule)
    config = _with(base_config, "run.root", str(tmp_path / "runs"))
    config["run"]["name"] = "../escape"
    with pytest.raises(JobError) as info:
        run_location(config, "20260101T000000000000Z")
    assert "run.name" in str(info.value) and "(rule: safe names)" in str(info.value)
    assert not (tmp_path / "escape").exists()


def _ledger_with_one_record(root: Path) -> Path:
    from confide.privacy.run_ledger import append_run

    ledger = root / "run-ledger.jsonl"
    append_run(
        ledger,
        run_id="20260101T000000000000Z-default-churn",
        config={"seed": 1},
        policy_sha256={"retailer": "0" * 64},
        epsilon={"retailer": 1.0},
        model_path=root / "absent-model.pt",
        outcome="completed",
        key=None,
    )
    return ledger


def test_run_ledger_integrity_is_checked_in_preflight(base_config, tmp_path):
    config = _with(base_config, "run.root", str(tmp_path))
    config["run"]["ledger"] = str(tmp_path / "run-ledger.jsonl")
    check_run_ledger(config)  # control: no ledger yet is a fresh history
    ledger = _ledger_with_one_record(tmp_path)
    check_run_ledger(config)  # control: an intact ledger passes
    record = json.loads(ledger.read_text(encoding="utf-8").splitlines()[0])
    record["epsilon"]["retailer"] = 0.25  # rewrite history: less spent than recorded
    ledger.write_text(json.dumps(record) + "\n", encoding="utf-8")
    before = ledger.read_bytes()
    with pytest.raises(JobError) as info:
        check_run_ledger(config)
    message = str(info.value)
    assert str(ledger) in message and "record 1" in message
    assert "(rule: run ledger integrity)" in message
    assert ledger.read_bytes() == before


def test_the_audit_reports_the_same_preflight_errors_as_the_run(base_config, tmp_path):
    from confide.audit import audit_config

    config = _with(base_config, "run.root", str(tmp_path))
    config["run"]["ledger"] = str(tmp_path / "run-ledger.jsonl")
    clean = audit_config(config)
    assert "CONFIG-INVALID" not in [f.rule_id for f in clean.all_findings]  # control
    ledger = _ledger_with_one_record(tmp_path)
    record = json.loads(ledger.read_text(encoding="utf-8").splitlines()[0])
    record["epsilon"]["retailer"] = 0.25
    ledger.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(JobError) as runtime:
        preflight_config(config)
    found = [f for f in audit_config(config).all_findings if f.rule_id == "CONFIG-INVALID"]
    assert len(found) == 1 and str(runtime.value) in found[0].message
    named = _with(config, "task.name", f"x/{MARKER}")
    with pytest.raises(JobError) as runtime:
        preflight_config(named)
    found = [f for f in audit_config(named).all_findings if f.rule_id == "CONFIG-INVALID"]
    assert len(found) == 1 and str(runtime.value) in found[0].message
    assert MARKER not in found[0].message
