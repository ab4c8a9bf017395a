"""`confide deploy`: start a job on a running SuperLink (Flower's deployment engine).

The job is composed with Hydra exactly like ``confide simulate`` (:func:`compose_config`,
:func:`parse_job`), stripped of every node-local path (in deployment each organisation's data,
policy, keys and ledger come from its own SuperNode's ``--node-config``), and handed to
``flwr run`` as the run config keys ``confide-job`` (JSON) and ``confide-run-dir``. ``flwr run``
reads its SuperLink connection from a Flower config file; Confide writes one into a private
temporary ``FLWR_HOME`` for the call, so the user's own ``~/.flwr`` is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from confide.code_identity import identity_run_config
from confide.job import parse_job
from confide.modeling.errors import ConfideError
from confide.rundir import RUN_LEDGER_FILE

__all__ = [
    "CONNECTION",
    "SECURE_NOISE_DEFAULT",
    "DeployError",
    "DeployResult",
    "default_app_dir",
    "deployment_job",
    "flwr_env",
    "start_run",
    "wait_for_run",
]

CONNECTION = "confide"
NODE_LOCAL = "(node-local: from each SuperNode's --node-config)"
SECURE_NOISE_DEFAULT = "dp.noise=secure"  # composed before the user's overrides by confide deploy
INSECURE_WARNING = (
    "WARNING: --insecure: the connection to the SuperLink is NOT encrypted (no TLS). Use it only "
    "for a local demo; the compliance review flags it."
)


class DeployError(ConfideError):
    """The job could not be started on, or followed at, the SuperLink."""


@dataclass(frozen=True)
class DeployResult:
    """A run started on the SuperLink, and (after waiting) how it ended."""

    run_id: str
    run_dir: Path
    status: str = "started"
    outcome: dict[str, Any] | None = None


def default_app_dir() -> Path:
    """The Flower app folder (the one holding Confide's ``pyproject.toml``)."""
    here = Path(__file__).resolve().parent.parent
    if not (here / "pyproject.toml").is_file():
        raise DeployError(
            f"{here}: no pyproject.toml; pass --app with Confide's source folder (rule: app)"
        )
    return here


def deployment_job(config: Mapping[str, Any], insecure: bool = False) -> dict[str, Any]:
    """The shared job for deployment: validated, with no node-local path in it, and the
    transport recorded (``deployment.transport``: ``tls`` or ``insecure``) for the review.

    DP with seeded noise is refused: seeded noise is for reproducible simulation only
    (``confide deploy`` composes with ``dp.noise=secure`` first; nodes use secure noise anyway)."""
    parsed = parse_job(config)  # the same validation as a simulation
    if parsed.dp.enabled and parsed.dp.noise != "secure":
        raise DeployError(
            "dp.noise=seeded: seeded DP noise is for simulation only; a deployment needs "
            "dp.noise=secure (rule: DP-NOISE-NOT-SECURE)"
        )
    job = json.loads(json.dumps(config))
    job["federation"] = {
        "name": str(config.get("federation", {}).get("name", "deployment")),
        "nodes": [{"name": "deployment", "data": NODE_LOCAL, "policy": NODE_LOCAL}],
    }
    if parsed.vertical is not None:  # its vertical keys, and each node by name (its role)
        federation = {k: v for k, v in config["federation"].items() if k != "nodes"}
        job["federation"] = {
            **json.loads(json.dumps(federation)),
            "nodes": [
                {"name": n.name, "data": NODE_LOCAL, "policy": NODE_LOCAL} for n in parsed.nodes
            ],
        }
    job["deployment"] = {"transport": "insecure" if insecure else "tls"}
    parse_job(job)
    return job


def flwr_env(
    home: Path, superlink: str, root_certificates: Path | None, insecure: bool
) -> dict[str, str]:
    """Environment for the ``flwr`` CLI with a one-connection Flower config in ``home``."""
    if not insecure and root_certificates is None:
        raise DeployError(
            "TLS is on by default: pass --root-certificates CA.crt (or --insecure for a local "
            "demo) (rule: transport)"
        )
    connection: dict[str, Any] = {"address": superlink}
    if insecure:
        connection["insecure"] = True
    else:
        ca = Path(root_certificates).expanduser().resolve()  # type: ignore[arg-type]
        if not ca.is_file():
            raise DeployError(f"{ca}: root certificate does not exist (rule: transport)")
        connection["root-certificates"] = str(ca)
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        tomli_w.dumps({"superlink": {"default": CONNECTION, CONNECTION: connection}}),
        encoding="utf-8",
    )
    env = dict(os.environ)
    env["FLWR_HOME"] = str(home)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def _flwr() -> str:
    found = shutil.which("flwr", path=str(Path(sys.executable).parent)) or shutil.which("flwr")
    if not found:
        raise DeployError("the 'flwr' command is not installed (rule: deployment)")
    return found


