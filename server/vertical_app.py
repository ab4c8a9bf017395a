"""The coordinator of a vertical run (split learning after PSI, docs/vertical.md): a relay.

It sends each step to the node it is for as a Flower message of type QUERY (the records of
:mod:`confide.vertical_records`): ``vertical-check`` to every node (each checks the job against
its own policy, data and budget and says its name and role, writing nothing), ``psi-blind`` to
the label node, ``psi-reblind`` to each feature node, ``psi-match`` to the label node (which
aligns, trains its own model and releases noisy residuals), ``vertical-bottom`` to each feature
node (which trains its bottom model and releases noisy embeddings) and ``vertical-top`` to the
label node (which fits the top model and evaluates it). The coordinator relays blinded group
elements and DP-protected arrays it cannot use outside the run; it never sees an id or a row.
It keeps the PSI summary (set sizes, intersection size, time), each node's epsilon and DP
settings, and the aggregate metrics. A node that refuses or does not answer stops the run with
its one-line reason.

:func:`run_vertical` is the body of the ServerApp's main under the simulation engine (started by
:mod:`confide.simulations.vertical_run`) and under the deployment engine
(:func:`run_vertical_deployment`, called by :mod:`confide.deployment_app`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from flwr.app import Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from confide.core.errors import ConfideError
from confide.core.files import atomic_write_text
from confide.job import Job, parse_job
from confide.privacy.secure_product import deal
from confide.rundir import CONFIG_FILE, write_outcome
from confide.server.queries import (
    ProtocolStopped,
    ReplyRejected,
    connected_node_ids,
    send_queries,
    shared_job,
)
from confide.vertical_records import reply_from_records, request_records
from confide.vertical_spec import VerticalSpec
from confide.wire import (
    VerticalReply,
    VerticalRequest,
    VerticalWireError,
)

__all__ = [
    "CROSSED",
    "CROSSED_SECURE_LINEAR",
    "VerticalDeploymentRun",
    "VerticalOutcome",
    "VerticalStopped",
    "is_vertical_run",
    "run_vertical",
    "run_vertical_deployment",
]

OnStep = Callable[[str], None]

# What crosses each boundary, per protocol and role (the report and the run record say it in
# these words).
CROSSED_SECURE_LINEAR = {
    "label": [
        "blinded join keys H(id)^a (PSI group elements, padded when psi.pad_to is set)",
        "re-blinded feature-node elements (PSI)",
        "its label columns over the feature node's positions, masked over Z_2^64 and sealed "
        "to the feature node (secure product; zero where not an aligned training row)",
        "the feature node's weights, from statistics with Gaussian noise (label DP)",
        "aggregate test metrics and score histograms",
    ],
    "feature": [
        "re-blinded label-node elements and its own blinded join keys (PSI)",
        "its clipped features and their squares, masked over Z_2^64 and sealed to the label "
        "node (secure product)",
        "its share of the statistics with Gaussian noise (feature DP)",
        "logits of the test positions only, from its weights",
    ],
}
CROSSED = {
    "label": [
        "blinded join keys H(id)^a (PSI group elements, padded when psi.pad_to is set)",
        "re-blinded feature-node elements (PSI)",
        "DP label release: clipped residuals y - p plus Gaussian noise (label DP)",
        "aggregate test metrics and score histograms of the top model",
    ],
    "feature": [
        "re-blinded label-node elements and its own blinded join keys (PSI)",
        "DP embedding release: clipped embeddings plus Gaussian noise (embedding DP)",
        "one DP release of the embeddings' mean and second moment",
        "clean embeddings of the test positions only",
    ],
}


class VerticalStopped(ProtocolStopped):
    """A node refused a step or did not answer; ``reasons`` maps node to its reason."""

    def __init__(self, step: str, reasons: Mapping[str, str]) -> None:
        self.step = step
        super().__init__(f"vertical run stopped at step {step}", reasons)


@dataclass
class VerticalOutcome:
    """How a vertical run ended: ``record`` holds the PSI summary, each node's role, epsilon
    and what crossed its boundary, and (completed) the top model's aggregate metrics."""

    status: str  # "completed" | "stopped"
    record: dict[str, Any]
    reasons: dict[str, str] = field(default_factory=dict)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """outcome.json's content."""
        return {"status": self.status, "reasons": self.reasons, "message": self.message}

    @property
    def epsilons(self) -> dict[str, float]:
        """The epsilon each node reported for this run (0.0 for DP off)."""
        return {
            name: float(node.get("dp", {}).get("epsilon") or 0.0)
            for name, node in self.record.get("nodes", {}).items()
            if "dp" in node
        }


