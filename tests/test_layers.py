"""The import-linter contracts in pyproject.toml hold, and each one catches a deliberate violation.

import-linter (grimp) reads a package from its folder, but Confide's sub-packages live in the
top-level folders the product card fixes (``privacy/`` is ``confide.privacy`` through
setuptools' ``package-dir``). So the check lays the mapping out as one ``confide/`` tree in a
temporary folder, exactly as pyproject.toml declares it, and runs ``lint-imports`` there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = {c["name"]: c["id"] for c in PYPROJECT["tool"]["importlinter"]["contracts"]}


def _source_dir(package: str) -> Path:
    """Where setuptools takes ``package`` from (longest ``package-dir`` prefix wins)."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in mapping:
            return ROOT / mapping[prefix] / Path(*parts[n:])
    return ROOT / Path(*parts)


def build_tree(dest: Path) -> Path:
    """Copy every declared package's modules into ``dest/confide/...``; returns ``dest``."""
    for package in PYPROJECT["tool"]["setuptools"]["packages"]:
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for module in _source_dir(package).glob("*.py"):
            shutil.copy2(module, target / module.name)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def lint(tree: Path) -> tuple[int, dict[str, str]]:
    """Run ``lint-imports`` on ``tree``; returns its exit status and {contract id: KEPT|BROKEN}."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "250", "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    status = {}
    for line in proc.stdout.splitlines():
        match = re.fullmatch(r"(.+) (KEPT|BROKEN)", line.strip())
        if match and match.group(1) in CONTRACTS:
            status[CONTRACTS[match.group(1)]] = match.group(2)
    assert set(status) == set(CONTRACTS.values()), proc.stdout + proc.stderr
    return proc.returncode, status


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory) -> Path:
    return build_tree(tmp_path_factory.mktemp("layers") / "tree")


def test_every_package_folder_is_declared():
    """A package folder missing from pyproject's list would silently escape the contracts."""
    declared = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for package in declared:
        for init in _source_dir(package).rglob("__init__.py"):
            rel = init.parent.relative_to(_source_dir(package))
            if "__pycache__" not in rel.parts:
                found.add(".".join([package, *rel.parts]))
    assert found <= declared, sorted(found - declared)


def test_the_tree_has_every_module(clean_tree):
    for package in PYPROJECT["tool"]["setuptools"]["packages"]:
        expected = sorted(p.name for p in _source_dir(package).glob("*.py"))
        copied = sorted(p.name for p in clean_tree.joinpath(*package.split(".")).glob("*.py"))
        assert copied == expected and expected, package


def test_layer_contracts_hold(clean_tree):
    code, status = lint(clean_tree)
    assert status == dict.fromkeys(CONTRACTS.values(), "KEPT")
    assert code == 0


# Each control writes one deliberate violation into a copy of the tree; exactly the contract
# that forbids it must break (and lint-imports must exit non-zero).
VIOLATIONS = {
    "layers": {"confide/conf/upward.py": "import confide.wire\n"},
    "layers (exhaustive)": {"confide/grab_bag.py": '"""A module assigned to no layer."""\n'},
    "sides": {"confide/clients/peek.py": "from confide.server import strategy\n"},
    "foundations": {"confide/privacy/ml.py": "from confide.modeling import errors\n"},
    "acyclic": {
        "confide/server/cycle_a.py": "from confide.server import cycle_b\n",
        "confide/server/cycle_b.py": "from confide.server import cycle_a\n",
    },
    "privacy-standalone": {"confide/privacy/heavy.py": "import torch\n"},
    "ml-without-flower": {"confide/modeling/fl.py": "import flwr\n"},
}


@pytest.mark.parametrize("violation", sorted(VIOLATIONS))
def test_control_a_deliberate_violation_breaks_its_contract(clean_tree, tmp_path, violation):
    tree = tmp_path / "tree"
    shutil.copytree(clean_tree, tree)
    for rel, text in VIOLATIONS[violation].items():
        (tree / rel).write_text(text, encoding="utf-8")
    code, status = lint(tree)
    contract = violation.split(" ")[0]
    expected = dict.fromkeys(CONTRACTS.values(), "KEPT") | {contract: "BROKEN"}
    assert status == expected
    assert code == 1


# --------------------------------------------------------------------- import-time side effects

_WARNING_FILTER_CALLS = {"filterwarnings", "simplefilter", "resetwarnings"}


def module_level_warning_filters(source: str) -> list[int]:
    """Line numbers of ``warnings.filterwarnings/simplefilter/resetwarnings`` calls that run when
    the module is imported (anywhere outside a function body)."""
    import ast

    found: list[int] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # runs when called, not when imported
            if isinstance(child, ast.Call):
                func = child.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in _WARNING_FILTER_CALLS:
                    found.append(child.lineno)
            visit(child)

    visit(ast.parse(source))
    return sorted(found)


def test_nothing_changes_warning_filters_at_import_time(clean_tree):
    offenders = {
        str(path.relative_to(clean_tree)): lines
        for path in sorted(clean_tree.joinpath("confide").rglob("*.py"))
        if (lines := module_level_warning_filters(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_control_the_warning_filter_scan_sees_module_level_calls_only():
    source = (
        "import warnings\n"
        "from warnings import simplefilter\n"
        "warnings.filterwarnings('ignore')\n"
        "if True:\n"
        "    simplefilter('ignore')\n"
        "class A:\n"
        "    warnings.resetwarnings()\n"
        "def f():\n"
        "    warnings.filterwarnings('ignore')\n"
        "g = lambda: warnings.simplefilter('ignore')\n"
    )
    assert module_level_warning_filters(source) == [3, 5, 7]
