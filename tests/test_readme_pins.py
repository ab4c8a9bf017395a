"""The README's compliance-review walkthroughs are the review's real output: config hash, finding
counts, every finding row. A change to the configs, the rules or the renderer that moves any of
them fails here until the README shows the new output."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from confide.cli import app

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(
    r"<details><summary>full output</summary>\n\n```markdown\n(?P<body>.*?)```\n\n</details>", re.S
)
COMMAND = re.compile(r"^- command: `confide (?P<args>[^`]*)`$", re.M)
HEADLINE = re.compile(
    r"^\*\*(?P<verdict>PASS|FAIL): (?P<errors>\d+) error\(s\), (?P<warnings>\d+) warning\(s\), "
    r"(?P<info>\d+) info \(exit code (?P<code>\d)\)\*\*$",
    re.M,
)
HASH = re.compile(r"^- config sha256: `(?P<sha>[0-9a-f]{64})`", re.M)


def _walkthroughs() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("**Walkthrough 1:")
    return [m.group("body") for m in BLOCK.finditer(text, start)][:2]


def test_the_readme_has_both_walkthroughs_with_hash_and_counts():
    blocks = _walkthroughs()
    assert len(blocks) == 2
    commands = [COMMAND.search(b).group("args") for b in blocks]
    assert commands == [
        "audit",
        "audit --config-dir examples/compliance_review/conf experiment=bad_review",
    ]
    heads = [HEADLINE.search(b).groupdict() for b in blocks]
    assert [h["verdict"] for h in heads] == ["PASS", "FAIL"]
    assert all(HASH.search(b) for b in blocks)


@pytest.mark.parametrize("index", [0, 1], ids=["default", "bad_review"])
def test_walkthrough_output_is_what_the_review_prints_now(index, monkeypatch):
    block = _walkthroughs()[index]
    args = shlex.split(COMMAND.search(block).group("args"))
    monkeypatch.chdir(ROOT)  # the review prints paths relative to where it runs
    monkeypatch.setenv("CI", "true")
    result = CliRunner().invoke(app, args)
    printed = result.output
    head = HEADLINE.search(block)
    assert result.exit_code == int(head.group("code"))
    now = HEADLINE.search(printed)
    assert now is not None, printed[:500]
    assert now.groupdict() == head.groupdict()  # error, warning and info counts
    assert HASH.search(printed).group("sha") == HASH.search(block).group("sha")
    rows = [line for line in block.splitlines() if line.startswith(("| ERROR", "| WARN"))]
    assert rows == [line for line in printed.splitlines() if line.startswith(("| ERROR", "| WARN"))]
    assert printed == block  # and every other line of the walkthrough
