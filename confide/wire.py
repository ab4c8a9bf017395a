"""The wire protocol between the server and the nodes, imported by both sides.

Everything that crosses a Flower message and must be spelled the same on both ends lives here:
the keys of the records Confide adds, the status values of a node's reply, the per-node
training metrics the server records, and the server's per-round :class:`Proposal` (flat
scalars that travel in a ConfigRecord). A node checks every proposal against its own policy;
the server proposes, never overrides.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from confide.core.errors import ConfideError
from confide.modeling.training_settings import NOISE_KINDS, DPSettings, TrainSettings

__all__ = [
    "ARRAY_KEYS_KEY",
    "DP_STATE_KEY",
    "PER_NODE_TRAIN_METRICS",
    "SECURE_NOISE_METRIC",
    "STATUSES",
    "STATUS_FAILED",
    "STATUS_KEY",
    "STATUS_OK",
    "STATUS_REFUSED",
    "Proposal",
    "ProposalError",
]

# A node's reply carries a ConfigRecord under STATUS_KEY: {node, status, reason}.
STATUS_KEY = "confide"
STATUS_OK = "ok"
STATUS_REFUSED = "refused"
STATUS_FAILED = "failed"  # what the server records for a reply without a status record
STATUSES = (STATUS_OK, STATUS_REFUSED, STATUS_FAILED)

# SecAgg+ rounds send the model as legacy Parameters: the array names travel in the fit config.
ARRAY_KEYS_KEY = "confide-array-keys"

# The node's own context state: its DP accountant between rounds of one run (never sent).
DP_STATE_KEY = "confide.dp"

# Training metrics a node reports and the server keeps per node in the run history.
# ``secure_noise``: 1.0 when the node drew its DP noise from the secure source, 0.0 when seeded
# (the node decides which; the server's dp-noise is a proposal).
SECURE_NOISE_METRIC = "secure_noise"
PER_NODE_TRAIN_METRICS = (
    "train_loss",
    "epsilon",
    "steps",
    "num-examples",
    "noise_multiplier",
    SECURE_NOISE_METRIC,
)


class ProposalError(ConfideError):
    """A proposal from the server is incomplete or malformed."""


def _noise(value: Any) -> str:
    if value not in NOISE_KINDS:
        raise ValueError(f"dp-noise must be one of {', '.join(NOISE_KINDS)}")
    return str(value)


@dataclass(frozen=True)
class Proposal:
    """Run id, round, planned rounds, DP and training settings proposed by the server."""

    run_id: str
    server_round: int
    rounds: int
    seed: int
    dp: DPSettings
    train: TrainSettings

    def to_config(self) -> dict[str, Any]:
        """Flat config entries (bool, int, float, str only)."""
        dp, tr = self.dp, self.train
        return {
            "confide-run-id": self.run_id,
            "planned-rounds": self.rounds,
            "seed": self.seed,
            "dp-enabled": dp.enabled,
            "dp-epsilon": float(dp.epsilon) if dp.enabled else 0.0,
            "dp-delta": float(dp.delta) if dp.enabled else 0.0,
            "dp-max-grad-norm": float(dp.max_grad_norm),
            "dp-accountant": dp.accountant,
            "dp-noise": dp.noise,
            "dp-grad-sample-mode": dp.grad_sample_mode,
            "learning-rate": float(tr.learning_rate),
            "batch-size": int(tr.batch_size),
            "local-epochs": int(tr.local_epochs),
            "momentum": float(tr.momentum),
            "proximal-mu": float(tr.proximal_mu),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Proposal:
        """Parse a proposal; the strategy adds ``server-round``, FedProx ``proximal-mu``."""
        try:
            enabled = bool(config["dp-enabled"])
            dp = DPSettings(
                enabled=enabled,
                epsilon=float(config["dp-epsilon"]) if enabled else 0.0,
                delta=float(config["dp-delta"]) if enabled else 0.0,
                max_grad_norm=float(config["dp-max-grad-norm"]),
                accountant=str(config["dp-accountant"]),
                noise=_noise(config["dp-noise"]),
                grad_sample_mode=str(config["dp-grad-sample-mode"]),
            )
            train = TrainSettings(
                learning_rate=float(config["learning-rate"]),
                batch_size=int(config["batch-size"]),
                local_epochs=int(config["local-epochs"]),
                momentum=float(config["momentum"]),
                proximal_mu=float(config.get("proximal-mu", 0.0)),
            )
            return cls(
                run_id=str(config["confide-run-id"]),
                server_round=int(config["server-round"]),
                rounds=int(config["planned-rounds"]),
                seed=int(config["seed"]),
                dp=dp,
                train=train,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProposalError(
                f"the server's proposal is missing or has a malformed entry ({exc}) "
                "(rule: proposal format)"
            ) from exc


# --- analyses (federated analytics): Flower messages of type QUERY ---------------------------
# One ConfigRecord under ANALYSIS_KEY in each direction. The spec's wire dict, the centroids and
# a node's release are nested data, so they travel as JSON text: parsed with ``json.loads`` only
# (no NaN or Infinity, bounded size), never imported, unpickled or instantiated. The node
# re-validates the spec itself (``AnalysisSpec.from_wire``) and checks it against its policy.

__all__ += [
    "ANALYSIS_KEY",
    "ANALYSIS_STEPS",
    "AnalysisRequest",
    "AnalysisStep",
    "AnalysisWireError",
    "analysis_plan",
    "decode_analysis_reply",
    "encode_analysis_reply",
]

ANALYSIS_KEY = "confide-analysis"
# release: queries + RFM + quality; kmeans: one DP k-means step (its iteration numbers the
# library's plan: initialisation, the Lloyd iterations, the final per-segment statistics).
ANALYSIS_STEPS = ("release", "kmeans")
MAX_ANALYSIS_JSON = 4 * 1024 * 1024  # bytes of JSON text per field: specs and releases are small
_ANALYSIS_RUN_ID = re.compile(r"[A-Za-z0-9_.:+-]{1,200}")


class AnalysisWireError(ConfideError):
    """An analysis message is incomplete or malformed (one line, never quoting values)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to infinity
        raise ValueError("non-finite number")
    return value


