"""The hostile-input corpus: one entry per hostile file, the command that reads it, and what
the refusal must name. Each case mutates a fresh copy of a small, valid workspace (two nodes'
CSV, policy and key files, a federation config, a scoring run with a model file) and plants
the unique ``MARKER`` wherever the input can carry a raw value."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

MARKER = "Zq7xHostileMarker"
RUN_ID = "20260101T000000000000Z-mine-churn"


@dataclass(frozen=True)
class Case:
    """A hostile input: how to plant it, which command reads it, what the error names."""

    id: str
    kind: str  # csv | policy | task | keys | ledger | model
    command: str  # simulate | apply | check-policy | score | ledger-show | rotate
    plant: Callable[[Path], None]
    expect: tuple[str, ...]  # substrings of the one error line: file, field, rule
    marker: bool = True  # False where the input carries no raw value to leak


# --------------------------------------------------------------------- the base workspace


def build_base(root: Path) -> Path:
    """A valid workspace under ``root`` (built once; each case works on a copy)."""
    from confide.config import compose_config, to_container
    from confide.job import parse_job
    from confide.modeling.model_io import save_model
    from confide.privacy.budget_ledger import BudgetLedger
    from tests.byo_data import write_user_federation

    write_user_federation(root / "org", {"shop_a": 160, "shop_b": 120})
    (root / "runs").mkdir()
    config = to_container(compose_config([]))
    job = parse_job(config)
    model = job.model_net.build(job.task.input_dim, seed=1)
    (root / "run").mkdir()
    save_model(root / "run" / "model.pt", model, config["task"], job.model_net, {"run_id": RUN_ID})
    BudgetLedger(root / "org" / "shop_b" / "ledger.json", "shop_b", 10.0).reserve(RUN_ID, 1.0, 1e-5)
    from confide.privacy.run_ledger import append_run

    append_run(
        root / "runs" / "run-ledger.jsonl",
        run_id=RUN_ID,
        config={"seed": 1},
        policy_sha256={"shop_a": "0" * 64},
        epsilon={"shop_a": 1.0},
        model_path=root / "run" / "model.pt",
        outcome="completed",
        key=None,
    )
    return root


def copy_workspace(base: Path, dest: Path) -> Path:
    """Copy the base workspace; the federation config's absolute paths follow the copy."""
    shutil.copytree(base, dest, symlinks=True)
    fed = dest / "org" / "conf" / "federation" / "mine.yaml"
    fed.write_text(fed.read_text(encoding="utf-8").replace(str(base), str(dest)), "utf-8")
    return dest


def command(name: str, ws: Path) -> list[str]:
    """The confide command line a case runs (paths inside the workspace ``ws``)."""
    b = ws / "org" / "shop_b"
    sim = ["simulate", "--config-dir", str(ws / "org" / "conf"), "federation=mine"]
    sim += [f"run.root={ws / 'runs'}", "rounds=1", "baselines.enabled=false", "-q"]
    return {
        "simulate": sim,
        "simulate-task": [*sim, "task=hostile"],
        "apply": [
            "privacy",
            "apply",
            "--policy",
            str(b / "policy.yaml"),
            "--data",
            str(b / "customers.csv"),
            "--out",
            str(ws / "out.csv"),
            "--keys",
            str(b / "keys.json"),
        ],
        "check-policy": ["privacy", "check-policy", str(b / "policy.yaml")],
        "score": [
            "score",
            "--run",
            str(ws / "run"),
            "--data",
            str(b / "customers.csv"),
            "--policy",
            str(b / "policy.yaml"),
            "--out",
            str(ws / "scores.csv"),
            "--keys",
            str(b / "keys.json"),
        ],
        "ledger-show": ["ledger", "show", "--ledger", str(ws / "runs" / "run-ledger.jsonl")],
        "rotate": ["keys", "rotate", str(b / "keys.json")],
    }[name]


# --------------------------------------------------------------------- planting helpers


def _csv(ws: Path) -> Path:
    return ws / "org" / "shop_b" / "customers.csv"


def _rows(ws: Path) -> list[str]:
    return _csv(ws).read_text(encoding="utf-8").splitlines()


def _write_rows(ws: Path, rows: list[str]) -> None:
    _csv(ws).write_text("\n".join(rows) + "\n", encoding="utf-8")


