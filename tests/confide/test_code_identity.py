"""The Flower app bundle carries no Confide code, and a node refuses a coordinator that runs
different Confide code from its own (issue 12, item 2)."""

from __future__ import annotations

import io
import json
import subprocess
import tomllib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from flwr.cli.build import build_fab_from_disk

from confide.clients.client_app import runtime_from_deployment
from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.code_identity import (
    DIGEST_KEY,
    VERSION_KEY,
    CodeIdentity,
    CodeMismatch,
    check_coordinator_code,
    identity_run_config,
    installed_identity,
    source_digest,
)
from confide.config import compose_config, to_container
from confide.deploy import deployment_job, start_run
from tests.byo_data import write_user_federation

ROOT = Path(__file__).resolve().parents[2]


def test_fab_carries_only_pyproject_and_readme_with_namespaced_components():
    fab = zipfile.ZipFile(io.BytesIO(build_fab_from_disk(ROOT)))
    assert sorted(fab.namelist()) == [".info/CONTENT", "README.md", "pyproject.toml"]
    app = tomllib.loads(fab.read("pyproject.toml").decode())["tool"]["flwr"]["app"]
    assert app["components"] == {
        "serverapp": "confide.deployment_app:app",
        "clientapp": "confide.clients.client_app:app",
    }
    assert {"confide-version", "confide-code-digest"} <= set(app["config"])


def test_matching_identity_passes_and_any_difference_refuses():
    own = CodeIdentity("1.2.3", "a" * 64)
    check_coordinator_code({VERSION_KEY: "1.2.3", DIGEST_KEY: "a" * 64}, own)
    with pytest.raises(
        CodeMismatch, match=r"coordinator runs Confide 1\.2\.4 .*rule: code version"
    ):
        check_coordinator_code({VERSION_KEY: "1.2.4", DIGEST_KEY: "a" * 64}, own)
    with pytest.raises(CodeMismatch, match=r"source digest bbbbbbbbbbbb\), this node runs 1\.2\.3"):
        check_coordinator_code({VERSION_KEY: "1.2.3", DIGEST_KEY: "b" * 64}, own)
    with pytest.raises(CodeMismatch, match="does not say which Confide code"):
        check_coordinator_code({}, own)
    with pytest.raises(CodeMismatch, match="does not say which Confide code"):
        check_coordinator_code({VERSION_KEY: "1.2.3", DIGEST_KEY: ""}, own)


def test_source_digest_covers_every_source_file_and_nothing_else(tmp_path, monkeypatch):
    pkg = tmp_path / "digestpkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "rules.yaml").write_text("a: 1\n")
    (pkg / "core.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = source_digest("digestpkg", ())
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"\0junk")
    (pkg / "notes.txt").write_text("not source")
    assert source_digest("digestpkg", ()) == first  # caches and non-source files do not count
    (pkg / "core.py").write_text("X = 2\n")
    assert source_digest("digestpkg", ()) != first
    (pkg / "core.py").write_text("X = 1\n")
    assert source_digest("digestpkg", ()) == first
    (pkg / "sub" / "rules.yaml").write_text("a: 2\n")
    assert source_digest("digestpkg", ()) != first


def _context(tmp_path, run_config_extra: dict) -> SimpleNamespace:
    conf = write_user_federation(tmp_path / "org", {"shop_a": 50})
    overrides = ["federation=mine", "dp.noise=secure"]
    job = deployment_job(to_container(compose_config(overrides, [conf])))
    folder = tmp_path / "org" / "shop_a"
    return SimpleNamespace(
        run_config={"confide-job": json.dumps(job), **run_config_extra},
        node_config={
            "name": "shop_a",
            "data-path": str(folder / "customers.csv"),
            "policy-path": str(folder / "policy.yaml"),
        },
    )


def test_node_refuses_coordinator_on_other_code_and_accepts_its_own(tmp_path):
    own = installed_identity()
    same = _context(tmp_path / "same", identity_run_config())
    assert isinstance(runtime_from_deployment(same), NodeRuntime)  # control: same code runs
    other = _context(tmp_path / "other", identity_run_config(CodeIdentity(own.version, "0" * 64)))
    with pytest.raises(NodeRefusal, match=r"source digest 000000000000\).*rule: code version"):
        runtime_from_deployment(other)
    unsaid = _context(tmp_path / "unsaid", {})
    with pytest.raises(NodeRefusal, match="does not say which Confide code"):
        runtime_from_deployment(unsaid)


def test_confide_deploy_sends_the_coordinators_identity(tmp_path, monkeypatch):
    conf = write_user_federation(tmp_path / "org", {"shop_a": 50})
    config = to_container(compose_config(["federation=mine", "dp.noise=secure"], [conf]))
    sent = {}

    def fake_run(argv, **kwargs):
        path = Path(argv[argv.index("--run-config") + 1])
        sent.update(tomllib.loads(path.read_text(encoding="utf-8")))
        return subprocess.CompletedProcess(argv, 0, '{"success": true, "run-id": 7}', "")

    monkeypatch.setattr("confide.deploy.subprocess.run", fake_run)
    result = start_run(config, "127.0.0.1:9093", None, True, tmp_path / "runs")
    assert result.run_id == "7"
    assert sent[VERSION_KEY] == installed_identity().version
    assert sent[DIGEST_KEY] == installed_identity().digest
    assert set(sent) == {"confide-job", "confide-run-dir", VERSION_KEY, DIGEST_KEY}
    # the run ledger goes beside the runs the ServerApp writes, as an absolute path
    job = json.loads(sent["confide-job"])
    assert job["run"]["ledger"] == str((tmp_path / "runs" / "run-ledger.jsonl").resolve())
    assert sent["confide-run-dir"] == str((tmp_path / "runs").resolve())
