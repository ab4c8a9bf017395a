"""A typed, validated view of a composed run config (the job the federation agrees on)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from confide.job_error import JobError
from confide.modeling.factory import ModelSpec, model_spec_from_config
from confide.modeling.task_spec import TaskSpec
from confide.modeling.tasks import parse_task
from confide.modeling.training_settings import NOISE_KINDS, DPSettings, TrainSettings
from confide.partition_spec import PartitionError, parse_partition
from confide.settings import DeploymentSettings, SecureSettings, parse_deployment, parse_secure
from confide.strategy_spec import StrategyConfigError, parse_strategy
from confide.vertical_spec import VerticalSpec, parse_vertical

__all__ = [
    "Job",
    "JobError",
    "NodeSpec",
    "check_budget_anchors",
    "check_name",
    "check_run_ledger",
    "parse_job",
    "parse_node",
    "preflight_config",
    "resolve_path",
    "run_ledger_file",
    "run_location",
]

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


# Names become path components (run directory, node folders) and run-ledger ids.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NAME_RULE = (
    "must be 1-64 characters of letters, digits, '_', '.', '-', start with a letter or digit "
    "and hold no '..' (rule: safe names)"
)


def check_name(value: Any, where: str) -> str:
    """Return ``value`` when it is a safe name for paths and ledgers; the error never echoes it."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or ".." in value:
        raise JobError(f"config {where}: {_NAME_RULE}")
    return value


def _float(value: Any, where: str, rule: str, *, positive: bool = False) -> float:
    """A finite number (int or float, never bool or text); ``positive``: also > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobError(f"config {where}: must be a number (rule: {rule})")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise JobError(f"config {where}: must be a finite number (rule: {rule})")
    if positive and number <= 0:
        raise JobError(f"config {where}: must be > 0 (rule: {rule})")
    return number


def _int(value: Any, where: str, rule: str, *, minimum: int | None = None) -> int:
    """A whole number (int, or a float with no fraction); ``minimum`` is inclusive."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobError(f"config {where}: must be a whole number (rule: {rule})")
    if minimum is not None and value < minimum:
        raise JobError(f"config {where}: must be >= {minimum} (rule: {rule})")
    if value.bit_length() > 63:
        raise JobError(f"config {where}: is out of range (rule: {rule})")
    return value


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
    if raw.get("name") is None:
        raise JobError(f"{where}: 'name' is required (rule: federation)")
    name = check_name(raw.get("name"), f"{where}.name")
    if not raw.get("policy"):
        raise JobError(f"{where} '{name}': 'policy' is required (rule: policy per node)")
    has_data, has_profile = bool(raw.get("data")), bool(raw.get("profile"))
    if has_data == has_profile:
        raise JobError(
            f"{where} '{name}': give exactly one of 'data' (a CSV) or 'profile' (synthetic) "
            "(rule: federation)"
        )
    max_eps = raw.get("max_epsilon_per_run")
    if max_eps is not None:
        max_eps = _float(max_eps, f"{where}.max_epsilon_per_run", "node DP limits", positive=True)
    rows = raw.get("rows")
    if rows is not None:
        rows = _int(rows, f"{where}.rows", "federation", minimum=1)
    part = raw.get("part")
    if part is not None:
        part = _int(part, f"{where}.part", "federation", minimum=0)
    return NodeSpec(
        name=name,
        policy=resolve_path(raw["policy"], where),
        data=resolve_path(raw["data"], where) if has_data else None,
        profile=str(raw["profile"]) if has_profile else None,
        rows=rows,
        keys=resolve_path(raw["keys"], where) if raw.get("keys") else None,
        ledger=resolve_path(raw["ledger"], where) if raw.get("ledger") else None,
        max_epsilon_per_run=max_eps,
        part=part,
    )


def parse_node(raw: Any, index: int) -> NodeSpec:
    """Entry ``index`` of ``federation.nodes``, validated as a run validates it (JobError)."""
    return _parse_node(raw, index)


