"""The sweep draws its privacy-utility plot with the reports' plot (one plot, not two)."""

from __future__ import annotations

import inspect

from confide.reports.plots import privacy_utility_png
from confide.simulations import sweep


def _record(eps: float | None, auc: float, partition: str = "iid") -> dict:
    return {
        "status": "completed",
        "label": f"eps={eps}",
        "axes": {"dp.epsilon": eps, "partition": partition},
        "dp_enabled": eps is not None,
        "epsilon_target": eps,
        "global": {"roc_auc": auc},
        "baselines": {"centralised": 0.86, "centralised_dp": auc - 0.01, "local_only:shop": 0.7},
    }


def test_sweep_plot_is_the_reports_privacy_utility_plot(tmp_path):
    records = [_record(1.0, 0.80), _record(3.0, 0.84), _record(None, 0.85)]
    records.append({"status": "failed", "axes": {}, "global": None})
    out = sweep.plot_privacy_utility(records, tmp_path / "privacy_utility.png")
    expected = privacy_utility_png(
        [
            {
                "label": f"eps={eps}",
                "epsilon": eps,
                "global": auc,
                "centralised": 0.86,
                "centralised_dp": auc - 0.01,
                "local_only": {"shop": 0.7},
                "series": "partition=iid",
            }
            for eps, auc in ((1.0, 0.80), (3.0, 0.84), (None, 0.85))
        ]
    )
    assert out == tmp_path / "privacy_utility.png"
    assert out.read_bytes() == expected
    assert "matplotlib" not in inspect.getsource(sweep)


def test_one_curve_per_series_and_none_without_completed_points(tmp_path):
    a1 = {"epsilon": 1.0, "global": 0.8, "series": "partition=iid"}
    a3 = {"epsilon": 3.0, "global": 0.84, "series": "partition=iid"}
    b1 = {"epsilon": 1.0, "global": 0.7, "series": "partition=dirichlet"}
    b3 = {"epsilon": 3.0, "global": 0.75, "series": "partition=dirichlet"}
    two_curves = privacy_utility_png([a1, a3, b1, b3])
    one_curve = privacy_utility_png(
        [a1, a3, {**b1, "series": a1["series"]}, {**b3, "series": a1["series"]}]
    )
    assert two_curves != one_curve  # control: the same points as one series draw differently
    assert sweep.plot_privacy_utility([{"status": "failed"}], tmp_path / "p.png") is None
    assert not (tmp_path / "p.png").exists()
