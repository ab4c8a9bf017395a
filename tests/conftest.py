"""Shared fixtures: small synthetic node files, composed configs, quiet torch threads."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
torch.set_num_threads(1)


@pytest.fixture
def churn_task():
    """The shipped churn task spec."""
    from confide.config import compose_config, to_container
    from confide.modeling.task_spec import parse_task_spec

    return parse_task_spec(to_container(compose_config())["task"])
