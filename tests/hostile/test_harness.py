"""Controls for the corpus harness: each property it checks is shown to fail on an output that
breaks it (a traceback, a raw value, two lines, exit 0, a written file, a slow run)."""

from __future__ import annotations

import sys

from tests.hostile.harness import Result, check_refusal, run_confide, snapshot

MARKER = "Zq7xHostileMarker"
CLEAN = "error: /w/customers.csv: column 'age' has non-numeric values (rule: numeric feature)\n"


def _result(stderr: str = CLEAN, rc: int = 2, stdout: str = "", cpu: float = 1.0) -> Result:
    return Result(("x",), rc, stdout, stderr, 1.0, cpu, False)


def _check(result: Result, before=None, after=None) -> list[str]:
    return check_refusal(
        result,
        expect=("customers.csv", "'age'", "rule"),
        marker=MARKER,
        before=before or {},
        after=after or {},
    )


def test_a_clean_refusal_passes():
    assert _check(_result()) == []


def test_a_traceback_is_detected():
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: x\n'
    problems = _check(_result(stderr=trace + CLEAN))
    assert "a traceback was printed" in problems
    assert "4 lines on stderr, expected exactly one error line" in problems


def test_a_raw_value_is_detected_in_either_stream():
    leaked = CLEAN.replace("non-numeric values", f"non-numeric value '{MARKER}'")
    assert _check(_result(stderr=leaked)) == ["the raw value (marker) appears in the output"]
    assert _check(_result(stdout=f"row: {MARKER}\n")) == [
        "the raw value (marker) appears in the output"
    ]


def test_exit_zero_a_missing_rule_and_a_missing_field_are_detected():
    assert _check(_result(rc=0)) == ["exit status 0"]
    vague = "error: something went wrong\n"
    problems = _check(_result(stderr=vague))
    assert problems == [
        "the error line does not name ['customers.csv', \"'age'\", 'rule']",
        "the error line names no rule",
    ]


def test_a_written_file_and_a_slow_run_are_detected():
    problems = _check(_result(cpu=12.0), before={"a": (0, b"1")}, after={"a": (0, b"2")})
    assert problems == [
        "files changed: added [], changed ['a'], removed []",
        "used 12.0 CPU s (limit 10)",
    ]


def test_the_runner_measures_a_real_child_and_snapshot_sees_new_files(tmp_path):
    before = snapshot(tmp_path)
    result = run_confide(["--help"], cwd=tmp_path)
    assert result.returncode == 0 and "simulate" in result.stdout
    assert result.cpu_s > 0 and sys.executable
    (tmp_path / "new").write_text("x")
    assert snapshot(tmp_path) != before


def test_a_line_that_is_not_an_error_line_is_detected():
    plain = CLEAN.removeprefix("error: ")
    assert _check(_result(stderr=plain)) == [
        "the stderr line is not an error line ('error: ' or 'FAILED: ')"
    ]
    assert _check(_result(stderr="FAILED: " + plain)) == []
