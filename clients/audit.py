"""What left my node: an outgoing-message audit for partner organisations.

:func:`make_audit_mod` returns a ClientApp mod that writes the serialized bytes of every reply the
node sends (Flower's protobuf encoding of the message, after every other mod, so exactly what
goes on the wire, including SecAgg+ masking) to one file per message in a folder of the node's
choosing. In deployment a SuperNode turns it on with its own ``--node-config`` key
``audit-dir``; the server cannot. The folder then holds the evidence a compliance review asks
for: grep it for any raw value.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from flwr.app import Context, Message
from flwr.common.serde import message_to_proto

__all__ = ["AUDIT_DIR_KEY", "audit_mod", "make_audit_mod", "write_outgoing"]

AUDIT_DIR_KEY = "audit-dir"


def write_outgoing(folder: Path, reply: Message) -> Path:
    """Write ``reply``'s serialized bytes to a new file in ``folder`` (owner-only)."""
    folder.mkdir(parents=True, exist_ok=True)
    kind = str(reply.metadata.message_type).replace(".", "_") or "message"
    path = folder / f"{kind}-{uuid.uuid4().hex}.bin"
    data = message_to_proto(reply).SerializeToString()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def make_audit_mod(folder: str | Path | None = None):
    """A mod recording every outgoing reply in ``folder``, or, when ``folder`` is None, in the
    node config's ``audit-dir`` (no recording when that is unset)."""

    def mod(msg: Message, ctxt: Context, call_next) -> Message:
        reply = call_next(msg, ctxt)
        target = folder if folder is not None else ctxt.node_config.get(AUDIT_DIR_KEY)
        if target:
            write_outgoing(Path(str(target)).expanduser(), reply)
        return reply

    return mod


audit_mod = make_audit_mod()
