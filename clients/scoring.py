"""Score new records at a node with a trained run's model, through the same policy and
encoding as training. Writes the (policy-transformed) id column and a probability per row."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from confide.clients.node_data import prepare_frame
from confide.modeling.dp_training import predict_proba
from confide.modeling.encoding import encode_features
from confide.modeling.model_io import load_model
from confide.privacy import Keyring, load_policy

__all__ = ["score_file"]


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
    id_name = prepared.ids.name if prepared.ids is not None else "row"
    ids = prepared.ids if prepared.ids is not None else pd.Series(range(1, len(prob) + 1))
    frame = pd.DataFrame({id_name: ids.to_numpy(), f"{task.name}_probability": prob})
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False, lineterminator="\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(frame)
