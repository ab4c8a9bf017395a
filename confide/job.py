"""A typed, validated view of a composed run config (the job the federation agrees on)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from confide.modeling.dp_training import DPSettings, TrainSettings
from confide.modeling.errors import ConfideError
from confide.modeling.task_spec import TaskSpec, parse_task_spec

__all__ = ["Job", "JobError", "NodeSpec", "parse_job", "resolve_path"]

_NODE_KEYS = {
    "name",
    "data",
    "policy",
    "profile",
    "rows",
    "keys",
    "ledger",
    "max_epsilon_per_run",
    "part",
}
_SOURCE_KEYS = {"profile", "rows", "data", "policy", "keys"}
_SYNTHETIC_POLICY = "pkg://confide.simulations/policies/synthetic_customers.yaml"


class JobError(ConfideError):
    """The composed config does not describe a valid job."""


def resolve_path(raw: str | Path, where: str) -> Path:
    """Resolve ``pkg://package/relative/path`` to a shipped file, anything else as a path."""
    text = str(raw)
    if text.startswith("pkg://"):
        package, _, rel = text[len("pkg://") :].partition("/")
        if not package or not rel:
            raise JobError(f"{where}: '{text}' must look like pkg://package/file (rule: paths)")
        return Path(str(resources.files(package).joinpath(rel)))
    return Path(text).expanduser()


@dataclass(frozen=True)
class NodeSpec:
    """One node of the federation: its data, its policy and its node-local settings."""

    name: str
    policy: Path
    data: Path | None = None
    profile: str | None = None
    rows: int | None = None
    keys: Path | None = None
    ledger: Path | None = None
    max_epsilon_per_run: float | None = None
    part: int | None = None  # partitioned federation: index of the node's part of the source

    @property
    def synthetic(self) -> bool:
        return self.profile is not None

    def with_paths(self, data: Path, ledger: Path) -> NodeSpec:
        return replace(self, data=data, ledger=ledger)

    def default_ledger(self) -> Path:
        """Where the node keeps its budget ledger when none is configured: beside its data."""
        if self.ledger is not None:
            return self.ledger
        if self.data is None:
            raise JobError(f"node '{self.name}': no data path and no ledger path (rule: ledger)")
        return self.data.with_name(f"{self.data.stem}.{self.name}.confide-ledger.json")


def _parse_node(raw: Any, index: int) -> NodeSpec:
    where = f"federation.nodes[{index}]"
    if not isinstance(raw, Mapping):
        raise JobError(f"{where}: each node must be a mapping (rule: federation)")
    unknown = set(raw) - _NODE_KEYS
    if unknown:
        raise JobError(f"{where}: unknown keys {sorted(unknown)} (rule: federation)")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise JobError(f"{where}: 'name' is required (rule: federation)")
    if not raw.get("policy"):
        raise JobError(f"{where} '{name}': 'policy' is required (rule: policy per node)")
    has_data, has_profile = bool(raw.get("data")), bool(raw.get("profile"))
    if has_data == has_profile:
        raise JobError(
            f"{where} '{name}': give exactly one of 'data' (a CSV) or 'profile' (synthetic) "
            "(rule: federation)"
        )
    max_eps = raw.get("max_epsilon_per_run")
    return NodeSpec(
        name=name,
        policy=resolve_path(raw["policy"], where),
        data=resolve_path(raw["data"], where) if has_data else None,
        profile=str(raw["profile"]) if has_profile else None,
        rows=int(raw["rows"]) if raw.get("rows") is not None else None,
        keys=resolve_path(raw["keys"], where) if raw.get("keys") else None,
        ledger=resolve_path(raw["ledger"], where) if raw.get("ledger") else None,
        max_epsilon_per_run=float(max_eps) if max_eps is not None else None,
        part=int(raw["part"]) if raw.get("part") is not None else None,
    )


def _partitioned_nodes(federation: Mapping[str, Any]) -> tuple[NodeSpec, ...]:
    """Placeholder nodes of a ``source`` + ``partition`` federation; their data is written
    when the run is materialised (``simulations.federation``)."""
    from confide.simulations.partitioning import PartitionError, parse_partition

    where = "federation.source"
    source = federation.get("source")
    if not isinstance(source, Mapping):
        raise JobError(f"{where}: must be a mapping (rule: federation)")
    unknown = set(source) - _SOURCE_KEYS
    if unknown:
        raise JobError(f"{where}: unknown keys {sorted(unknown)} (rule: federation)")
    if bool(source.get("data")) == bool(source.get("profile")):
        raise JobError(
            f"{where}: give exactly one of 'data' (a CSV) or 'profile' (synthetic) "
            "(rule: federation)"
        )
    if source.get("data") and not source.get("policy"):
        raise JobError(f"{where}: 'policy' is required with 'data' (rule: policy per node)")
    try:
        spec = parse_partition(federation.get("partition"))
    except PartitionError as exc:
        raise JobError(str(exc)) from exc
    policy = resolve_path(source.get("policy") or _SYNTHETIC_POLICY, where)
    keys = resolve_path(source["keys"], where) if source.get("keys") else None
    return tuple(
        NodeSpec(name=name, policy=policy, keys=keys, part=index)
        for index, name in enumerate(spec.node_names())
    )


