"""One rule engine: for every config below, a node refuses the job at start (``preflight``, i.e.
``NodeRuntime.checked_data``) exactly when the review shows an ERROR for that node, and the rule
ids a refusal names are among the review's."""

import json
import os
import re
from pathlib import Path

import pytest

from confide.audit import audit_config
from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.job import parse_job
from confide.modeling.errors import ConfideError
from confide.simulations.simulate import preflight
from confide.wire import Proposal
from tests.confide.test_audit import ledger, mini, with_policy


def federation(tmp_path: Path, **variant) -> dict:
    """Two CSV nodes: ``clean`` (always acceptable) and ``shop`` (built with ``variant``)."""
    (tmp_path / "clean").mkdir()
    (tmp_path / "shop").mkdir()
    clean = mini(tmp_path / "clean")
    cfg = mini(tmp_path / "shop", **variant)
    node = clean["federation"]["nodes"][0]
    node["name"] = "clean"
    cfg["federation"]["nodes"].insert(0, node)
    return cfg


def _shop(cfg):
    return cfg["federation"]["nodes"][1]


def _perms(cfg, tmp):
    os.chmod(_shop(cfg)["keys"], 0o644)


def _corrupt_ledger(cfg, tmp):
    (tmp / "bad.json").write_text('{"version": 1, "node": "someone-else", "runs": []}')
    _shop(cfg)["ledger"] = str(tmp / "bad.json")


def _bad_yaml(cfg, tmp):
    Path(_shop(cfg)["policy"]).write_text("version: 1\nversion: 2\n")


VARIANTS = {
    "clean": (None, {}),
    "dp-off": (lambda c, t: c["dp"].update(enabled=False, epsilon=None, delta=None), {}),
    "epsilon-above-policy": (lambda c, t: c["dp"].update(epsilon=5.0), {}),
    "delta-above-policy-and-1/n": (lambda c, t: c["dp"].update(delta=0.05), {}),
    "unlisted-column": (None, {"extra_column": True}),
    "policy-column-missing-from-data": (
        None,
        {"policy": with_policy(email={"tier": "core_sensitive", "transform": "drop"})},
    ),
    "policy-missing": (lambda c, t: _shop(c).update(policy=str(t / "none.yaml")), {}),
    "policy-malformed": (_bad_yaml, {}),
    "lifetime-exhausted": (lambda c, t: _shop(c).update(ledger=ledger(t / "shop", 8.0)), {}),
    "lifetime-ok": (lambda c, t: _shop(c).update(ledger=ledger(t / "shop", 6.0)), {}),
    "ledger-foreign": (_corrupt_ledger, {}),
    "no-keys": (None, {"keys": False}),
    "keys-readable-by-others": (_perms, {}),
    "data-missing": (lambda c, t: _shop(c).update(data=str(t / "none.csv")), {}),
    "role-not-granted": (None, {"policy": with_policy(province={"tier": "non_sensitive"})}),
    "core-sensitive-feature": (
        lambda c, t: c["task"]["features"].append(
            {"name": "mobile", "type": "categorical", "categories": ["138"], "unknown": "ignore"}
        ),
        {},
    ),
    "pseudonymised-id-as-feature": (
        lambda c, t: c["task"]["features"].append(
            {"name": "customer_id", "type": "categorical", "categories": ["x"], "unknown": "ignore"}
        ),
        {},
    ),
    "task-field-not-in-policy": (
        lambda c, t: c["task"]["features"].append(
            {"name": "tenure", "type": "numeric", "min": 0, "max": 9}
        ),
        {},
    ),
    "dp-off-allowed-by-policy": (
        lambda c, t: c["dp"].update(enabled=False, epsilon=None, delta=None),
        {
            "policy": {
                **with_policy(),
                "dp": {
                    "max_epsilon_per_run": 3.0,
                    "lifetime_epsilon": 10.0,
                    "max_delta": 1e-5,
                    "require_dp": False,
                },
                "columns": {
                    k: {**v, "tier": "non_sensitive"} if k in ("age", "churned") else v
                    for k, v in with_policy()["columns"].items()
                },
            }
        },
    ),
}


def runtime_refusal(job, node) -> str | None:
    try:
        preflight(job, [node])
    except ConfideError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_review_errors_equal_runtime_refusals(tmp_path, name):
    change, variant = VARIANTS[name]
    cfg = federation(tmp_path, **json.loads(json.dumps(variant)))
    if change is not None:
        change(cfg, tmp_path)
    report = audit_config(cfg)
    job = parse_job(cfg)
    outcomes = {}
    for node in job.nodes:
        refusal = runtime_refusal(job, node)
        errors = report.node_errors(node.name)
        outcomes[node.name] = (refusal is not None, bool(errors))
        assert (refusal is not None) == bool(errors), (name, node.name, refusal, errors)
        if refusal and "job refused on node" in refusal:
            named = set(re.findall(r"\b([A-Z]+(?:-[A-Z0-9/]+)+)\b", refusal.split(" - first")[0]))
            assert named <= set(errors), (named, errors)
    assert outcomes["clean"][0] == (
        name
        in (
            "dp-off",
            "dp-off-allowed-by-policy",
            "epsilon-above-policy",
            "delta-above-policy-and-1/n",
            "core-sensitive-feature",
            "pseudonymised-id-as-feature",
            "task-field-not-in-policy",
        )
    )
    expect_shop = name not in ("clean", "lifetime-ok", "dp-off-allowed-by-policy")
    assert outcomes["shop"] == (expect_shop, expect_shop)


def test_node_epsilon_cap_refused_at_train_and_in_review(tmp_path):
    cfg = federation(tmp_path)
    _shop(cfg)["max_epsilon_per_run"] = 2.0
    report = audit_config(cfg)
    job = parse_job(cfg)
    assert report.node_errors("shop") == ["DP-EPS-RUN"] and report.node_errors("clean") == []
    proposal = Proposal("r", 1, job.rounds, job.seed, job.dp, job.train)
    runtime = NodeRuntime(job.node("shop"), job.task, job.model_net, job.test_fraction)
    with pytest.raises(NodeRefusal, match="DP-EPS-RUN"):
        runtime.train({}, proposal, None)