def _json_field(
    config: Mapping[str, Any],
    key: str,
    what: str = "analysis message",
    error: type[ConfideError] = AnalysisWireError,
) -> Any:
    text = config.get(key)
    if not isinstance(text, str):
        raise error(f"{what}: field '{key}' must be JSON text (rule: wire)")
    if len(text.encode("utf-8")) > MAX_ANALYSIS_JSON:
        raise error(f"{what}: field '{key}' is larger than {MAX_ANALYSIS_JSON} bytes (rule: wire)")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise error(f"{what}: field '{key}' is not valid finite JSON (rule: wire)") from None


def _dump(
    value: Any,
    key: str,
    what: str = "analysis message",
    error: type[ConfideError] = AnalysisWireError,
) -> str:
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise error(f"{what}: field '{key}' is not plain finite JSON data (rule: wire)") from None


def _centroids(raw: Any) -> list[list[float]] | None:
    if raw is None:
        return None
    rows = raw if isinstance(raw, list) and raw else None
    if rows is None or not all(isinstance(r, list) and r for r in rows):
        raise AnalysisWireError(
            "analysis message: field 'centroids' must be a non-empty list of non-empty lists "
            "(rule: wire)"
        )
    if len({len(r) for r in rows}) != 1 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for r in rows
        for v in r
    ):
        raise AnalysisWireError(
            "analysis message: field 'centroids' must hold finite numbers, one length per "
            "centroid (rule: wire)"
        )
    return [[float(v) for v in r] for r in rows]


