"""Materialise a job's synthetic nodes: generate each node's data and keys at run time.

Each synthetic node gets a private folder (data CSV, key file with owner-only permissions,
budget ledger), the way a partner organisation would keep them next to its own node.

A partitioned federation (``source`` + ``partition`` instead of ``nodes``) is split here: the
source (a synthetic profile or a user's single CSV, checked against its policy first) is cut
into the configured scenario's parts (``simulations.partitioning``), each part written as its
node's CSV, and ``partition.json`` records each node's rows and positive rate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from confide.clients.node_data import read_node_csv
from confide.core.files import atomic_write_text
from confide.job import Job, NodeSpec, resolve_path
from confide.modeling.errors import DataError
from confide.privacy import Tier, load_policy
from confide.privacy.keys import new_keyring_file
from confide.simulations.node_profiles import get_profile
from confide.simulations.partitioning import describe_partition, parse_partition, partition_indices
from confide.simulations.synth import generate_customers, write_node_csv
from confide.simulations.vertical_synth import write_vertical_nodes

__all__ = ["PARTITION_FILE", "materialize_synthetic_nodes", "node_folder"]

PARTITION_FILE = "partition.json"


def node_folder(nodes_root: Path, node: NodeSpec) -> Path:
    """The private folder of ``node`` under ``nodes_root``."""
    return nodes_root / node.name


def _source_frame(job: Job) -> tuple[pd.DataFrame, str]:
    source = job.config["federation"]["source"]
    if source.get("profile"):
        profile = get_profile(str(source["profile"]), source.get("rows"))
        frame = generate_customers(profile, job.seed).frame
        return frame, f"synthetic profile '{profile.name}'"
    path = resolve_path(source["data"], "federation.source")
    frame = read_node_csv(path)
    load_policy(resolve_path(source["policy"], "federation.source")).check_columns(
        list(frame.columns), source=str(path)
    )
    return frame, str(path)


def _split_source(job: Job, nodes_root: Path) -> dict[int, Path]:
    """Cut the federation's source into its nodes' CSVs; returns part index -> CSV path."""
    spec = parse_partition(job.config["federation"]["partition"])
    frame, where = _source_frame(job)
    policy = load_policy(job.nodes[0].policy)
    label_rule = policy.column_for(job.task.label.name)
    labels = frame[label_rule.name].to_numpy() if label_rule and label_rule.name in frame else None
    values = None
    if spec.column is not None:
        if spec.column not in frame.columns:
            raise DataError(
                f"{where}: partition column '{spec.column}' is not in the data (rule: partition)"
            )
        rule = policy.columns.get(spec.column)
        if rule is None or rule.tier is Tier.CORE_SENSITIVE:
            raise DataError(
                f"{where}: partition column '{spec.column}' is core-sensitive or not in the "
                "policy; split by a non-sensitive or general-sensitive column (rule: partition)"
            )
        values = frame[spec.column].to_numpy()
    parts = partition_indices(spec, len(frame), job.seed, labels=labels, values=values)
    if spec.column is not None and policy.columns[spec.column].tier is not Tier.NON_SENSITIVE:
        values = None  # partition.json names the values only for non-sensitive columns
    paths = {}
    for index, (name, rows) in enumerate(zip(spec.node_names(), parts, strict=True)):
        target = nodes_root / name / "customers.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, frame.iloc[rows].to_csv(index=False, lineterminator="\n"))
        paths[index] = target
    summary = describe_partition(spec, parts, labels, job.task.label.positive, values)
    summary["source"] = where
    atomic_write_text(nodes_root / PARTITION_FILE, json.dumps(summary, indent=2) + "\n")
    return paths


def materialize_synthetic_nodes(job: Job, nodes_root: Path) -> Job:
    """Write data and keys for every synthetic or partitioned node; returns the job with
    concrete paths."""
    if job.vertical is not None and any(n.synthetic for n in job.nodes):
        return write_vertical_nodes(job, nodes_root)  # one population for both nodes
    pending = any(n.part is not None and n.data is None for n in job.nodes)
    parts = _split_source(job, nodes_root) if pending else {}
    nodes = []
    for node in job.nodes:
        if node.part is not None and node.data is None:
            folder = node_folder(nodes_root, node)
            keys = node.keys
            if keys is None:
                keys = folder / "keys.json"
                new_keyring_file(keys)
            spec = node.with_paths(parts[node.part], node.ledger or folder / "ledger.json")
            nodes.append(NodeSpec(**{**spec.__dict__, "keys": keys}))
            continue
        if not node.synthetic:
            nodes.append(node)
            continue
        folder = node_folder(nodes_root, node)
        profile = get_profile(str(node.profile), node.rows)
        data = write_node_csv(generate_customers(profile, job.seed), folder / "customers.csv")
        keys = node.keys
        if keys is None:
            keys = folder / "keys.json"
            new_keyring_file(keys)
        ledger = node.ledger or folder / "ledger.json"
        spec = node.with_paths(data, ledger)
        nodes.append(NodeSpec(**{**spec.__dict__, "keys": keys}))
    return job.with_nodes(tuple(nodes))
