"""Per-round history of a run (metrics per node and global, epsilon per node), kept on disk.

The history file is rewritten atomically after every round, so an interrupted run still leaves
a consistent record of the rounds it completed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confide.core.files import atomic_write_text

__all__ = ["RoundRecord", "RunRecorder"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass
class RoundRecord:
    """What happened in one round."""

    round: int
    train: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluate: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    global_metrics: dict[str, float] = field(default_factory=dict)
    wall_s: float | None = None  # seconds from the previous round's end (or the start) to its end
    # The nodes' evaluation score histograms summed (positives, negatives); kept in memory for
    # the run's curves, never written to history.json.
    histogram: tuple[list[float], list[float]] | None = None

    def add_histogram(self, pos: list[float], neg: list[float]) -> None:
        """Add one node's evaluation score histograms to the round's pooled histogram."""
        if self.histogram is None:
            self.histogram = ([float(v) for v in pos], [float(v) for v in neg])
            return
        if len(pos) != len(self.histogram[0]) or len(neg) != len(self.histogram[1]):
            raise ValueError("score histograms of different bin counts cannot be pooled")
        self.histogram = (
            [a + float(b) for a, b in zip(self.histogram[0], pos, strict=True)],
            [a + float(b) for a, b in zip(self.histogram[1], neg, strict=True)],
        )


class RunRecorder:
    """Collects round records and writes ``history.json`` after each round."""

    def __init__(
        self, path: Path, on_round_end: Callable[[RoundRecord], None] | None = None
    ) -> None:
        self.path = path
        self.rounds: dict[int, RoundRecord] = {}
        self.on_round_end = on_round_end
        self._last_end = time.perf_counter()

    def round(self, number: int) -> RoundRecord:
        """The record of round ``number`` (created on first use)."""
        return self.rounds.setdefault(number, RoundRecord(number))

    def finish_round(self, number: int) -> None:
        """Close round ``number``: time it, rewrite history.json, call the round hook."""
        now = time.perf_counter()
        self.rounds[number].wall_s = now - self._last_end
        self._last_end = now
        self.flush()
        if self.on_round_end is not None:
            self.on_round_end(self.rounds[number])

    def to_dict(self) -> dict[str, Any]:
        """The history as written to history.json (non-finite floats as null)."""
        return {
            "rounds": [
                _clean(
                    {
                        "round": r.round,
                        "train": r.train,
                        "evaluate": r.evaluate,
                        "refused": r.refused,
                        "failed": r.failed,
                        "global": r.global_metrics,
                        "wall_s": r.wall_s,
                    }
                )
                for _, r in sorted(self.rounds.items())
            ]
        }

    def last_histogram(self) -> tuple[list[float], list[float]] | None:
        """The last recorded round's pooled evaluation histograms, if the nodes sent any."""
        if not self.rounds:
            return None
        return self.rounds[max(self.rounds)].histogram

    def flush(self) -> None:
        """Write history.json atomically."""
        atomic_write_text(self.path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