@dataclass(frozen=True)
class AnalysisRequest:
    """One analysis step the coordinator asks of a node: the run it belongs to (the node's
    budget-ledger entry), the step, the spec's wire dict, and for k-means the iteration and
    the current centroids (None: the node starts from the spec's own initialisation)."""

    run_id: str
    step: str
    spec: dict[str, Any]
    iteration: int = 0
    centroids: list[list[float]] | None = None

    def to_config(self) -> dict[str, Any]:
        """The ConfigRecord entries (str and int only)."""
        return {
            "run-id": self.run_id,
            "step": self.step,
            "iteration": int(self.iteration),
            "spec": _dump(self.spec, "spec"),
            "centroids": _dump(self.centroids, "centroids"),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AnalysisRequest:
        """Parse and check a received request; raises :class:`AnalysisWireError`."""
        run_id, step, iteration = config.get("run-id"), config.get("step"), config.get("iteration")
        if not isinstance(run_id, str) or not _ANALYSIS_RUN_ID.fullmatch(run_id):
            raise AnalysisWireError(
                "analysis message: field 'run-id' must be 1-200 characters of "
                "[A-Za-z0-9_.:+-] (rule: wire)"
            )
        if step not in ANALYSIS_STEPS:
            raise AnalysisWireError(
                f"analysis message: field 'step' must be one of {', '.join(ANALYSIS_STEPS)} "
                "(rule: wire)"
            )
        if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
            raise AnalysisWireError(
                "analysis message: field 'iteration' must be a non-negative integer (rule: wire)"
            )
        spec = _json_field(config, "spec")
        if not isinstance(spec, dict):
            raise AnalysisWireError("analysis message: field 'spec' must be an object (rule: wire)")
        return cls(run_id, str(step), spec, iteration, _centroids(_json_field(config, "centroids")))


def encode_analysis_reply(release: Mapping[str, Any]) -> dict[str, str]:
    """A node's reply entries: its release (JSON-ready numbers, no rows, no ids) as JSON text."""
    return {"release": _dump(dict(release), "release")}


def decode_analysis_reply(config: Mapping[str, Any]) -> dict[str, Any]:
    """A node's release from its reply entries; raises :class:`AnalysisWireError`."""
    release = _json_field(config, "release")
    if not isinstance(release, dict):
        raise AnalysisWireError("analysis reply: field 'release' must be an object (rule: wire)")
    return release


@dataclass(frozen=True)
class AnalysisStep:
    """One step of an analysis's plan and the epsilon a node charges for it."""

    step: str
    iteration: int
    epsilon: float


def analysis_plan(
    release_epsilon: float, kmeans_epsilons: Sequence[float] = ()
) -> tuple[AnalysisStep, ...]:
    """The steps of an analysis, in order, as both sides run them: ``release`` (queries, RFM,
    quality) and then, with segments, one ``kmeans`` step per entry of ``kmeans_epsilons``
    (the library's split of the segments epsilon: init, the Lloyd iterations, final)."""
    return (
        AnalysisStep("release", 0, float(release_epsilon)),
        *(AnalysisStep("kmeans", i, float(eps)) for i, eps in enumerate(kmeans_epsilons)),
    )


# --- vertical training (secure linear or split learning): Flower messages of type QUERY -------
# One ConfigRecord under VERTICAL_KEY in each direction (run id, step, the shared public job and
# a small summary as JSON text, parsed like the analysis fields) and one ArrayRecord under the
# same key holding the step's arrays: blinded group elements (uint8), released values (float32),
# positions (int64), 32-byte keys (uint8), dealer values in Z_2^64 (uint64) and blobs sealed
# end-to-end between the two nodes (uint8; the coordinator relays them and cannot open them).
# Both sides check every array against the step's table (names, dtypes, one dimension, finite
# values, sorted unique positions, key and blob sizes); an array the step does not expect is
# refused. Nothing received is imported, unpickled or instantiated (Flower's arrays are NumPy
# ``.npy`` bytes, read without pickle).

__all__ += [
    "VERTICAL_KEY",
    "VERTICAL_STATE_KEY",
    "VERTICAL_STEPS",
    "VerticalReply",
    "VerticalRequest",
    "VerticalWireError",
]

VERTICAL_KEY = "confide.vertical"
# The node's own context state of its current vertical run (PSI seed, secret order, alignment).
VERTICAL_STATE_KEY = "confide.vertical.state"
VERTICAL_STEPS = (
    "vertical-check",
    "psi-blind",
    "psi-reblind",
    "psi-match",
    "vertical-bottom",
    "vertical-top",
    "vertical-share",
    "vertical-solve",
    "vertical-score",
    "vertical-evaluate",
)
MAX_VERTICAL_ELEMENTS = 50_000_000  # entries per array: far above any federation's set size
_BLINDED_SIZE = 32  # bytes per blinded group element (confide.privacy.psi.ELEMENT_SIZE)
# kind of each array a step carries; "name:*" is one array per feature node ("name:<node>")
_REQUEST_ARRAYS: dict[str, dict[str, str]] = {
    "vertical-check": {},
    "psi-blind": {},
    "psi-reblind": {"m1": "blinded"},
    "psi-match": {
        "m2:*": "blinded",
        "m3:*": "blinded",
        # secure_linear: the feature node's pair key and the dealer's share for the label node
        "pair_key:*?": "key",
        "deal_cross_key:*?": "key",
        "deal_cross_u:*?": "ring",
        "deal_gram_key:*?": "key",
        "deal_gram_u:*?": "ring",
    },
    "vertical-bottom": {"residual": "float", "test": "index", "train?": "index"},
    "vertical-top": {"embedding:*": "float", "moments:*": "float", "test_embedding:*": "float"},
    "vertical-share": {
        "pair_key": "key",
        "sealed_cross": "sealed",
        "sealed_gram": "sealed",
        "deal_cross_key": "key",
        "deal_cross_t": "ring",
        "deal_gram_key": "key",
        "deal_gram_t": "ring",
        "test": "index",
    },
    "vertical-solve": {
        "masked_cross:*": "sealed",
        "masked_gram:*": "sealed",
        "share_cross:*": "sealed",
        "share_gram:*": "sealed",
    },
    "vertical-score": {"weights": "float", "test": "index"},
    "vertical-evaluate": {"test_logit:*": "float"},
}
_REPLY_ARRAYS: dict[str, dict[str, str]] = {
    "vertical-check": {},
    "psi-blind": {"m1": "blinded"},
    "psi-reblind": {"m2": "blinded", "m3": "blinded", "pair_key?": "key"},
    "psi-match": {
        "residual:*?": "float",  # split_learning
        "test:*": "index",
        "train:*?": "index",
        "pair_key:*?": "key",  # secure_linear: the label node's pair key and masked columns
        "sealed_cross:*?": "sealed",
        "sealed_gram:*?": "sealed",
    },
    "vertical-bottom": {"embedding": "float", "moments": "float", "test_embedding": "float"},
    "vertical-top": {},
    "vertical-share": {
        "masked_cross": "sealed",
        "masked_gram": "sealed",
        "share_cross": "sealed",
        "share_gram": "sealed",
    },
    "vertical-solve": {"weights:*": "float"},
    "vertical-score": {"test_logit": "float"},
    "vertical-evaluate": {},
}
_DTYPES = {
    "blinded": "uint8",
    "float": "float32",
    "index": "int64",
    "key": "uint8",  # a 32-byte X25519 public key or dealer key
    "sealed": "uint8",  # an AES-GCM blob end-to-end between two nodes (the coordinator relays)
    "ring": "uint64",  # dealer values in Z_2^64
}
_KEY_SIZE = 32


class VerticalWireError(ConfideError):
    """A vertical message is incomplete or malformed (one line, never quoting values)."""


def _vertical_json(config: Mapping[str, Any], key: str, what: str) -> dict[str, Any]:
    value = _json_field(config, key, what, VerticalWireError)
    if not isinstance(value, dict):
        raise VerticalWireError(f"{what}: field '{key}' must be an object (rule: wire)")
    return value


def _check_array(name: str, kind: str, array: Any, what: str) -> Any:
    if not isinstance(array, np.ndarray) or array.ndim != 1 or str(array.dtype) != _DTYPES[kind]:
        raise VerticalWireError(
            f"{what}: array '{name}' must be one-dimensional {_DTYPES[kind]} (rule: wire)"
        )
    if array.size > MAX_VERTICAL_ELEMENTS:
        raise VerticalWireError(
            f"{what}: array '{name}' has more than {MAX_VERTICAL_ELEMENTS} entries (rule: wire)"
        )
    if kind == "blinded" and (array.size == 0 or array.size % _BLINDED_SIZE):
        raise VerticalWireError(
            f"{what}: array '{name}' must hold a positive whole number of "
            f"{_BLINDED_SIZE}-byte group elements (rule: wire)"
        )
    if kind == "key" and array.size != _KEY_SIZE:
        raise VerticalWireError(f"{what}: array '{name}' must hold {_KEY_SIZE} bytes (rule: wire)")
    if kind == "sealed" and array.size <= 28:  # nonce (12) + tag (16) + at least one byte
        raise VerticalWireError(f"{what}: array '{name}' is not a sealed blob (rule: wire)")
    if kind == "float" and not bool(np.isfinite(array).all()):
        raise VerticalWireError(f"{what}: array '{name}' holds a non-finite number (rule: wire)")
    if kind == "index" and array.size and (array[0] < 0 or bool((np.diff(array) <= 0).any())):
        raise VerticalWireError(
            f"{what}: array '{name}' must hold increasing non-negative positions (rule: wire)"
        )
    return array


def _check_arrays(table: Mapping[str, str], arrays: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Every array the step expects, and nothing else; per-node arrays name safe node names and
    come as complete groups (each node has every required per-node array of the step). A name
    ending in ``?`` is optional (the aligned training positions, with ``psi.reveal_to: all``)."""
    optional = {n[:-1] for n in table if n.endswith("?")}
    clean = {n.rstrip("?"): k for n, k in table.items()}
    fixed = {n: k for n, k in clean.items() if not n.endswith(":*")}
    per_node = {n[:-2]: k for n, k in clean.items() if n.endswith(":*")}
    required = {b for b in per_node if f"{b}:*" not in optional}
    out: dict[str, Any] = {}
    nodes: dict[str, set[str]] = {}
    for name, array in arrays.items():
        base, sep, node = str(name).partition(":")
        if not sep and name in fixed:
            out[name] = _check_array(name, fixed[name], array, what)
        elif sep and base in per_node and _SAFE_NODE.fullmatch(node) and ".." not in node:
            out[name] = _check_array(name, per_node[base], array, what)
            nodes.setdefault(node, set()).add(base)
        else:
            raise VerticalWireError(f"{what}: unexpected array for this step (rule: wire)")
    missing = [n for n in fixed if n not in out and n not in optional]
    if missing:
        raise VerticalWireError(f"{what}: array '{missing[0]}' is missing (rule: wire)")
    if per_node and (not nodes or any(not required <= bases for bases in nodes.values())):
        raise VerticalWireError(
            f"{what}: every feature node needs the arrays {', '.join(sorted(required))} "
            "(rule: wire)"
        )
    return out


_SAFE_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _vertical_step(step: Any, what: str) -> str:
    if step not in VERTICAL_STEPS:
        raise VerticalWireError(
            f"{what}: field 'step' must be one of {', '.join(VERTICAL_STEPS)} (rule: wire)"
        )
    return str(step)


@dataclass(frozen=True)
class VerticalRequest:
    """One step of a vertical run the coordinator asks of a node: the run id (the node's
    budget-ledger entry and PSI domain), the step, the shared public job (task, model, train,
    DP proposal, seed, split and the federation's vertical keys; no node-local path) and the
    step's arrays (:data:`numpy.ndarray` by name, checked against the step's table)."""

    run_id: str
    step: str
    job: dict[str, Any]
    arrays: dict[str, Any] = field(default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        """The ConfigRecord entries (str only); the arrays travel separately."""
        what = "vertical message"
        return {
            "run-id": self.run_id,
            "step": _vertical_step(self.step, what),
            "job": _dump(dict(self.job), "job", what, VerticalWireError),
        }

    @classmethod
    def from_parts(cls, config: Mapping[str, Any], arrays: Mapping[str, Any]) -> VerticalRequest:
        """Parse and check a received request; raises :class:`VerticalWireError`."""
        what = "vertical message"
        if set(config) != {"run-id", "step", "job"}:
            raise VerticalWireError(
                f"{what}: the record must hold exactly run-id, step and job (rule: wire)"
            )
        run_id = config.get("run-id")
        if not isinstance(run_id, str) or not _ANALYSIS_RUN_ID.fullmatch(run_id):
            raise VerticalWireError(
                f"{what}: field 'run-id' must be 1-200 characters of [A-Za-z0-9_.:+-] (rule: wire)"
            )
        step = _vertical_step(config.get("step"), what)
        job = _vertical_json(config, "job", what)
        return cls(run_id, step, job, _check_arrays(_REQUEST_ARRAYS[step], arrays, what))

    def checked_arrays(self) -> dict[str, Any]:
        """This request's arrays checked against its step's table (the sender's own check)."""
        return _check_arrays(_REQUEST_ARRAYS[self.step], self.arrays, "vertical message")


@dataclass(frozen=True)
class VerticalReply:
    """A node's answer to one step: a summary (JSON-ready numbers: set sizes, epsilon,
    aggregate metrics; no rows, no ids) and the step's arrays."""

    step: str
    summary: dict[str, Any]
    arrays: dict[str, Any] = field(default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        """The ConfigRecord entries (str only); the arrays travel separately."""
        what = "vertical reply"
        _check_arrays(_REPLY_ARRAYS[_vertical_step(self.step, what)], self.arrays, what)
        summary = _dump(dict(self.summary), "summary", what, VerticalWireError)
        return {"step": self.step, "summary": summary}

    @classmethod
    def from_parts(cls, config: Mapping[str, Any], arrays: Mapping[str, Any]) -> VerticalReply:
        """Parse and check a received reply; raises :class:`VerticalWireError`."""
        what = "vertical reply"
        if set(config) != {"step", "summary"}:
            raise VerticalWireError(
                f"{what}: the record must hold exactly step and summary (rule: wire)"
            )
        step = _vertical_step(config.get("step"), what)
        summary = _vertical_json(config, "summary", what)
        return cls(step, summary, _check_arrays(_REPLY_ARRAYS[step], arrays, what))