def _partitioned_nodes(federation: Mapping[str, Any]) -> tuple[NodeSpec, ...]:
    """Placeholder nodes of a ``source`` + ``partition`` federation; their data is written
    when the run is materialised (``confide.simulations.federation``)."""
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
    secure: SecureSettings = field(default_factory=SecureSettings)
    deployment: DeploymentSettings = field(default_factory=DeploymentSettings)
    vertical: VerticalSpec | None = None  # None: a horizontal job (confide.vertical_spec)

    @property
    def federation(self) -> str:
        return str(self.config["federation"]["name"])

    @property
    def model_name(self) -> str:
        return self.model_net.name

    @property
    def model_net(self) -> ModelSpec:
        """The model as data: a registry name with validated hyper-parameters."""
        return model_spec_from_config(self.config.get("model"), "model")

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
    max_grad_norm = _float(raw.get("max_grad_norm", 1.0), "dp.max_grad_norm", "DP", positive=True)
    noise = raw.get("noise", "seeded")
    if noise not in NOISE_KINDS:
        raise JobError(f"dp.noise must be one of {', '.join(NOISE_KINDS)} (rule: DP noise source)")
    if not enabled:
        return DPSettings(enabled=False, max_grad_norm=max_grad_norm, noise=str(noise))
    try:
        eps, delta = float(raw["epsilon"]), float(raw["delta"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
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
        max_grad_norm=max_grad_norm,
        accountant=str(raw["accountant"]),
        noise=str(noise),
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
    for where, value in (
        ("task.name", (config.get("task") or {}).get("name")),
        ("federation.name", (config.get("federation") or {}).get("name")),
        ("run.name", (config.get("run") or {}).get("name")),
    ):
        check_name(value, where)
    train_raw = config.get("train", {})
    momentum = _float(train_raw.get("momentum", 0.0), "train.momentum", "train")
    if not 0 <= momentum < 1:
        raise JobError("config train.momentum: must be in [0, 1) (rule: train)")
    try:  # a registry name with allowed, range-checked arguments; never a class path
        parse_strategy(config.get("strategy"))
    except StrategyConfigError as exc:
        raise JobError(str(exc)) from None
    mu = config["strategy"]["algorithm"].get("proximal_mu", 0.0)
    proximal_mu = _float(mu, "strategy.algorithm.proximal_mu", "strategy")
    if proximal_mu < 0:
        raise JobError("config strategy.algorithm.proximal_mu: must be >= 0 (rule: strategy)")
    train = TrainSettings(
        learning_rate=_float(train_raw.get("learning_rate"), "train.learning_rate", "train"),
        batch_size=_int(train_raw.get("batch_size"), "train.batch_size", "train"),
        local_epochs=_int(train_raw.get("local_epochs"), "train.local_epochs", "train"),
        momentum=momentum,
        proximal_mu=proximal_mu,
    )
    if train.batch_size < 1 or train.local_epochs < 1 or train.learning_rate <= 0:
        raise JobError("train: batch_size and local_epochs must be >= 1, learning_rate > 0")
    rounds = _int(config.get("rounds"), "rounds", "rounds")
    if rounds < 1:
        raise JobError("rounds must be >= 1 (rule: rounds)")
    test_fraction = _float(config["split"]["test_fraction"], "split.test_fraction", "split")
    if not 0 < test_fraction < 1:
        raise JobError("split.test_fraction must be in (0, 1) (rule: split)")
    model_spec_from_config(config.get("model"), "model")  # a registry name, never a class path
    dp = _dp_settings(config.get("dp", {}))
    return Job(
        config=config,
        task=parse_task(config["task"], source="task config"),
        train=train,
        dp=dp,
        nodes=nodes,
        rounds=rounds,
        seed=_int(config.get("seed"), "seed", "seed", minimum=0),
        test_fraction=test_fraction,
        secure=parse_secure(config),
        deployment=parse_deployment(config),
        vertical=parse_vertical(config, names, dp),
    )


def run_ledger_file(config: Mapping[str, Any]) -> Path:
    """The run ledger: ``run.ledger`` when set, else ``run-ledger.jsonl`` in ``run.root``."""
    run_cfg = config.get("run") or {}
    if run_cfg.get("ledger"):
        return Path(str(run_cfg["ledger"])).expanduser()
    return Path(str(run_cfg.get("root", "runs"))).expanduser() / "run-ledger.jsonl"


def run_location(config: Mapping[str, Any], stamp: str) -> tuple[str, Path]:
    """The run id and directory for a run started at ``stamp``.

    Without an explicit ``run.dir`` the directory is ``<run.root>/<stamp>-<run.name>`` and must
    resolve inside ``run.root`` (checked again here, behind the safe-name rule).
    """
    run_cfg = config.get("run") or {}
    name = check_name(run_cfg.get("name"), "run.name")
    run_id = f"{stamp}-{name}"
    if run_cfg.get("dir"):
        return run_id, Path(str(run_cfg["dir"])).expanduser()
    root = Path(str(run_cfg.get("root", "runs"))).expanduser()
    run_dir = root / run_id
    if not run_dir.resolve().is_relative_to(root.resolve()):
        raise JobError(f"config run.name: {_NAME_RULE}")
    return run_id, run_dir


def check_run_ledger(config: Mapping[str, Any]) -> None:
    """Refuse to start when the run ledger exists and fails verification (chain, hashes, head,
    MACs with ``$CONFIDE_RUN_LEDGER_KEY_FILE``): a run could not be recorded at its end."""
    from confide.privacy.run_ledger import RunLedger, load_ledger_key

    path = run_ledger_file(config)
    if not path.exists() and not path.is_symlink():
        return
    result = RunLedger(path, key=load_ledger_key()).verify()
    if not result.ok:
        # the verifier's sentence, without the run id it may quote
        reason = re.sub(r" \(run [^)]*\)", "", result.message)
        raise JobError(f"{path}: {reason} (rule: run ledger integrity)")


def preflight_config(config: Mapping[str, Any]) -> Job:
    """Everything about a config that can be checked before a run starts: the job itself
    (names, numbers, types), where its run directory goes, and the run ledger's integrity."""
    job = parse_job(config)
    run_location(job.config, "00000000T000000000000Z")
    check_run_ledger(job.config)
    check_budget_anchors(job)
    return job


def check_budget_anchors(job: Job) -> None:
    """Refuse to start when a node's budget ledger was deleted or rewound since the run ledger
    anchored it (:func:`confide.privacy.run_ledger.check_node_budgets`)."""
    from confide.privacy.errors import PrivacyError
    from confide.privacy.run_ledger import check_node_budgets, load_ledger_key

    nodes = [
        (n.name, n.default_ledger())
        for n in job.nodes
        if n.ledger is not None or n.data is not None
    ]
    try:
        check_node_budgets(run_ledger_file(job.config), nodes, load_ledger_key())
    except PrivacyError as exc:
        raise JobError(str(exc)) from None