@dataclass(frozen=True)
class Job:
    """Everything a run needs, validated once."""

    config: dict[str, Any]
    task: TaskSpec
    train: TrainSettings
    dp: DPSettings
    nodes: tuple[NodeSpec, ...]
    rounds: int
    seed: int
    test_fraction: float

    @property
    def federation(self) -> str:
        return str(self.config["federation"]["name"])

    @property
    def model_name(self) -> str:
        return str(self.config["model"]["name"])

    @property
    def model_net(self) -> dict[str, Any]:
        return dict(self.config["model"]["net"])

    @property
    def strategy_name(self) -> str:
        return str(self.config["strategy"]["name"])

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise JobError(f"node '{name}' is not part of federation '{self.federation}'")

    def with_nodes(self, nodes: tuple[NodeSpec, ...]) -> Job:
        return replace(self, nodes=nodes)


def _dp_settings(raw: Mapping[str, Any]) -> DPSettings:
    enabled = raw.get("enabled")
    if not isinstance(enabled, bool):
        raise JobError("dp.enabled must be true or false; switching DP off is explicit (rule: DP)")
    if not enabled:
        return DPSettings(enabled=False, max_grad_norm=float(raw.get("max_grad_norm", 1.0)))
    try:
        eps, delta = float(raw["epsilon"]), float(raw["delta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise JobError("dp.epsilon and dp.delta must be numbers when DP is on (rule: DP)") from exc
    if not (eps > 0 and math.isfinite(eps)) or not 0 < delta < 1:
        raise JobError("dp.epsilon must be > 0 and dp.delta in (0, 1) (rule: DP)")
    if raw.get("accountant") not in {"rdp", "prv", "gdp"}:
        raise JobError("dp.accountant must be rdp, prv or gdp (rule: DP)")
    if raw.get("grad_sample_mode") not in {"hooks", "ew", "functorch", "ghost"}:
        raise JobError("dp.grad_sample_mode must be hooks, ew, functorch or ghost (rule: DP)")
    return DPSettings(
        enabled=True,
        epsilon=eps,
        delta=delta,
        max_grad_norm=float(raw["max_grad_norm"]),
        accountant=str(raw["accountant"]),
        secure_mode=bool(raw.get("secure_mode", False)),
        grad_sample_mode=str(raw["grad_sample_mode"]),
    )


def parse_job(config: Mapping[str, Any]) -> Job:
    """Validate a resolved config mapping into a :class:`Job`."""
    config = dict(config)
    nodes_raw = config.get("federation", {}).get("nodes")
    if not nodes_raw and "source" in config.get("federation", {}):
        nodes = _partitioned_nodes(config["federation"])
    elif not isinstance(nodes_raw, list) or not nodes_raw:
        raise JobError("federation.nodes must be a non-empty list (rule: federation)")
    else:
        nodes = tuple(_parse_node(raw, i) for i, raw in enumerate(nodes_raw))
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise JobError("federation.nodes: node names must be unique (rule: federation)")
    train_raw = config.get("train", {})
    train = TrainSettings(
        learning_rate=float(train_raw["learning_rate"]),
        batch_size=int(train_raw["batch_size"]),
        local_epochs=int(train_raw["local_epochs"]),
        momentum=float(train_raw.get("momentum", 0.0)),
        proximal_mu=float(config["strategy"]["algorithm"].get("proximal_mu", 0.0)),
    )
    if train.batch_size < 1 or train.local_epochs < 1 or train.learning_rate <= 0:
        raise JobError("train: batch_size and local_epochs must be >= 1, learning_rate > 0")
    rounds = int(config["rounds"])
    if rounds < 1:
        raise JobError("rounds must be >= 1 (rule: rounds)")
    test_fraction = float(config["split"]["test_fraction"])
    if not 0 < test_fraction < 1:
        raise JobError("split.test_fraction must be in (0, 1) (rule: split)")
    return Job(
        config=config,
        task=parse_task_spec(config["task"], source="task config"),
        train=train,
        dp=_dp_settings(config.get("dp", {})),
        nodes=nodes,
        rounds=rounds,
        seed=int(config["seed"]),
        test_fraction=test_fraction,
    )
