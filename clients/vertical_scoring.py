"""Score new records with a vertical run's models: every party takes part (docs/vertical.md).

``confide score --run RUN --config-dir DIR federation=NAME --out scores.csv`` where NAME's nodes
point at new records (and at the folders that hold each node's models of RUN, beside its
budget ledger). Each step runs on the data of the node it belongs to, in the protocol's order:

1. PSI on the new records under a fresh per-scoring domain: the label node blinds its
   normalised join keys, each feature node re-blinds them and blinds its own in a secret
   random order, the label node matches (only it learns the alignment);
2. each feature node embeds the records at the positions the label node asks for with its
   stored bottom model (clean embeddings, as at test time; the scored positions are revealed
   to it, as the report of a vertical run says);
3. the label node applies its stored top model and writes, at the label node only, its
   pseudonymised join key (its policy's transform) and the probability per aligned record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from confide.clients.vertical_node import VerticalRefusal, model_path, node_arrays
from confide.clients.vertical_step import match_lookup, matched_everywhere
from confide.core.errors import ConfideError
from confide.core.files import atomic_writer
from confide.job import Job
from confide.modeling.model_io import load_model
from confide.modeling.vertical_linear import clip_rows
from confide.modeling.vertical_model import embed, load_top_model
from confide.privacy.psi import PsiParty, intersect

__all__ = ["VerticalScore", "VerticalScoringError", "score_vertical"]


class VerticalScoringError(ConfideError):
    """Scoring a vertical run's models is not possible (missing models, no overlap)."""


@dataclass(frozen=True)
class VerticalScore:
    """How many records the label node holds, how many were aligned and scored, and where."""

    label_records: int
    scored: int
    out: Path


def _secret_order(n: int) -> np.ndarray:
    return np.random.default_rng(int.from_bytes(os.urandom(32), "big")).permutation(n)


@torch.no_grad()
def _linear_logits(model: torch.nn.Module, x: np.ndarray, row_clip: float) -> np.ndarray:
    """A secure-linear feature node's logits: its linear model on rows clipped to the job's
    feature row clip, as in training."""
    rows = torch.from_numpy(np.ascontiguousarray(clip_rows(x, row_clip), dtype=np.float32))
    return model(rows).reshape(len(rows)).numpy().astype(np.float64)


def score_vertical(job: Job, run_id: str, out: Path) -> VerticalScore:
    """Score the label node's new records that every feature node also holds; write
    ``out`` (pseudonymised join key, probability) and return the counts."""
    spec = job.vertical
    if spec is None:
        raise VerticalScoringError("config federation: not a vertical federation (rule: score)")
    label = job.node(spec.label_node)
    paths = {"top": model_path(label, run_id, "top")}
    paths.update({f: model_path(job.node(f), run_id, "bottom") for f in spec.feature_nodes})
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise VerticalScoringError(
            f"run {run_id}: no stored model of node(s) {', '.join(missing)} beside their budget "
            "ledgers (rule: score needs every party's model)"
        )
    domain = f"{run_id}.score.{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    try:
        own = node_arrays(label, job, with_label=False)
        party = PsiParty(domain)
        m1 = party.blind(own.ids)
        matches: dict[str, np.ndarray] = {}  # per feature node: position of each row, or -1
        embeddings: dict[str, tuple[object, object]] = {}
        for f in spec.feature_nodes:
            # at the feature node: re-blind m1, blind its own keys in a secret order
            other = node_arrays(job.node(f), job)
            order = _secret_order(len(other.ids))
            theirs = PsiParty(domain)
            m2 = theirs.reblind(m1)
            m3 = theirs.blind([other.ids[r] for r in order])
            # at the label node: match
            rows, positions = intersect(m2, party.reblind(m3))
            matches[f] = match_lookup(rows, positions, len(own.ids))
            embeddings[f] = (other, order)
        rows_scored = matched_everywhere(matches.values())
        if len(rows_scored) == 0:
            raise VerticalScoringError(
                "the new records of the label node and the feature nodes have no join key in "
                "common (rule: VFL-NO-OVERLAP)"
            )
        clean = []
        for f in spec.feature_nodes:
            other, order = embeddings[f]
            asked = matches[f][rows_scored]
            bottom, _, payload = load_model(paths[f])
            extra = payload.get("extra") or {}  # what the feature node stored beside its weights
            records = other.x[order[asked]]
            if extra.get("protocol") == "secure_linear":  # its logit, from its DP weights
                clean.append(_linear_logits(bottom, records, float(extra["row_clip"])))
            else:
                clip = float(extra.get("embedding_clip", spec.embedding_clip))
                clean.append(embed(bottom, records, clip))  # at the feature node
        top, top_extra = load_top_model(paths["top"])
        x_own = own.x[rows_scored]
        if top_extra.get("protocol") == "secure_linear":
            x_own = clip_rows(x_own, float(top_extra["label_row_clip"]))
        prob = top.predict_proba(x_own, clean)
    except VerticalRefusal as exc:
        raise VerticalScoringError(str(exc)) from None
    if not np.isfinite(prob).all():
        raise VerticalScoringError(
            f"{paths['top']}: the top model gives a non-finite probability (rule: finite scores)"
        )
    key = own.pseudonyms[rows_scored] if own.pseudonyms is not None else rows_scored + 1
    frame = pd.DataFrame({spec.join_key: key, f"{job.task.name}_probability": prob})
    with atomic_writer(out, "w") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")
    return VerticalScore(len(own.ids), len(rows_scored), out)
