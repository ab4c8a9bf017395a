"""A run's job as the simulation's ClientApp carries it to the engine's workers.

Flower's Ray backend pickles the ClientApp, and so the node resolver and what it holds, into
every message it dispatches to a worker. Holding the job itself made every message carry the
whole federation (O(nodes) bytes per message, O(nodes^2) per round); a :class:`JobHandle`
pickles as a reference into Ray's object store instead.
"""

from __future__ import annotations

import threading
from typing import Any

from confide.job import Job

__all__ = ["JobHandle"]

_WORKER_JOBS: dict[str, Job] = {}


class JobHandle:
    """A run's job as the simulation's ClientApp carries it.

    Flower pickles the ClientApp, and so the node resolver, into every message it dispatches to
    an engine worker. Pickled, a handle is only a reference to the job in Ray's object store (put
    there once, when the engine runs); unpickled in a worker, it
    takes the job from the store once per process. An object in the store never changes, so its
    id is a complete cache key; a worker keeps the job of one run only.
    """

    def __init__(self, job: Job, ref: Any = None) -> None:
        self.job = job
        self._ref = ref
        self._lock = threading.Lock()

    def publish(self) -> None:
        """Put the job in the object store now if Ray is running (else on the first dispatch),
        so the first dispatch does not serialise the job inside the message's serialisation."""
        import ray

        if ray.is_initialized():
            self._put()

    def _put(self) -> Any:
        with self._lock:
            if self._ref is None:
                import ray

                self._ref = ray.put(self.job)
            return self._ref

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _handle_in_worker, (self._put(),)


def _handle_in_worker(ref: Any) -> JobHandle:
    key = ref.hex()
    if key not in _WORKER_JOBS:
        import ray

        job = ray.get(ref)
        _WORKER_JOBS.clear()
        _WORKER_JOBS[key] = job
    return JobHandle(_WORKER_JOBS[key], ref)
