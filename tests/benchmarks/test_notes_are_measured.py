"""Every ratio the benchmark notes print comes from the results being rendered: no sentence
carries numbers measured once, elsewhere, that would be repeated into every BENCHMARKS.md."""

from __future__ import annotations

import re

from confide.benchmarks.__main__ import notes_for

_RATIO = re.compile(r"\d+(?:\.\d+)?x")


def _dp_results(ratio: float) -> dict:
    by_part = {"optimizer step": 0.02, "backward": 0.004}
    plain = {"optimizer step": 0.001, "backward": 0.002}
    model = {
        "fastest_opacus_mode": "ew",
        "configured_ratio": ratio,
        "configured_cpu_ratio": ratio,
        "ratio_to_no_dp": {"closed_form": ratio, "opacus_ew": ratio},
        "target_met": False,
        "profile": {"dp_closed_form": {"by_part": by_part}, "no_dp": {"by_part": plain}},
    }
    return {"dp_overhead": {"target_ratio": 1.5, "models": {"logreg": model, "mlp": model}}}


def test_dp_notes_print_only_the_ratios_of_the_results_they_render():
    notes = "\n".join(notes_for(_dp_results(1.97)))
    assert "1.97x" in notes  # the control: the measured ratio is rendered
    assert sorted(set(_RATIO.findall(notes))) == ["1.5x", "1.97x"]


def test_dp_notes_change_with_the_results():
    assert notes_for(_dp_results(1.97)) != notes_for(_dp_results(3.33))
    assert "3.33x" in "\n".join(notes_for(_dp_results(3.33)))
