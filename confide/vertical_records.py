"""Flower records of a vertical step: a :class:`~confide.wire.VerticalRequest` or
:class:`~confide.wire.VerticalReply` to and from a Flower ``RecordDict`` (the ConfigRecord and the
ArrayRecord under :data:`~confide.wire.VERTICAL_KEY`). Both the node's ClientApp and the
coordinator use it, so the two ends spell the records the same way. Arrays are read with
Flower's ``Array.numpy`` (NumPy ``.npy`` without pickle) and then checked by the wire module."""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from confide.wire import STATUS_KEY, VERTICAL_KEY, VerticalReply, VerticalRequest, VerticalWireError

ARRAYS_KEY = f"{VERTICAL_KEY}.arrays"

__all__ = [
    "ARRAYS_KEY",
    "reply_from_records",
    "reply_records",
    "request_from_records",
    "request_records",
]


def _array_record(arrays: dict[str, Any]) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(a)) for name, a in arrays.items()})


def _arrays(
    content: RecordDict, what: str, allowed: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, Any]]:
    if VERTICAL_KEY not in content.config_records:
        raise VerticalWireError(f"{what}: no '{VERTICAL_KEY}' record (rule: wire)")
    if set(content) - {VERTICAL_KEY, ARRAYS_KEY, *allowed}:
        raise VerticalWireError(f"{what}: unexpected record in the message (rule: wire)")
    record = content.array_records.get(ARRAYS_KEY)
    arrays: dict[str, Any] = {}
    if record is not None:
        for name, array in record.items():
            try:
                arrays[name] = array.numpy()
            except (TypeError, ValueError, OSError):
                raise VerticalWireError(
                    f"{what}: an array is not a plain NumPy array (rule: wire)"
                ) from None
    return dict(content.config_records[VERTICAL_KEY]), arrays


def request_records(request: VerticalRequest) -> dict[str, Any]:
    """The records of a request (checked before it is sent)."""
    return {
        VERTICAL_KEY: ConfigRecord(request.to_config()),
        ARRAYS_KEY: _array_record(request.checked_arrays()),
    }


def request_from_records(content: RecordDict) -> VerticalRequest:
    """A received request, checked (:class:`VerticalWireError` on anything malformed)."""
    config, arrays = _arrays(content, "vertical message")
    return VerticalRequest.from_parts(config, arrays)


def reply_records(reply: VerticalReply) -> dict[str, Any]:
    """The records of a node's reply (checked before it is sent)."""
    return {
        VERTICAL_KEY: ConfigRecord(reply.to_config()),
        ARRAYS_KEY: _array_record(reply.arrays),
    }


def reply_from_records(content: RecordDict) -> VerticalReply:
    """A received reply, checked (:class:`VerticalWireError` on anything malformed)."""
    config, arrays = _arrays(content, "vertical reply", frozenset({STATUS_KEY}))
    return VerticalReply.from_parts(config, arrays)