def _connected(grid: Grid, expected: int, timeout: float) -> list[int]:
    node_ids, missing = connected_node_ids(grid, expected, timeout)
    if missing is not None:
        raise VerticalStopped("vertical-check", {"federation": missing})
    return node_ids


def _ask(
    grid: Grid, requests: Mapping[int, VerticalRequest], step: str, timeout: float
) -> dict[int, tuple[str, VerticalReply]]:
    """Send one request per node id; returns ``{node id: (name, reply)}`` or raises
    :class:`VerticalStopped` with every refusal and every missing reply."""
    messages = [
        Message(
            content=RecordDict(request_records(request)),
            dst_node_id=node_id,
            message_type=MessageType.QUERY,
        )
        for node_id, request in requests.items()
    ]

    def decode(content: RecordDict) -> VerticalReply:
        try:
            answer = reply_from_records(content)
        except VerticalWireError as exc:
            raise ReplyRejected(str(exc)) from None
        if answer.step != step:
            raise ReplyRejected(f"answered step {answer.step} instead of {step} (rule: wire)")
        return answer

    accepted, reasons = send_queries(grid, messages, requests, timeout, decode)
    out = {source: (name, answer) for source, name, answer in accepted}
    if reasons:
        raise VerticalStopped(step, reasons)
    return out


def _identify(
    grid: Grid, node_ids: list[int], spec: VerticalSpec, run_id: str, job: dict, timeout: float
) -> dict[str, int]:
    """Every node checks the job on its side and says who it is; returns name -> node id."""
    replies = _ask(
        grid,
        {i: VerticalRequest(run_id, "vertical-check", job) for i in node_ids},
        "vertical-check",
        timeout,
    )
    ids = {name: node_id for node_id, (name, _) in replies.items()}
    missing = [n for n in spec.nodes if n not in ids]
    if missing or len(ids) != len(replies):
        raise VerticalStopped(
            "vertical-check",
            {
                "federation": f"the connected nodes are not the job's nodes (missing: "
                f"{', '.join(missing) or 'none'})"
            },
        )
    return ids


