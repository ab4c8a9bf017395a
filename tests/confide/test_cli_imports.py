"""A fast CLI: ``confide --help`` and every privacy, keys, audit, rules, ledger and certs command
run without importing torch, Opacus, Flower or Ray (checked in a fresh interpreter's
``sys.modules``), both for ``--help`` and for real, cheap invocations. ``--help`` (the root's and
every group's) does not import pandas either: the privacy package's exports are lazy and the
privacy commands import their workers when they run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "opacus", "flwr", "ray")
SLOW = ("pandas",)  # not heavy for a command that reads data, but never needed for --help
POLICY = ROOT / "simulations" / "policies" / "synthetic_customers.yaml"
FAST_GROUPS = ("privacy", "keys", "ledger", "certs")
FAST_COMMANDS = ("audit", "rules")

# Runs the console entry point with argv, then prints which heavy packages were imported.
_HARNESS = f"""
import atexit, json, sys
preload = sys.argv[1]
sys.argv = ["confide", *sys.argv[2:]]
atexit.register(lambda: print("HEAVY=" + json.dumps(
    sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr))
atexit.register(lambda: print("SLOW=" + json.dumps(
    sorted(m for m in {SLOW!r} if m in sys.modules)), file=sys.stderr))
if preload:
    __import__(preload)
from confide.cli import main
main()
"""


def slow_modules(proc: subprocess.CompletedProcess) -> list[str]:
    """The slow-to-import packages (pandas) a :func:`run_cli` process had imported at exit."""
    marker = [line for line in proc.stderr.splitlines() if line.startswith("SLOW=")]
    assert len(marker) == 1, proc.stderr[-2000:]
    return json.loads(marker[0].removeprefix("SLOW="))


def run_cli(
    args: list[str], cwd: Path, preload: str = ""
) -> tuple[int, list[str], subprocess.CompletedProcess]:
    """Run ``confide ARGS`` in a fresh interpreter; returns (status, heavy modules, process)."""
    proc = subprocess.run(
        [sys.executable, "-c", _HARNESS, preload, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    marker = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY=")]
    assert len(marker) == 1, proc.stderr[-2000:]
    return proc.returncode, json.loads(marker[0].removeprefix("HEAVY=")), proc


def _help_invocations() -> list[list[str]]:
    import typer

    from confide.cli import app

    root = typer.main.get_command(app)
    out = [["--help"], *([c, "--help"] for c in FAST_COMMANDS)]
    for group in FAST_GROUPS:
        out.append([group, "--help"])
        out += [[group, sub, "--help"] for sub in sorted(root.commands[group].commands)]
    return out


HELP = _help_invocations()


#: Every subcommand of the fast groups, by name: a new command must be added here (and so to
#: the help checks), never absorbed by loosening a count.
FAST_SUBCOMMANDS = {
    "privacy": ["apply", "check-policy", "decrypt", "rotate", "scan"],
    "keys": ["new", "rotate"],
    "ledger": ["migrate-key", "repair", "show", "verify"],
    "certs": ["init", "node"],
}


def test_the_fast_commands_are_all_covered():
    import typer

    from confide.cli import app

    root = typer.main.get_command(app)
    assert {g: sorted(root.commands[g].commands) for g in FAST_GROUPS} == FAST_SUBCOMMANDS
    expected = [
        ["--help"],
        *([c, "--help"] for c in FAST_COMMANDS),
        *(
            inv
            for g in FAST_GROUPS
            for inv in ([g, "--help"], *([g, s, "--help"] for s in FAST_SUBCOMMANDS[g]))
        ),
    ]
    assert expected == HELP


@pytest.mark.parametrize("args", HELP, ids=[" ".join(h) for h in HELP])
def test_help_imports_no_ml_or_federation_stack(tmp_path, args):
    code, heavy, proc = run_cli(args, tmp_path)
    assert code == 0, proc.stderr[-2000:]
    assert "Usage: confide" in proc.stdout
    assert heavy == []
    assert slow_modules(proc) == []


def _csv(path: Path) -> Path:
    path.write_text(
        "customer_id,age,province,churned\nC1,34,北京,0\nC2,51,上海,1\nC3,29,广东,0\n",
        encoding="utf-8",
    )
    return path


def test_real_invocations_import_no_ml_or_federation_stack(tmp_path):
    ledger = tmp_path / "run.ledger"
    cases = [
        (["keys", "new", str(tmp_path / "keys.json")], 0),
        (["keys", "rotate", str(tmp_path / "keys.json")], 0),
        (["rules"], 0),
        (["rules", "--out", str(tmp_path / "rules.md")], 0),
        (["privacy", "check-policy", str(POLICY)], 0),
        (["privacy", "scan", str(_csv(tmp_path / "d.csv")), "--json"], 0),
        (["audit", "--format", "json", "--out", str(tmp_path / "audit.json")], None),
        (["ledger", "show", "--ledger", str(ledger)], None),
        (["ledger", "verify", "--ledger", str(ledger)], None),
        (["ledger", "repair", "--ledger", str(ledger)], None),
        (["ledger", "migrate-key", "--ledger", str(ledger)], None),
        (["certs", "init", "--out-dir", str(tmp_path / "certs"), "--node", "bank"], 0),
    ]
    for args, expected in cases:
        code, heavy, proc = run_cli(args, tmp_path)
        assert "Traceback" not in proc.stderr, (args, proc.stderr[-2000:])
        if expected is not None:
            assert code == expected, (args, proc.stderr[-2000:])
        else:  # the review may exit 1 on findings; an empty ledger is an error (2)
            assert code in (0, 1, 2), (args, code)
        assert heavy == [], (args, heavy)
    assert (tmp_path / "keys.json").is_file() and (tmp_path / "rules.md").is_file()
    assert json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))
    assert (tmp_path / "certs").is_dir()


def test_control_the_harness_sees_a_heavy_import(tmp_path):
    """The same harness reports torch and Opacus when something on the path imports them."""
    code, heavy, _ = run_cli(["--help"], tmp_path, preload="confide.modeling.local_training")
    assert code == 0
    assert heavy == ["opacus", "torch"]


def test_control_the_harness_sees_pandas(tmp_path):
    """The pandas check can fail: a privacy transform module on the path imports it."""
    code, heavy, proc = run_cli(["--help"], tmp_path, preload="confide.privacy.apply")
    assert code == 0 and heavy == []
    assert slow_modules(proc) == ["pandas"]


def test_lazy_privacy_exports_resolve_to_their_modules():
    """``from confide.privacy import X`` still works for every name in ``__all__``."""
    import importlib

    import confide.privacy as privacy

    for name in privacy.__all__:
        value = getattr(privacy, name)
        module = importlib.import_module(f"confide.privacy.{privacy._EXPORTS[name]}")
        assert value is getattr(module, name), name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        privacy.nope  # noqa: B018
    assert sorted(privacy.__all__) == sorted(privacy._EXPORTS)


def test_the_cli_chunk_default_is_the_transforms_default():
    """The CLI repeats the default so ``--help`` needs no pandas; it must not drift."""
    from confide import privacy_cli
    from confide.privacy.apply import DEFAULT_CHUNKSIZE

    assert privacy_cli.DEFAULT_CHUNKSIZE == DEFAULT_CHUNKSIZE == 100_000
