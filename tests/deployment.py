"""A local multi-organisation federation as real processes on 127.0.0.1, for the e2e tests.

A SuperLink with TLS (trial CA from ``confide certs``) and one SuperNode per organisation, each
with its own ``FLWR_HOME`` and log file. Every process is started in its own session and stopped
with its whole tree (the SuperExec and ClientApp processes Flower spawns included).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from confide.certs import TrialCertificates, init_certificates
from confide.deploy import CONNECTION, flwr_env

__all__ = ["LocalFederation", "free_port"]

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def _kill_tree(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Kill ``proc``, its process group and every descendant (Flower detaches some)."""
    tree = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@dataclass
class LocalFederation:
    """SuperLink + SuperNodes under ``root``; call :meth:`stop_all` (fixture finalizer)."""

    root: Path
    certs: TrialCertificates | None = None
    port: int = 0
    auth: bool = False  # SuperNode authentication: only registered node keys may connect
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.certs is None:
            self.certs = init_certificates(self.root / "certs")
        self.port = self.port or free_port()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env["FLWR_HOME"] = str(self.root / "flwr-home" / name)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        env["OMP_NUM_THREADS"] = "1"
        return env

    def _start(self, name: str, argv: list[str], ready: str, timeout: float = 60.0) -> None:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as handle:
            proc = subprocess.Popen(
                argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(name),
                cwd=self.root,
                start_new_session=True,
            )
        self.procs[name], self.logs[name] = proc, log
        deadline = time.monotonic() + timeout
        while ready not in log.read_text(encoding="utf-8", errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"{name} did not start:\n{text}")
            time.sleep(0.3)

    def start_superlink(self) -> None:
        """``flower-superlink`` with TLS (no --insecure) on 127.0.0.1; with ``auth``, SuperNode
        authentication is on."""
        assert self.certs is not None
        self._start(
            "superlink",
            [
                str(BIN / "flower-superlink"),
                "--ssl-ca-certfile",
                str(self.certs.ca_cert),
                "--ssl-certfile",
                str(self.certs.server_cert),
                "--ssl-keyfile",
                str(self.certs.server_key),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--disable-runtime-dependency-installation",
                *(["--enable-supernode-auth"] if self.auth else []),
            ],
            ready="Uvicorn running on https://",
        )

    def start_supernode(
        self,
        name: str,
        node_config: dict[str, object],
        auth_key: Path | None = None,
        ready: str = "SuperNode ID",
        timeout: float = 60.0,
    ) -> None:
        """``flower-supernode`` for organisation ``name`` with its ``--node-config``; with
        ``auth_key``, it authenticates with that private key (``confide certs`` writes
        ``<node>_auth``)."""
        assert self.certs is not None
        config = " ".join(
            f"{k}={v}" if isinstance(v, int | float) and not isinstance(v, bool) else f'{k}="{v}"'
            for k, v in {"name": name, **node_config}.items()
        )
        self._start(
            name,
            [
                str(BIN / "flower-supernode"),
                "--superlink",
                self.address,
                "--root-certificates",
                str(self.certs.ca_cert),
                "--port",
                str(free_port()),
                "--node-config",
                config,
                *(["--auth-supernode-private-key", str(auth_key)] if auth_key else []),
            ],
            ready=ready,
            timeout=timeout,
        )

    def flwr(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``flwr`` CLI against this SuperLink (TLS, trial CA) with a private
        ``FLWR_HOME``; e.g. ``flwr("supernode", "register", key)``."""
        assert self.certs is not None
        env = flwr_env(self.root / "flwr-home" / "cli", self.address, self.certs.ca_cert, False)
        return subprocess.run(
            [str(BIN / "flwr"), *args, CONNECTION],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def log(self, name: str) -> str:
        """Everything process ``name`` has logged so far."""
        return self.logs[name].read_text(encoding="utf-8", errors="replace")

    def stop(self, name: str) -> None:
        """Kill one process and its tree (a node dropping out)."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            _kill_tree(proc)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
