"""Score new records at a node with a trained run's model, through the same policy and
encoding as training. Writes the (policy-transformed) id column and a probability per row."""

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
from confide.privacy import Keyring, load_policy

__all__ = ["ScoringError", "score_file"]


class ScoringError(ConfideError):
    """Scoring would write a probability that is not a finite number."""


def score_file(
    run_dir: Path, data: Path, policy_path: Path, out: Path, keys: Path | None = None
) -> int:
    """Score ``data`` and write ``out`` atomically; returns the number of rows scored."""
    model, task, _ = load_model(run_dir / "model.pt")
    policy = load_policy(policy_path)
    keyring = Keyring.load(keys) if keys is not None else None
    prepared = prepare_frame(data, policy, task, keyring, with_label=False)
    x = encode_features(prepared.frame, task, str(data))
    prob = predict_proba(model, x)
    if not np.isfinite(prob).all():
        raise ScoringError(
            f"{run_dir / 'model.pt'}: the model gives a non-finite probability for "
            f"{int((~np.isfinite(prob)).sum())} rows of {data} (rule: finite scores)"
        )
    id_name = prepared.ids.name if prepared.ids is not None else "row"
    ids = prepared.ids if prepared.ids is not None else pd.Series(range(1, len(prob) + 1))
    frame = pd.DataFrame({id_name: ids.to_numpy(), f"{task.name}_probability": prob})
    with atomic_writer(out, "w") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")
    return len(frame)
