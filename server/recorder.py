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

from confide.privacy.ledger import atomic_write_text

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
        return self.rounds.setdefault(number, RoundRecord(number))

    def finish_round(self, number: int) -> None:
        now = time.perf_counter()
        self.rounds[number].wall_s = now - self._last_end
        self._last_end = now
        self.flush()
        if self.on_round_end is not None:
            self.on_round_end(self.rounds[number])

    def to_dict(self) -> dict[str, Any]:
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

    def flush(self) -> None:
        atomic_write_text(self.path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