def run_vertical(
    grid: Grid,
    job: Job,
    public_job: dict[str, Any],
    run_id: str,
    timeout: float,
    on_step: OnStep | None = None,
) -> VerticalOutcome:
    """Run every step of the vertical protocol on the grid's nodes; never raises for a node's
    refusal (the outcome says who stopped the run and why)."""
    spec = job.vertical
    assert spec is not None  # the caller dispatches vertical jobs only
    crossed = CROSSED_SECURE_LINEAR if spec.secure_linear else CROSSED
    record: dict[str, Any] = {
        "kind": "vertical",
        "join_key": spec.join_key,
        "label_node": spec.label_node,
        "feature_nodes": list(spec.feature_nodes),
        "psi_settings": {
            "reveal_to": spec.reveal_to,
            "pad_to": spec.pad_to,
            "min_overlap": spec.min_overlap,
        },
        "protocol": spec.protocol,
        "nodes": {
            spec.label_node: {"role": "label", "crossed": crossed["label"]},
            **{f: {"role": "feature", "crossed": crossed["feature"]} for f in spec.feature_nodes},
        },
    }

    def done(step: str) -> None:
        if on_step is not None:
            on_step(step)

    try:
        ids = _identify(
            grid, _connected(grid, len(spec.nodes), timeout), spec, run_id, public_job, timeout
        )
        done("vertical-check")
        label, features = ids[spec.label_node], {f: ids[f] for f in spec.feature_nodes}
        started = time.perf_counter()
        ((_, blind),) = _ask(
            grid, {label: VerticalRequest(run_id, "psi-blind", public_job)}, "psi-blind", timeout
        ).values()
        done("psi-blind")
        reblind = _ask(
            grid,
            {
                node_id: VerticalRequest(
                    run_id, "psi-reblind", public_job, {"m1": blind.arrays["m1"]}
                )
                for node_id in features.values()
            },
            "psi-reblind",
            timeout,
        )
        done("psi-reblind")
        relay_seconds = time.perf_counter() - started
        by_name = {name: answer for name, answer in reblind.values()}
        match_arrays: dict[str, Any] = {}
        for name, answer in by_name.items():
            match_arrays[f"m2:{name}"] = answer.arrays["m2"]
            match_arrays[f"m3:{name}"] = answer.arrays["m3"]
        dealt: dict[str, Any] = {}
        if spec.secure_linear:  # the dealer's correlated randomness for the two products
            dealt = _deal(blind, by_name)
            for name, (for_label, _) in dealt.items():
                match_arrays.update({f"{k}:{name}": v for k, v in for_label.items()})
                match_arrays[f"pair_key:{name}"] = by_name[name].arrays["pair_key"]
        ((_, match),) = _ask(
            grid,
            {label: VerticalRequest(run_id, "psi-match", public_job, match_arrays)},
            "psi-match",
            timeout,
        ).values()
        done("psi-match")
        psi = dict(match.summary.get("psi", {}))
        psi["seconds"] = relay_seconds + float(psi.get("seconds", 0.0))
        psi["feature_elements"] = {
            name: int(answer.summary.get("elements", 0)) for name, answer in by_name.items()
        }
        record["psi"] = psi
        record["nodes"][spec.label_node].update(
            {"dp": match.summary.get("dp", {}), "features": match.summary.get("features", [])}
        )
        if spec.secure_linear:
            _secure_linear(grid, ids, spec, run_id, public_job, timeout, match, dealt, record, done)
            return VerticalOutcome("completed", record)
        bottom = _ask(
            grid,
            {
                features[name]: VerticalRequest(
                    run_id,
                    "vertical-bottom",
                    public_job,
                    {
                        "residual": match.arrays[f"residual:{name}"],
                        "test": match.arrays[f"test:{name}"],
                        # psi.reveal_to: all: the aligned training positions, relayed
                        **(
                            {"train": match.arrays[f"train:{name}"]}
                            if f"train:{name}" in match.arrays
                            else {}
                        ),
                    },
                )
                for name in spec.feature_nodes
            },
            "vertical-bottom",
            timeout,
        )
        done("vertical-bottom")
        top_arrays: dict[str, Any] = {}
        for name, answer in bottom.values():
            record["nodes"][name].update(
                {
                    "dp": answer.summary.get("dp", {}),
                    "features": answer.summary.get("features", []),
                    "train_rows": answer.summary.get("train_rows"),
                }
            )
            top_arrays[f"embedding:{name}"] = answer.arrays["embedding"]
            top_arrays[f"moments:{name}"] = answer.arrays["moments"]
            top_arrays[f"test_embedding:{name}"] = answer.arrays["test_embedding"]
        ((_, top),) = _ask(
            grid,
            {label: VerticalRequest(run_id, "vertical-top", public_job, top_arrays)},
            "vertical-top",
            timeout,
        ).values()
        done("vertical-top")
        record.update(
            {
                "global": top.summary.get("global", {}),
                "label_alone": top.summary.get("label_alone", {}),
                "curves": top.summary.get("curves", {}),
                "train_rows": top.summary.get("train_rows"),
                "test_rows": top.summary.get("test_rows"),
            }
        )
    except VerticalStopped as exc:
        return VerticalOutcome("stopped", record, exc.reasons, str(exc))
    except (ConfideError, KeyError, TypeError, ValueError) as exc:  # a malformed summary
        reasons = {"coordinator": f"a node's reply could not be used ({type(exc).__name__})"}
        return VerticalOutcome("stopped", record, reasons, reasons["coordinator"])
    return VerticalOutcome("completed", record)


