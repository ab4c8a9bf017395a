"""The Privacy section lists the noise source each node reported, and flags seeded noise on the
deployment engine (rule DP-NOISE-NOT-SECURE)."""

from __future__ import annotations

import json

import yaml

from confide.reports import load_run
from confide.reports.context import ReportContext
from confide.reports.sections.privacy import privacy
from tests.reports.fake_run import make_run


def _row(node: str, kind: str, review: str) -> str:
    return "".join(f'<td class="text">{v}</td>' for v in (node, kind, review))


def _body(run_dir) -> str:
    return privacy(ReportContext(load_run(run_dir))).body


def _set_transport(run_dir, transport: str) -> None:
    path = run_dir / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["deployment"] = {"transport": transport}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _set_noise(run_dir, node: str, secure: float) -> None:
    path = run_dir / "history.json"
    history = json.loads(path.read_text(encoding="utf-8"))
    for record in history["rounds"]:
        record["train"][node]["secure_noise"] = secure
    path.write_text(json.dumps(history), encoding="utf-8")


def test_simulation_lists_seeded_noise_per_node_without_flagging(tmp_path):
    run_dir = make_run(tmp_path)
    body = _body(run_dir)
    assert "Noise source each node used" in body
    assert _row("retailer", "seeded", "ok") in body and _row("ecommerce", "seeded", "ok") in body
    assert "DP-NOISE-NOT-SECURE" not in body


def test_deployment_flags_only_the_node_that_reported_seeded_noise(tmp_path):
    run_dir = make_run(tmp_path)
    _set_transport(run_dir, "tls")
    nodes = list(json.loads((run_dir / "history.json").read_text())["rounds"][0]["train"])
    _set_noise(run_dir, nodes[0], 1.0)
    body = _body(run_dir)
    assert body.count("ERROR DP-NOISE-NOT-SECURE") == 1
    assert _row(nodes[1], "seeded", "ERROR DP-NOISE-NOT-SECURE") in body
    assert "1 node(s) drew seeded noise on the deployment engine" in body
    # control: every node secure, nothing flagged
    _set_noise(run_dir, nodes[1], 1.0)
    body = _body(run_dir)
    assert _row(nodes[0], "secure", "ok") in body and _row(nodes[1], "secure", "ok") in body
    assert "DP-NOISE-NOT-SECURE" not in body
