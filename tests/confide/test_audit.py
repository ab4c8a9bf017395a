"""`confide audit`: the review composes like a run, fires every rule on a minimal config, passes
every shipped config option, and renders Markdown, JSON and self-contained HTML."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from confide import conf
from confide.audit import audit, audit_config, render
from confide.cli import app
from confide.config import compose_config, to_container
from confide.privacy.registry import rules_for

ROOT = Path(__file__).resolve().parents[2]
CONF = Path(conf.__file__).parent
SYNTH_POLICY = ROOT / "simulations" / "policies" / "synthetic_customers.yaml"
BAD_DIR = ROOT / "examples" / "compliance_review" / "conf"

POLICY = {
    "version": 1,
    "dataset": "shop",
    "columns": {
        "customer_id": {"tier": "core_sensitive", "role": "id", "transform": "pseudonymize"},
        "mobile": {"tier": "core_sensitive", "transform": "mask:mobile"},
        "age": {"tier": "general_sensitive", "role": "feature"},
        "province": {"tier": "non_sensitive", "role": "feature"},
        "churned": {"tier": "general_sensitive", "role": "label"},
    },
    "dp": {"max_epsilon_per_run": 3.0, "lifetime_epsilon": 10.0, "max_delta": 1.0e-5},
}
TASK = {
    "name": "mini",
    "label": {"name": "churned", "positive": 1, "negative": 0},
    "features": [
        {"name": "age", "type": "numeric", "min": 18, "max": 85},
        {"name": "province", "type": "categorical", "categories": ["北京", "上海"]},
    ],
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def shipped_options() -> list[list[str]]:
    out = []
    for group in (
        "federation",
        "task",
        "model",
        "strategy",
        "dp",
        "secure",
        "scenario",
        "experiment",
    ):
        for option in options(group):
            extra = {
                ("dp", "off"): ["federation=default_research"],
                ("federation", "bank_ecommerce"): ["task=joint_churn"],  # a vertical job
                ("federation", "bank_ecommerce_split"): ["task=joint_churn"],
                ("task", "joint_churn"): ["federation=bank_ecommerce"],
            }.get((group, option), [])
            out.append([f"{group}={option}", *extra])
    return out


@pytest.mark.parametrize("overrides", shipped_options(), ids=lambda o: " ".join(o))
def test_every_shipped_config_option_has_no_error(overrides):
    report = audit(overrides)
    errors = [str(f) for f in report.all_findings if f.severity == "ERROR"]
    assert errors == [] and report.exit_code == 0


def test_dp_off_with_the_shipped_policy_is_an_error():
    report = audit(["dp=off"])
    assert report.exit_code == 1
    assert {"GS-NO-DP", "DP-REQUIRED"} <= set(report.node_errors("retailer"))


# --------------------------------------------------------------------------- minimal configs


def mini(
    tmp_path: Path,
    *,
    rows: int = 50,
    extra_column: bool = False,
    policy: dict | None = None,
    keys: bool = True,
) -> dict:
    """A one-node CSV federation in ``tmp_path`` built on the default config."""
    cfg = to_container(compose_config())
    cols = ["customer_id", "mobile", "age", "province", "churned"]
    if extra_column:
        cols.append("wechat_openid")
    body = [",".join(cols)] + [
        ",".join(
            [f"c{i}", f"1380000{i:04d}", str(20 + i % 50), "北京", str(i % 2)]
            + (["x"] if extra_column else [])
        )
        for i in range(rows)
    ]
    (tmp_path / "shop.csv").write_text("\n".join(body) + "\n", encoding="utf-8")
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy or POLICY), encoding="utf-8")
    node = {
        "name": "shop",
        "data": str(tmp_path / "shop.csv"),
        "policy": str(tmp_path / "policy.yaml"),
    }
    if keys:
        from confide.privacy.keys import new_keyring_file

        new_keyring_file(tmp_path / "keys.json")
        node["keys"] = str(tmp_path / "keys.json")
    cfg["federation"] = {"name": "mini", "nodes": [node]}
    cfg["task"] = json.loads(json.dumps(TASK))
    return cfg


def ledger(tmp_path: Path, spent: float) -> str:
    path = tmp_path / "ledger.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "node": "shop",
                "runs": [
                    {
                        "run_id": "old",
                        "reserved_epsilon": spent,
                        "spent_epsilon": spent,
                        "delta": 1e-5,
                        "steps": 1,
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    return str(path)


def with_policy(**changes) -> dict:
    policy = json.loads(json.dumps(POLICY))
    for column, body in changes.items():
        if body is None:
            policy["columns"].pop(column)
        else:
            policy["columns"][column] = body
    return policy


def _task_column_missing(cfg, tmp):
    cfg["task"]["features"].append({"name": "tenure", "type": "numeric", "min": 0, "max": 9})


def _cs_feature(cfg, tmp):
    cfg["task"]["features"].append(
        {"name": "mobile", "type": "categorical", "categories": ["138"], "unknown": "ignore"}
    )


def _dp_off(cfg, tmp):
    cfg["dp"].update(enabled=False, epsilon=None, delta=None)


CASES = {
    "TASK-COLUMN-MISSING": (_task_column_missing, {}),
    "CS-FEATURE": (_cs_feature, {}),
    "ROLE-MISMATCH": (None, {"policy": with_policy(province={"tier": "non_sensitive"})}),
    "TIER-TRANSFORM": (
        lambda c, t: c["task"]["features"].append(
            {
                "name": "customer_id",
                "type": "categorical",
                "categories": ["c1"],
                "unknown": "ignore",
            }
        ),
        {},
    ),
    "GS-NO-DP": (_dp_off, {}),
    "DP-REQUIRED": (_dp_off, {}),
    "DP-EPS-RUN": (lambda c, t: c["dp"].update(epsilon=5.0), {}),
    "DP-DELTA": (lambda c, t: c["dp"].update(delta=1e-4), {}),
    "DP-DELTA-N": (lambda c, t: c["dp"].update(delta=0.05), {}),  # n = 40 training rows
    "DP-LIFETIME": (lambda c, t: c["federation"]["nodes"][0].update(ledger=ledger(t, 8.0)), {}),
    "UNLISTED-COLUMN": (None, {"extra_column": True}),
    "SCHEMA-MISSING": (
        None,
        {"policy": with_policy(email={"tier": "core_sensitive", "transform": "drop"})},
    ),
    "POLICY-MISSING": (
        lambda c, t: c["federation"]["nodes"][0].update(policy=str(t / "no.yaml")),
        {},
    ),
    "CONFIG-INVALID": (lambda c, t: c.update(rounds=0), {}),
    "TRANSPORT-INSECURE": (lambda c, t: c.update(deployment={"transport": "insecure"}), {}),
    "DP-NOISE-NOT-SECURE": (lambda c, t: c.update(deployment={"transport": "tls"}), {}),
    "CONFIG-SECRET": (lambda c, t: c["federation"].update(api_token="tok"), {}),
    "DATA-MISSING": (lambda c, t: c["federation"]["nodes"][0].update(data=str(t / "no.csv")), {}),
    "NODE-KEYS": (None, {"keys": False}),
    "LEDGER-INTEGRITY": (
        lambda c, t: (
            (t / "bad.json").write_text("{")
            and c["federation"]["nodes"][0].update(ledger=str(t / "bad.json"))
        ),
        {},
    ),
}


def test_the_minimal_config_is_clean(tmp_path):
    report = audit_config(mini(tmp_path))
    assert [str(f) for f in report.all_findings if f.severity != "INFO"] == []
    assert {f.rule_id for f in report.all_findings} == {"FIELD-USE", "DP-NOISE-SOURCE"}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_each_rule_fires_on_a_minimal_config(tmp_path, rule_id):
    change, kwargs = CASES[rule_id]
    cfg = mini(tmp_path, **kwargs)
    if change is not None:
        change(cfg, tmp_path)
    report = audit_config(cfg)
    fired = {f.rule_id for f in report.all_findings}
    assert rule_id in fired, [str(f) for f in report.all_findings]
    assert report.exit_code == 1


def test_override_widens_fires_through_audit():
    report = audit(["dp.epsilon=2.5", "strategy.algorithm.min_train_nodes=1"])
    widen = [f for f in report.findings if f.rule_id == "OVERRIDE-WIDENS"]
    assert [f.field for f in widen] == ["strategy.algorithm.min_train_nodes"]
    assert report.exit_code == 0  # a warning, not an error


def test_every_job_and_config_rule_has_a_firing_case():
    covered = set(CASES) | {"OVERRIDE-WIDENS", "FIELD-USE", "DP-NOISE-SOURCE"}
    registered = {r.rule_id for r in rules_for("job")} | {r.rule_id for r in rules_for("config")}
    assert registered <= covered, sorted(registered - covered)


def test_policy_parse_rules_surface_with_their_id(tmp_path):
    bad = with_policy(mobile={"tier": "core_sensitive", "role": "feature", "transform": "keep"})
    report = audit_config(mini(tmp_path, policy=bad))
    assert {"POLICY-CS-ROLE"} <= set(report.node_errors("shop"))


def test_node_epsilon_cap_is_the_stricter_limit(tmp_path):
    cfg = mini(tmp_path)
    cfg["federation"]["nodes"][0]["max_epsilon_per_run"] = 2.0
    report = audit_config(cfg)
    assert report.node_errors("shop") == ["DP-EPS-RUN"]
    assert report.nodes[0].max_epsilon_per_run == 2.0


def test_columns_say_how_each_field_leaves_the_node(tmp_path):
    cfg = mini(tmp_path, policy=with_policy(mobile={"tier": "core_sensitive", "transform": "drop"}))
    cfg["secure"]["secagg"]["enabled"] = True
    view = {c.name: c for c in audit_config(cfg).nodes[0].columns}
    assert view["mobile"].leaves.startswith("never: dropped")
    assert "keyed pseudonym" in view["customer_id"].leaves
    assert view["age"].leaves.startswith("only inside DP-trained model weights")
    assert "SecAgg+" in view["age"].leaves and view["age"].task_use == "feature 'age'"
    assert "held-out metrics" in view["churned"].leaves


def test_budget_and_rows_are_reported(tmp_path):
    cfg = mini(tmp_path, rows=50)
    cfg["federation"]["nodes"][0]["ledger"] = ledger(tmp_path, 2.0)
    node = audit_config(cfg).nodes[0]
    assert node.train_rows == 40 and node.lifetime_spent == 2.0
    assert node.lifetime_remaining_after_run == pytest.approx(5.0)
    before = (tmp_path / "ledger.json").read_bytes()
    audit_config(cfg)
    assert (tmp_path / "ledger.json").read_bytes() == before  # read-only


def test_synthetic_rows_use_the_configured_rows():
    node = audit([]).nodes[1]
    assert node.name == "ecommerce" and node.train_rows == 3600 - 720


# --------------------------------------------------------------------------- output and CLI


def test_bad_example_fails_with_the_expected_rules():
    report = audit(["experiment=bad_review"], [BAD_DIR])
    assert report.exit_code == 1
    assert {"TRANSPORT-INSECURE", "CONFIG-SECRET", "OVERRIDE-WIDENS"} <= {
        f.rule_id for f in report.findings
    }
    assert {
        "CS-FEATURE",
        "ROLE-MISMATCH",
        "TIER-TRANSFORM",
        "DP-EPS-RUN",
        "DP-DELTA",
        "DP-DELTA-N",
        "DP-LIFETIME",
        "UNLISTED-COLUMN",
        "NODE-KEYS",
    } <= set(report.node_errors("shop_a"))
    assert report.node_errors("shop_b") == ["POLICY-MISSING"]


@pytest.mark.parametrize("fmt", ["md", "json", "html"])
def test_cli_formats_exit_codes_and_no_secret_values(tmp_path, fmt):
    runner = CliRunner()
    out = tmp_path / f"review.{fmt}"
    done = runner.invoke(
        app,
        [
            "audit",
            "--config-dir",
            str(BAD_DIR),
            "experiment=bad_review",
            "--format",
            fmt,
            "--out",
            str(out),
        ],
    )
    assert done.exit_code == 1, done.output
    text = out.read_text(encoding="utf-8")
    assert "not-a-real-token-for-the-review-demo" not in text
    assert "CONFIG-SECRET" in text and "shop_a" in text
    if fmt == "json":
        data = json.loads(text)
        assert data["exit_code"] == 1 and data["summary"]["ERROR"] >= 10
        assert data["nodes"][0]["columns"][0]["tier"] == "core_sensitive"
    if fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and "<style>" in text
        assert "http://" not in text and "https://" not in text and "<script" not in text


def test_cli_default_federation_passes():
    done = CliRunner().invoke(app, ["audit"])
    assert done.exit_code == 0, done.output
    assert "PASS: 0 error(s)" in done.output and "## Node `retailer`" in done.output


def test_rules_command_writes_the_catalogue(tmp_path):
    out = tmp_path / "rules.md"
    assert CliRunner().invoke(app, ["rules", "--out", str(out)]).exit_code == 0
    assert out.read_text(encoding="utf-8") == (ROOT / "docs" / "rules.md").read_text(
        encoding="utf-8"
    )


def test_render_markdown_mentions_every_guarantee(tmp_path):
    text = render(audit_config(mini(tmp_path)), "md")
    for needle in (
        "sample-level DP",
        "client-level DP",
        "secure aggregation",
        "transport",
        "What leaves each node",
        "Where outputs are kept",
        "lifetime budget",
    ):
        assert needle in text


def test_ledger_cli_show_and_verify(tmp_path):
    from confide.privacy.run_ledger import RunLedger

    path = tmp_path / "l.jsonl"
    RunLedger(path).append(
        run_id="r1",
        config_sha256="a" * 64,
        policy_sha256={"n": "b" * 64},
        epsilon={"n": 2.5},
        model_sha256=None,
        outcome="stopped",
    )
    runner = CliRunner()
    shown = runner.invoke(app, ["ledger", "show", "--ledger", str(path)])
    assert shown.exit_code == 0 and "r1" in shown.output and "verify: ok" in shown.output
    assert runner.invoke(app, ["ledger", "verify", "--ledger", str(path)]).exit_code == 0
    path.write_text(path.read_text().replace("2.5", "0.5"))
    bad = runner.invoke(app, ["ledger", "verify", "--ledger", str(path)])
    assert bad.exit_code == 1 and "record 1" in bad.output