def _deal(blind: VerticalReply, by_name: Mapping[str, VerticalReply]) -> dict[str, Any]:
    """Per feature node: the dealer's arrays for the label node (its mask keys and u) and for
    the feature node (its mask keys and t), for the cross product and the Gram product."""
    d_label = int(blind.summary["feature_dim"])
    out = {}
    for name, answer in by_name.items():
        n_pos = int(answer.summary["elements"])
        d_feature = int(answer.summary["feature_dim"])
        if n_pos < 1 or d_feature < 1 or d_label < 1:
            raise ConfideError("a node reported an empty set or no features (rule: wire)")
        cross_a, cross_b = deal(n_pos, d_feature, d_label + 2)
        gram_a, gram_b = deal(n_pos, d_feature * (d_feature + 1) // 2, 1)
        for_label = {
            "deal_cross_key": np.frombuffer(cross_b.key_b, np.uint8).copy(),
            "deal_cross_u": cross_b.u.reshape(-1),
            "deal_gram_key": np.frombuffer(gram_b.key_b, np.uint8).copy(),
            "deal_gram_u": gram_b.u.reshape(-1),
        }
        for_feature = {
            "deal_cross_key": np.frombuffer(cross_a.key_a, np.uint8).copy(),
            "deal_cross_t": cross_a.t.reshape(-1),
            "deal_gram_key": np.frombuffer(gram_a.key_a, np.uint8).copy(),
            "deal_gram_t": gram_a.t.reshape(-1),
        }
        out[name] = (for_label, for_feature)
    return out


def _secure_linear(
    grid: Grid,
    ids: Mapping[str, int],
    spec: VerticalSpec,
    run_id: str,
    public_job: dict[str, Any],
    timeout: float,
    match: VerticalReply,
    dealt: Mapping[str, Any],
    record: dict[str, Any],
    done: Callable[[str], None],
) -> None:
    """The secure linear protocol after PSI: share (F), solve (L), score (F), evaluate (L);
    the coordinator relays sealed blobs, F's weights and F's test logits."""
    label, features = ids[spec.label_node], {f: ids[f] for f in spec.feature_nodes}
    share = _ask(
        grid,
        {
            features[name]: VerticalRequest(
                run_id,
                "vertical-share",
                public_job,
                {
                    "pair_key": match.arrays[f"pair_key:{name}"],
                    "sealed_cross": match.arrays[f"sealed_cross:{name}"],
                    "sealed_gram": match.arrays[f"sealed_gram:{name}"],
                    "test": match.arrays[f"test:{name}"],
                    **dealt[name][1],
                },
            )
            for name in spec.feature_nodes
        },
        "vertical-share",
        timeout,
    )
    done("vertical-share")
    solve_arrays: dict[str, Any] = {}
    for name, answer in share.values():
        record["nodes"][name].update(
            {
                "dp": answer.summary.get("dp", {}),
                "features": answer.summary.get("features", []),
                "train_rows": answer.summary.get("train_rows"),
            }
        )
        for key in ("masked_cross", "masked_gram", "share_cross", "share_gram"):
            solve_arrays[f"{key}:{name}"] = answer.arrays[key]
    ((_, solve),) = _ask(
        grid,
        {label: VerticalRequest(run_id, "vertical-solve", public_job, solve_arrays)},
        "vertical-solve",
        timeout,
    ).values()
    done("vertical-solve")
    record["nodes"][spec.label_node].update({"dp": solve.summary.get("dp", {})})
    score = _ask(
        grid,
        {
            features[name]: VerticalRequest(
                run_id,
                "vertical-score",
                public_job,
                {"weights": solve.arrays[f"weights:{name}"], "test": match.arrays[f"test:{name}"]},
            )
            for name in spec.feature_nodes
        },
        "vertical-score",
        timeout,
    )
    done("vertical-score")
    logits = {f"test_logit:{name}": answer.arrays["test_logit"] for name, answer in score.values()}
    ((_, evaluated),) = _ask(
        grid,
        {label: VerticalRequest(run_id, "vertical-evaluate", public_job, logits)},
        "vertical-evaluate",
        timeout,
    ).values()
    done("vertical-evaluate")
    record.update(
        {
            "global": evaluated.summary.get("global", {}),
            "label_alone": evaluated.summary.get("label_alone", {}),
            "curves": evaluated.summary.get("curves", {}),
            "train_rows": evaluated.summary.get("train_rows"),
            "test_rows": evaluated.summary.get("test_rows"),
        }
    )


@dataclass(frozen=True)
class VerticalDeploymentRun:
    """A deployment vertical run, as the deployment ServerApp finalises it."""

    job: Job
    run_id: str
    run_dir: Path
    run_root: Path
    outcome: VerticalOutcome
    seconds: float


def is_vertical_run(context: Context) -> bool:
    """Whether the deployment's shared job (``confide-job``) is a vertical job."""
    raw = context.run_config.get("confide-job")
    if not raw:
        return False
    return (shared_job(context).get("federation") or {}).get("kind") == "vertical"


def run_vertical_deployment(grid: Grid, context: Context) -> VerticalDeploymentRun:
    """Deployment: the vertical job travels in the shared job (its federation lists the nodes
    by name only); the run directory is ``<confide-run-dir>/<run id>``. Each SuperNode answers
    from its own ``--node-config``, policy and budget ledger. Runs the protocol; the caller
    finalises."""
    shared = shared_job(context)
    job = parse_job(shared)
    run_root = Path(str(context.run_config.get("confide-run-dir", "runs")))
    run_id = str(context.run_id)
    run_dir = run_root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(  # the coordinator's record of what was proposed (no node paths)
        run_dir / CONFIG_FILE, yaml.safe_dump(job.config, allow_unicode=True, sort_keys=False)
    )
    started = time.perf_counter()
    outcome = run_vertical(grid, job, shared, run_id, float(job.config["run"]["timeout_s"]))
    write_outcome(run_dir, outcome.to_dict())
    return VerticalDeploymentRun(
        job, run_id, run_dir, run_root, outcome, time.perf_counter() - started
    )
