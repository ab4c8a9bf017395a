"""Score new records at a node with a trained run's model, through the same policy and
encoding as training. Writes the (policy-transformed) id column and a probability per row; for a
survival task, the churn probability within each horizon and the predicted median retention
(the first interval edge where survival falls to 1/2, or "beyond <last horizon>")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from confide.clients.node_data import prepare_frame
from confide.core.errors import ConfideError
from confide.core.files import atomic_writer
from confide.modeling.encoding import encode_features
from confide.modeling.model_io import load_model
from confide.modeling.prediction import predict_proba
from confide.modeling.survival_model import median_retention, survival_curves
from confide.modeling.survival_spec import SurvivalTaskSpec
from confide.privacy import Keyring, load_policy

__all__ = ["ScoringError", "score_file"]


class ScoringError(ConfideError):
    """Scoring would write a probability that is not a finite number."""


def _survival_columns(model, x: np.ndarray, task: SurvivalTaskSpec) -> dict[str, np.ndarray]:
    """Churn probability within each horizon and the median retention period per row."""
    curves = survival_curves(model, x)
    out = {f"churn_within_{h:g}": 1.0 - curves[:, task.horizon_index(h)] for h in task.horizons}
    median = median_retention(curves, task)
    beyond = f"beyond {task.horizons[-1]:g}"
    out["median_retention"] = np.where(
        np.isnan(median), beyond, np.char.mod("%g", np.nan_to_num(median))
    ).astype(object)
    return out


def score_file(
    run_dir: Path, data: Path, policy_path: Path, out: Path, keys: Path | None = None
) -> int:
    """Score ``data`` and write ``out`` atomically; returns the number of rows scored."""
    model, task, _ = load_model(run_dir / "model.pt")
    policy = load_policy(policy_path)
    keyring = Keyring.load(keys) if keys is not None else None
    prepared = prepare_frame(data, policy, task, keyring, with_label=False)
    x = encode_features(prepared.frame, task, str(data))
    if isinstance(task, SurvivalTaskSpec):
        columns = _survival_columns(model, x, task)
        prob = np.column_stack([v for v in columns.values() if v.dtype.kind == "f"])
    else:
        prob = predict_proba(model, x)
        columns = {f"{task.name}_probability": prob}
    if not np.isfinite(prob).all():
        raise ScoringError(
            f"{run_dir / 'model.pt'}: the model gives a non-finite probability for "
            f"{int((~np.isfinite(prob)).sum())} rows of {data} (rule: finite scores)"
        )
    id_name = prepared.ids.name if prepared.ids is not None else "row"
    ids = prepared.ids if prepared.ids is not None else pd.Series(range(1, len(prob) + 1))
    frame = pd.DataFrame({id_name: ids.to_numpy(), **columns})
    with atomic_writer(out, "w") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")
    return len(frame)
