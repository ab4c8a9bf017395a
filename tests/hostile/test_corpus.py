"""The hostile-input corpus (tests/hostile/cases.py) against the real `confide` command line.

Every case runs ``python -m confide ...`` on a fresh copy of a small valid workspace with one
hostile file planted, and must be a clean refusal (tests/hostile/harness.py): exit status not
0, one ``error:`` line naming file, field and rule, no traceback, no raw value, nothing written,
within the time budget. Cases run concurrently (one per CPU) so the corpus stays quick; each
case's CPU time is measured on its own process.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.hostile.cases import CASES, MARKER, Case, build_base, command, copy_workspace
from tests.hostile.harness import check_refusal, run_confide, snapshot


def _run_case(case: Case, base: Path, root: Path) -> tuple[list[str], str]:
    ws = copy_workspace(base, root / case.id)
    case.plant(ws)
    before = snapshot(ws)
    args = command(case.command, ws)
    result = run_confide(args, cwd=ws)
    after = snapshot(ws)
    problems = check_refusal(
        result,
        expect=tuple(case.expect),
        marker=MARKER if case.marker else None,
        before=before,
        after=after,
    )
    shown = (result.stderr.strip().splitlines() or [""])[-1][:400]
    summary = f"rc={result.returncode} cpu={result.cpu_s:.1f}s wall={result.wall_s:.1f}s: {shown}"
    return problems, summary


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, tuple[list[str], str]]:
    selected = {  # only the cases this session selected (-k, node ids) are run
        item.callspec.params["case_id"]
        for item in request.session.items
        if item.originalname == "test_hostile_input_is_refused_cleanly"
    }
    base = build_base(tmp_path_factory.mktemp("hostile-base"))
    root = tmp_path_factory.mktemp("hostile-cases")
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        futures = {c.id: pool.submit(_run_case, c, base, root) for c in CASES if c.id in selected}
        return {name: future.result() for name, future in futures.items()}


def test_the_corpus_covers_every_kind_of_hostile_file():
    kinds = {c.kind for c in CASES}
    assert kinds == {"csv", "policy", "task", "keys", "ledger", "model"}
    assert len({c.id for c in CASES}) == len(CASES)
    assert 25 <= len(CASES) <= 40


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_hostile_input_is_refused_cleanly(outcomes, case_id):
    problems, summary = outcomes[case_id]
    assert problems == [], f"{case_id}: {summary}"
