"""The secure-noise section and note print what the results hold, nothing measured elsewhere."""

from __future__ import annotations

from confide.benchmarks.__main__ import notes_for
from confide.benchmarks.report import _secure_noise


def _results(extra: float) -> dict:
    model = {
        "parameters": 44,
        "seconds_per_epoch_median": {"no_dp": 0.06, "seeded": 0.08, "secure": 0.08 * (1 + extra)},
        "secure_extra_share_of_dp_epoch": extra,
        "secure_extra_direct": 2 * extra,
        "steps_per_epoch_median": 63,
        "one_step_draw_s": {"seeded": 1e-5, "secure": 2.6e-5},
        "target_met": extra <= 0.10,
    }
    return {
        "repeats": 7,
        "target_extra": 0.10,
        "data": {"node": "retailer", "rows": 16000, "features": 43},
        "generator": {
            "normals_per_call": 1_000_000,
            "normals_per_s": {"seeded": 2.5e8, "secure": 3.3e6},
            "secure_over_seeded_time": 75.5,
        },
        "models": {"logreg": model},
    }


def test_the_note_and_table_follow_the_results():
    ok, missed = _results(0.031), _results(0.214)
    assert notes_for({"secure_noise": ok}) == [
        "- Secure noise, logreg: the AES-256-CTR source adds +3.1% to a DP epoch (per-step draw "
        "time x steps; epoch against epoch +6.2%) — target <= 10% met."
    ]
    note = notes_for({"secure_noise": missed})[0]
    assert "+21.4% to a DP epoch" in note and note.endswith("target <= 10% **not met**.")
    table = "\n".join(_secure_noise(ok))
    row = "| logreg | 44 | 63 | 0.060 | 0.080 | 0.082 | 10.0 | 26.0 | +3.1% | +6.2% | yes |"
    assert row in table
    assert "secure 3.3 M normals/s (75.5x the time" in table
