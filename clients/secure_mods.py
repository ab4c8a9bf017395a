"""Node-side mods for the ``secure`` options: SecAgg+ and client-level DP clipping.

:func:`secure_mod` sits in every Confide ClientApp and is a pass-through unless a message asks
for one of the options:

* a SecAgg+ message (it carries Flower's ``secaggplus_configs`` record) goes through Flower's
  ``secaggplus_mod``; when its stage needs the model, :func:`legacy_fit_adapter` turns the
  legacy ``FitIns`` into the ClientApp's usual train message and its reply back into a
  ``FitRes`` (a refusal becomes a zero-weight update whose reason rides in ``fitres.metrics``).
  With client-level DP on, Flower's legacy ``fixedclipping_mod`` clips the update first.
* a Message-API train message with ``clipping_norm`` in its config (Flower's
  ``DifferentialPrivacyClientSideFixedClipping``) goes through Flower's ``fixedclipping_mod``;
  a refusal (no weights) passes back unchanged, with its reason.
"""

from __future__ import annotations

import json

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.client.mod import fixedclipping_mod as legacy_fixedclipping_mod
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.mod import fixedclipping_mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from confide.wire import ARRAY_KEYS_KEY, STATUS_FAILED, STATUS_KEY, STATUS_OK

__all__ = ["legacy_fit_adapter", "secure_mod"]


def _scalar(value):
    if isinstance(value, bool | int | float | str | bytes):
        return value
    return None


def legacy_fit_adapter(msg: Message, ctxt: Context, call_next) -> Message:
    """Legacy ``FitIns`` in, legacy ``FitRes`` out, the ClientApp's own train handler between."""
    fit_ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    received = parameters_to_ndarrays(fit_ins.parameters)
    config = dict(fit_ins.config)
    keys = json.loads(str(config.pop(ARRAY_KEYS_KEY, "[]"))) or [
        str(i) for i in range(len(received))
    ]
    unit_weight = KEY_CLIPPING_NORM in config
    config.pop(KEY_CLIPPING_NORM, None)
    msg.content = RecordDict(
        {
            "arrays": ArrayRecord({k: _array(v) for k, v in zip(keys, received, strict=True)}),
            "config": ConfigRecord(config),
        }
    )
    reply = call_next(msg, ctxt)
    if reply.has_error():
        return reply
    status = reply.content.config_records.get(STATUS_KEY)
    status_dict = dict(status) if status is not None else {"status": STATUS_FAILED}
    metrics: dict = {k: v for k, v in status_dict.items() if _scalar(v) is not None}
    if "arrays" in reply.content.array_records and status_dict.get("status") == STATUS_OK:
        ndarrays = reply.content["arrays"].to_numpy_ndarrays()
        train_metrics = dict(reply.content["metrics"])
        num_examples = 1 if unit_weight else int(train_metrics["num-examples"])
        metrics.update({k: float(v) for k, v in train_metrics.items()})
    else:  # a refusal: a zero-weight contribution, so the secure sum does not include it
        ndarrays, num_examples = received, 0
    fit_res = FitRes(
        status=Status(code=Code.OK, message=""),
        parameters=ndarrays_to_parameters(ndarrays),
        num_examples=num_examples,
        metrics=metrics,
    )
    return Message(compat.fitres_to_recorddict(fit_res, keep_input=True), reply_to=msg)


def _array(value: np.ndarray):
    from flwr.app import Array

    return Array(np.asarray(value))


def _clipped_unless_refused(msg: Message, ctxt: Context, call_next) -> Message:
    captured: dict[str, Message] = {}

    def inner(m: Message, c: Context) -> Message:
        captured["reply"] = call_next(m, c)
        return captured["reply"]

    out = fixedclipping_mod(msg, ctxt, inner)
    reply = captured.get("reply")
    if reply is not None and not reply.has_error() and not reply.content.array_records:
        return reply  # a refusal carries no weights to clip; keep its reason
    return out


def secure_mod(msg: Message, ctxt: Context, call_next) -> Message:
    """Route SecAgg+ and client-level-DP messages through Flower's mods; pass others through."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    if RECORD_KEY_CONFIGS in msg.content.config_records:
        fit_config = msg.content.config_records.get("fitins.config")
        clip = fit_config is not None and KEY_CLIPPING_NORM in fit_config

        def model_stage(m: Message, c: Context) -> Message:
            if clip:
                return legacy_fixedclipping_mod(
                    m, c, lambda m2, c2: legacy_fit_adapter(m2, c2, call_next)
                )
            return legacy_fit_adapter(m, c, call_next)

        return secaggplus_mod(msg, ctxt, model_stage)
    config = msg.content.config_records.get("config")
    if config is not None and KEY_CLIPPING_NORM in config:
        return _clipped_unless_refused(msg, ctxt, call_next)
    return call_next(msg, ctxt)