def _json_out(proc: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    text = proc.stdout.strip()
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else {}
    except json.JSONDecodeError as exc:
        raise DeployError(f"flwr {what}: unreadable reply ({proc.stderr.strip()[-300:]})") from exc


def start_run(
    config: Mapping[str, Any],
    superlink: str,
    root_certificates: Path | None,
    insecure: bool,
    run_dir: Path,
    app_dir: Path | None = None,
    home: Path | None = None,
) -> DeployResult:
    """Start the job on the SuperLink with ``flwr run``; returns its run id."""
    job = deployment_job(config, insecure)
    run_root = Path(run_dir).expanduser().resolve()
    run_cfg = job.get("run", {})
    if run_cfg.get("ledger"):  # the ServerApp runs elsewhere: no relative paths
        default = f"{run_cfg.get('root')}/{RUN_LEDGER_FILE}"  # run.ledger's default in conf/
        ledger = run_root / RUN_LEDGER_FILE if run_cfg["ledger"] == default else run_cfg["ledger"]
        run_cfg["ledger"] = str(Path(ledger).expanduser().resolve())
    app = (app_dir or default_app_dir()).resolve()
    with tempfile.TemporaryDirectory(prefix="confide-deploy-") as tmp:
        flwr_home = home or Path(tmp) / "flwr-home"
        env = flwr_env(flwr_home, superlink, root_certificates, insecure)
        run_config = Path(tmp) / "run-config.toml"
        run_config.write_text(
            tomli_w.dumps(
                {
                    "confide-job": json.dumps(job),
                    "confide-run-dir": str(run_root),
                    **identity_run_config(),  # nodes refuse a coordinator on other code
                }
            ),
            encoding="utf-8",
        )
        proc = subprocess.run(
            [
                _flwr(),
                "run",
                str(app),
                CONNECTION,
                "--run-config",
                str(run_config),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
    reply = _json_out(proc, "run")
    if proc.returncode != 0 or not reply.get("success"):
        detail = (reply.get("error-message") or proc.stderr.strip() or proc.stdout.strip())[-400:]
        raise DeployError(f"flwr run failed at {superlink}: {detail} (rule: deployment)")
    run_id = str(reply["run-id"])
    return DeployResult(run_id, run_root / run_id)


def _run_status(run_id: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [_flwr(), "ls", CONNECTION, "--run-id", run_id, "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    runs = _json_out(proc, "ls").get("runs") or []
    return str(runs[0].get("status", "unknown")) if runs else "unknown"


def wait_for_run(
    result: DeployResult,
    superlink: str,
    root_certificates: Path | None,
    insecure: bool,
    timeout_s: float = 3600.0,
    poll_s: float = 3.0,
    on_status: Callable[[str], None] | None = None,
) -> DeployResult:
    """Poll the SuperLink until the run finishes; read ``outcome.json`` when it is local."""
    deadline = time.monotonic() + timeout_s
    last = ""
    with tempfile.TemporaryDirectory(prefix="confide-deploy-") as tmp:
        env = flwr_env(Path(tmp), superlink, root_certificates, insecure)
        while True:
            status = _run_status(result.run_id, env)
            if status != last and on_status is not None:
                on_status(status)
            last = status
            if status.startswith("finished"):
                break
            if time.monotonic() > deadline:
                raise DeployError(
                    f"run {result.run_id} did not finish within {timeout_s:g} s (rule: deployment)"
                )
            time.sleep(poll_s)
    outcome_path = result.run_dir / "outcome.json"
    outcome = None
    if outcome_path.is_file():
        outcome = json.loads(outcome_path.read_text(encoding="utf-8"))
    return DeployResult(result.run_id, result.run_dir, last, outcome)