def _set_cell(column: str, value: str, row: int = 3) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        rows = _rows(ws)
        header = rows[0].split(",")
        cells = rows[row].split(",")
        cells[header.index(column)] = value
        rows[row] = ",".join(cells)
        _write_rows(ws, rows)

    return plant


def _short_row(ws: Path) -> None:
    rows = _rows(ws)
    rows[4] = rows[4].rsplit(",", 1)[0]  # the last column is missing
    _write_rows(ws, rows)


def _duplicate_header(ws: Path) -> None:
    rows = _rows(ws)
    header = rows[0].split(",")
    header[header.index("nps")] = "age"
    rows[0] = ",".join(header)
    _write_rows(ws, rows)


def _latin1(ws: Path) -> None:
    raw = _csv(ws).read_bytes().replace(b"gold", ("g\xf6ld" + MARKER).encode("latin-1"), 1)
    _csv(ws).write_bytes(raw)


def _huge_cell(ws: Path) -> None:
    _set_cell("email", MARKER * (200_000 // len(MARKER)))(ws)


def _fifo_data(ws: Path) -> None:
    _csv(ws).unlink()
    os.mkfifo(_csv(ws))


def _policy(ws: Path) -> Path:
    return ws / "org" / "shop_b" / "policy.yaml"


def _policy_edit(old: str, new: str) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        text = _policy(ws).read_text(encoding="utf-8")
        assert old in text, old
        _policy(ws).write_text(text.replace(old, new, 1), encoding="utf-8")

    return plant


def _alias_bomb(ws: Path) -> None:
    lines = ["version: 1", "dataset: d", "unknown_columns: refuse", f"a0: &a0 [{MARKER}]"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("columns:\n  age: {tier: *a11, role: feature}")
    _policy(ws).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _task(**changes: object) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        from confide.job import resolve_path

        task = yaml.safe_load(
            resolve_path("pkg://confide.conf/task/churn.yaml", "t").read_text("utf-8")
        )
        for key, value in changes.items():
            feature, _, field = key.partition(".")
            if not field:
                task[feature] = value
                continue
            for f in task["features"]:
                if f["name"] == feature:
                    f[field] = value
        (ws / "org" / "conf" / "task").mkdir(exist_ok=True)
        text = yaml.safe_dump(task, allow_unicode=True)
        (ws / "org" / "conf" / "task" / "hostile.yaml").write_text(text, encoding="utf-8")

    return plant


def _node(index: int, key: str, value: object) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        path = ws / "org" / "conf" / "federation" / "mine.yaml"
        fed = yaml.safe_load(path.read_text(encoding="utf-8"))
        fed["nodes"][index][key] = value
        path.write_text(yaml.safe_dump(fed, allow_unicode=True), encoding="utf-8")

    return plant


def _keys(ws: Path) -> Path:
    return ws / "org" / "shop_b" / "keys.json"


def _key_file(edit: Callable[[dict], None], mode: int = 0o600) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        data = json.loads(_keys(ws).read_text(encoding="utf-8"))
        edit(data)
        _keys(ws).write_text(json.dumps(data), encoding="utf-8")
        os.chmod(_keys(ws), mode)

    return plant


def _key_in_active(data: dict) -> None:
    data["active"] = data["keys"]["k1"][:-8] + MARKER[:8]


def _junk_base64(data: dict) -> None:
    data["keys"]["k1"] = data["keys"]["k1"][:10] + "!*" + MARKER + data["keys"]["k1"][10:]


def _fifo_keys(ws: Path) -> None:
    _keys(ws).unlink()
    os.mkfifo(_keys(ws), 0o600)


def _keys_dev_zero(ws: Path) -> None:
    _keys(ws).unlink()
    _keys(ws).symlink_to("/dev/zero")


def _ledger(ws: Path) -> Path:
    return ws / "org" / "shop_b" / "ledger.json"


def _ledger_text(old: str, new: str) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        text = _ledger(ws).read_text(encoding="utf-8")
        assert old in text, old
        _ledger(ws).write_text(text.replace(old, new, 1), encoding="utf-8")

    return plant


def _run_ledger_edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        path = ws / "runs" / "run-ledger.jsonl"
        record = json.loads(path.read_text(encoding="utf-8"))
        edit(record)
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")

    return plant


def _run_ledger_rechained(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """Edit the record and re-hash it and the head: a consistent chain (no key) that carries
    a hostile field value, so the reader's field validation is what must refuse it."""

    def plant(ws: Path) -> None:
        from confide.privacy.run_ledger import _hash

        path = ws / "runs" / "run-ledger.jsonl"
        record = json.loads(path.read_text(encoding="utf-8"))
        edit(record)
        record["hash"] = _hash(record)
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        head = path.with_name(path.name + ".head")
        head.write_text(json.dumps({"count": 1, "head": record["hash"]}) + "\n", "utf-8")

    return plant


def _model(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        path = ws / "run" / "model.pt"
        payload = torch.load(path, weights_only=True)
        edit(payload)
        torch.save(payload, path)

    return plant


def _class_path(payload: dict) -> None:
    payload["model"] = {
        "_target_": f"builtins.print.{MARKER}",
        "_args_": [MARKER],
        "file": {"_target_": "builtins.open", "_args_": ["pwned.txt", "a"]},
    }


def _nan_weights(payload: dict) -> None:
    for value in payload["state_dict"].values():
        value.fill_(float("nan"))


def _garbage_model(ws: Path) -> None:
    (ws / "run" / "model.pt").write_bytes(b"PK\x03\x04" + MARKER.encode() * 50)


# --------------------------------------------------------------------- the corpus

CASES: list[Case] = [
    # CSV: simulate and apply read the same file through one reader
    Case(
        "csv-non-numeric",
        "csv",
        "simulate",
        _set_cell("age", MARKER),
        ("customers.csv", "'age'", "rule"),
    ),
    Case(
        "csv-third-label",
        "csv",
        "simulate",
        _set_cell("churned", MARKER),
        ("customers.csv", "'churned'", "binary label"),
    ),
    Case(
        "csv-unknown-category",
        "csv",
        "simulate",
        _set_cell("member_level", MARKER),
        ("customers.csv", "'member_level'", "declared categories"),
    ),
    Case(
        "csv-whitespace-category",
        "csv",
        "simulate",
        _set_cell("gender", "   "),
        ("customers.csv", "'gender'", "rule"),
        marker=False,
    ),
    Case(
        "csv-infinite-number",
        "csv",
        "simulate",
        _set_cell("points", "-Infinity"),
        ("customers.csv", "'points'", "rule"),
        marker=False,
    ),
    Case("csv-short-row", "csv", "simulate", _short_row, ("customers.csv", "rule"), marker=False),
    Case(
        "csv-duplicate-header",
        "csv",
        "simulate",
        _duplicate_header,
        ("customers.csv", "'age'", "rule"),
        marker=False,
    ),
    Case("csv-huge-cell", "csv", "simulate", _huge_cell, ("customers.csv", "'email'", "rule")),
    Case("csv-not-utf8", "csv", "apply", _latin1, ("customers.csv", "UTF-8", "rule")),
    Case(
        "csv-fifo",
        "csv",
        "apply",
        _fifo_data,
        ("customers.csv", "regular file", "rule"),
        marker=False,
    ),
    # policy YAML
    Case(
        "policy-unknown-tier",
        "policy",
        "check-policy",
        _policy_edit("tier: core_sensitive, role: id", f"tier: {MARKER}, role: id"),
        ("policy.yaml", "customer_id", "rule"),
    ),
    Case("policy-alias-bomb", "policy", "check-policy", _alias_bomb, ("policy.yaml", "rule")),
    Case(
        "policy-huge-integer",
        "policy",
        "check-policy",
        _policy_edit("lifetime_epsilon: 10.0", "lifetime_epsilon: " + "7" * 5000),
        ("policy.yaml", "lifetime_epsilon", "rule"),
        marker=False,
    ),
    Case(
        "policy-epsilon-text",
        "policy",
        "simulate",
        _policy_edit("max_epsilon_per_run: 3.0", f"max_epsilon_per_run: {MARKER}"),
        ("policy.yaml", "max_epsilon_per_run", "rule"),
    ),
    Case(
        "policy-epsilon-nan",
        "policy",
        "simulate",
        _policy_edit("max_epsilon_per_run: 3.0", "max_epsilon_per_run: .nan"),
        ("policy.yaml", "max_epsilon_per_run", "rule"),
        marker=False,
    ),
    Case(
        "policy-core-as-feature",
        "policy",
        "apply",
        _policy_edit(
            "national_id:  {tier: core_sensitive, transform: drop}",
            "national_id:  {tier: core_sensitive, role: feature}",
        ),
        ("policy.yaml", "national_id", "rule"),
        marker=False,
    ),
    # task spec and federation config (preflight, before the engine or any budget)
    Case(
        "task-fill-nan",
        "task",
        "simulate-task",
        _task(**{"nps.fill": float("nan")}),
        ("nps", "'fill'", "rule"),
        marker=False,
    ),
    Case(
        "task-max-inf",
        "task",
        "simulate-task",
        _task(**{"age.max": float("inf")}),
        ("age", "'max'", "rule"),
        marker=False,
    ),
    Case(
        "task-name-escapes",
        "task",
        "simulate-task",
        _task(name=f"../../{MARKER}"),
        ("task.name", "safe names"),
    ),
    Case(
        "node-name-slash",
        "task",
        "simulate",
        _node(1, "name", f"shop/{MARKER}"),
        ("federation.nodes[1].name", "safe names"),
    ),
    Case(
        "node-max-epsilon-text",
        "task",
        "simulate",
        _node(0, "max_epsilon_per_run", MARKER),
        ("federation.nodes[0].max_epsilon_per_run", "rule"),
    ),
    # key files
    Case(
        "keys-group-readable",
        "keys",
        "apply",
        _key_file(lambda d: None, 0o644),
        ("keys.json", "rule"),
        marker=False,
    ),
    Case(
        "keys-material-in-active",
        "keys",
        "apply",
        _key_file(_key_in_active),
        ("keys.json", "active", "rule"),
    ),
    Case("keys-junk-base64", "keys", "apply", _key_file(_junk_base64), ("keys.json", "rule")),
    Case(
        "keys-fifo",
        "keys",
        "apply",
        _fifo_keys,
        ("keys.json", "regular file", "rule"),
        marker=False,
    ),
    Case("keys-dev-zero", "keys", "rotate", _keys_dev_zero, ("keys.json", "rule"), marker=False),
    # budget ledger (node) and run ledger
    Case(
        "ledger-nan-spent",
        "ledger",
        "simulate",
        _ledger_text('"spent_epsilon": 0.0', '"spent_epsilon": NaN'),
        ("ledger.json", "spent_epsilon", "rule"),
        marker=False,
    ),
    Case(
        "ledger-negative-reserved",
        "ledger",
        "simulate",
        _ledger_text('"reserved_epsilon": 1.0', '"reserved_epsilon": -9.0'),
        ("ledger.json", "reserved_epsilon", "rule"),
        marker=False,
    ),
    Case(
        "ledger-runs-wrong-type",
        "ledger",
        "simulate",
        _ledger_text('"runs": [', f'"runs": "{MARKER}", "x": ['),
        ("ledger.json", "runs", "rule"),
    ),
    Case(
        "run-ledger-tampered",
        "ledger",
        "simulate",
        _run_ledger_edit(lambda r: r["epsilon"].update(shop_a=0.1)),
        ("run-ledger.jsonl", "record 1", "run ledger integrity"),
        marker=False,
    ),
    Case(
        "run-ledger-epsilon-text",
        "ledger",
        "ledger-show",
        _run_ledger_rechained(lambda r: r["epsilon"].update(shop_a=MARKER)),
        ("run-ledger.jsonl", "epsilon", "rule"),
    ),
    # model files
    Case("model-class-path", "model", "score", _model(_class_path), ("model.pt", "rule")),
    Case(
        "model-missing-net",
        "model",
        "score",
        _model(lambda p: p.pop("model")),
        ("model.pt", "rule"),
        marker=False,
    ),
    Case(
        "model-nan-weights",
        "model",
        "score",
        _model(_nan_weights),
        ("model.pt", "rule"),
        marker=False,
    ),
    Case("model-not-a-model", "model", "score", _garbage_model, ("model.pt", "rule")),
]
