"""Materialise a job's synthetic nodes: generate each node's data and keys at run time.

Each synthetic node gets a private folder (data CSV, key file with owner-only permissions,
budget ledger), the way a partner organisation would keep them next to its own node.
"""

from __future__ import annotations

from pathlib import Path

from confide.job import Job, NodeSpec
from privacy.keys import new_keyring_file
from simulations.node_profiles import get_profile
from simulations.synth import generate_customers, write_node_csv

__all__ = ["materialize_synthetic_nodes", "node_folder"]


def node_folder(nodes_root: Path, node: NodeSpec) -> Path:
    """The private folder of ``node`` under ``nodes_root``."""
    return nodes_root / node.name


def materialize_synthetic_nodes(job: Job, nodes_root: Path) -> Job:
    """Write data and keys for every synthetic node; returns the job with concrete paths."""
    nodes = []
    for node in job.nodes:
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
