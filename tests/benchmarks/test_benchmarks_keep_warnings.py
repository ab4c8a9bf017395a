"""The benchmark runner never silences Opacus's warnings (DESIGN: never silence Opacus warnings):
a UserWarning raised while a benchmark section runs reaches the caller."""

from __future__ import annotations

import warnings

import pytest

from confide.benchmarks import __main__ as runner

OPACUS_NOTE = "Secure RNG turned off. This is perfectly fine for experimentation"


@pytest.fixture
def quiet_runner(tmp_path, monkeypatch):
    """The real ``main`` with one fake section that warns as Opacus does, writing under tmp."""

    def section(name, quick):
        warnings.warn_explicit(
            OPACUS_NOTE, UserWarning, "privacy_engine.py", 98, module="opacus.privacy_engine"
        )
        return {"section": name}

    monkeypatch.setattr(runner, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(runner, "_run_section", section)
    monkeypatch.setattr(
        runner, "machine_info", lambda: {"load_average_1m_at_start": None, "cores_available": None}
    )
    monkeypatch.setattr(runner, "render", lambda results, notes: "table\n")
    monkeypatch.setattr(runner, "notes_for", lambda results: [])
    return ["--quick", "--only", "dp", "--table", str(tmp_path / "table.md")]


def _caught(run) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run() == 0
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_an_opacus_warning_during_a_benchmark_reaches_the_caller(quiet_runner):
    assert _caught(lambda: runner.main(quiet_runner)) == [OPACUS_NOTE]


def test_control_a_blanket_user_warning_filter_would_hide_it(quiet_runner):
    """The check above can fail: the filter ``main`` used to install hides the warning."""

    def silenced():
        warnings.filterwarnings("ignore", category=UserWarning)
        return runner.main(quiet_runner)

    assert _caught(silenced) == []
