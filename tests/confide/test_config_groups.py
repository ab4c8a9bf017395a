"""Every config group option composes, resolves, validates and instantiates."""

from pathlib import Path

import pytest

from confide import conf
from confide.config import ConfigError, compose_config, to_container
from confide.job import JobError, parse_job
from confide.modeling.factory import build_model
from confide.server.strategy import build_strategy

CONF_DIR = Path(conf.__file__).parent


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    ("group", "option"),
    [(g, o) for g in ("federation", "task", "model", "strategy", "dp") for o in options(g)],
)
def test_each_option_composes_and_validates(group, option):
    job = parse_job(to_container(compose_config([f"{group}={option}"])))
    assert job.nodes and job.task.input_dim > 0
    model = build_model(job.model_name, job.model_net.params, job.task.input_dim)
    assert sum(p.numel() for p in model.parameters()) > job.task.input_dim
    strategy = build_strategy(job.config["strategy"])
    assert type(strategy).__name__.lower() == job.strategy_name


def test_default_job_matches_the_design():
    job = parse_job(to_container(compose_config()))
    assert [n.name for n in job.nodes] == ["retailer", "ecommerce"]
    assert job.dp.enabled and job.dp.epsilon == 3.0
    assert job.strategy_name == "fedavg" and job.model_name == "logreg"


def test_unknown_option_and_bad_override_are_one_line_errors():
    with pytest.raises(ConfigError, match="config composition"):
        compose_config(["model=transformer"])
    with pytest.raises(JobError, match=r"dp\.epsilon"):
        parse_job(to_container(compose_config(["dp.epsilon=-1"])))
    with pytest.raises(ConfigError, match="--config-dir"):
        compose_config([], ["/nonexistent/confide-config"])


def test_user_config_dir_joins_the_search_path(tmp_path):
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "tiny.yaml").write_text(
        "name: tiny\nlabel: {name: churned, positive: 1, negative: 0}\n"
        "features:\n  - {name: age, type: numeric, min: 18, max: 85}\n"
    )
    job = parse_job(to_container(compose_config(["task=tiny"], [tmp_path])))
    assert job.task.name == "tiny" and job.task.input_dim == 1


def test_dp_off_is_explicit_and_nodes_need_a_source():
    job = parse_job(to_container(compose_config(["dp=off"])))
    assert not job.dp.enabled
    cfg = to_container(compose_config())
    cfg["federation"]["nodes"][0].pop("profile")
    with pytest.raises(JobError, match="exactly one of 'data'"):
        parse_job(cfg)
