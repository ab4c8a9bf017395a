"""Per-round progress: plain lines in CI logs, a bar on a terminal, nothing when quiet."""

from __future__ import annotations

import io

from rich.console import Console

from confide.server.recorder import RoundRecord
from confide.summary import round_printer


def _record(number: int, auc: float) -> RoundRecord:
    return RoundRecord(
        number,
        train={"retailer": {"epsilon": 1.0 + number}, "ecommerce": {"epsilon": 1.5 + number}},
        global_metrics={"roc_auc": auc},
    )


def _run(console: Console) -> str:
    progress = round_printer(console, 3)
    progress(_record(1, 0.80))
    progress(_record(2, 0.81))
    return console.file.getvalue()


def test_plain_lines_when_not_a_terminal():
    out = _run(Console(file=io.StringIO(), width=110, force_terminal=False))
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("round 1/3  nodes trained 2  global AUC 0.8000")
    assert "largest ε 3.500 (ecommerce)" in lines[1] and "(+0.0100)" in lines[1]
    assert "\x1b[" not in out


def test_bar_on_a_terminal():
    out = _run(Console(file=io.StringIO(), width=140, force_terminal=True))
    assert "round 2/3" in out and "━" in out and "0.8100" in out


def test_quiet_prints_nothing():
    assert _run(Console(file=io.StringIO(), quiet=True)) == ""
