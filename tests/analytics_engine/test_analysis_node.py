"""The node's analysis handler, called directly (no Flower, no Ray): it treats what it receives
as data, checks it against its own policy and budget, reserves and charges its one budget
ledger BEFORE anything is computed, and keeps segment assignments on the node."""

from __future__ import annotations

import json

import pytest

import confide.clients.analysis_node as analysis_node
from confide.analytics.spec import load_analysis_spec
from confide.clients.analysis_node import AnalysisRefusal, answer_analysis, plan, segments_path
from confide.clients.node_runtime import NodeRuntime
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.modeling.factory import build_model
from confide.privacy.budget_ledger import BudgetLedger
from confide.wire import AnalysisRequest, Proposal

from .conftest import query_spec, segments_spec


class Spy:
    """Counts calls of the node's data loader and of the library's computations."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[str] = []
        real_load = analysis_node.prepare_columns
        library = analysis_node._library()  # the modules the node imports on first use
        kmeans = analysis_node._kmeans()

        def load(*args, **kwargs):
            self.calls.append("read data")
            return real_load(*args, **kwargs)

        def wrap(module, name):
            real = getattr(module, name)

            def call(*args, **kwargs):
                self.calls.append(name)
                return real(*args, **kwargs)

            return call

        monkeypatch.setattr(analysis_node, "prepare_columns", load)
        monkeypatch.setattr(library, "release_node", wrap(library, "release_node"))
        for name in ("kmeans_node_step", "assign_segments"):
            monkeypatch.setattr(kmeans, name, wrap(kmeans, name))


CENTROIDS = [[30.0, 5.0, 1000.0], [120.0, 2.0, 300.0], [10.0, 20.0, 8000.0]]


def _ledger(node) -> BudgetLedger:
    return BudgetLedger(node.default_ledger(), node.name, 10.0)


def _train_one_round(node, epsilon: float) -> None:
    """One DP-SGD round of the shipped churn job on ``node`` (reserves ``epsilon``)."""
    one_step = ["train.local_epochs=1", "train.batch_size=400"]  # one full-batch step: fast
    job = parse_job(to_container(compose_config(["rounds=1", f"dp.epsilon={epsilon}", *one_step])))
    weights = build_model(job.model_name, job.model_net.params, job.task.input_dim, seed=1)
    proposal = Proposal("train-1", 1, 1, job.seed, job.dp, job.train)
    NodeRuntime(node, job.task, job.model_net, job.test_fraction).train(
        weights.state_dict(), proposal
    )


def _release(run_id: str, epsilon: float) -> AnalysisRequest:
    return AnalysisRequest(run_id, "release", query_spec(epsilon))


def test_one_ledger_training_3_analysis_2_then_a_request_for_6_is_refused_before_computing(
    node, monkeypatch
):
    """Must-show: lifetime 10; 3 spent on training, 2 on analytics; a request for 6 is refused
    before the data file is read or anything is computed."""
    ledger = _ledger(node)
    _train_one_round(node, epsilon=3.0)  # DP-SGD through the node's training runtime
    assert [(r.run_id, r.kind, r.charge) for r in ledger.runs()] == [("train-1", "training", 3.0)]
    spy = Spy(monkeypatch)
    release = answer_analysis(node, _release("analysis-1", 2.0))
    # control: the spy sees a computation when one happens (the data read, then the release)
    assert spy.calls == ["read data", "release_node"]
    assert release  # the node's noisy statistics
    assert [(r.run_id, r.kind, r.charge) for r in ledger.runs()] == [
        ("train-1", "training", 3.0),
        ("analysis-1", "analysis", 2.0),
    ]
    before = node.default_ledger().read_bytes()
    spy.calls.clear()
    with pytest.raises(AnalysisRefusal, match=r"rule: ANALYSIS-LIFETIME") as info:
        answer_analysis(node, _release("analysis-2", 6.0))
    assert "\n" not in str(info.value)
    assert spy.calls == []  # nothing read, nothing computed
    assert node.default_ledger().read_bytes() == before  # nothing reserved or charged
    answer_analysis(node, _release("analysis-3", 5.0))  # control: exactly the remainder is fine
    assert _ledger(node).spent() == pytest.approx(10.0, abs=1e-9)


def test_per_run_maximum_refuses_before_reading(node, monkeypatch):
    spy = Spy(monkeypatch)
    with pytest.raises(AnalysisRefusal, match=r"rule: ANALYSIS-EPS-RUN"):
        answer_analysis(node, _release("a", 8.5))  # policy: at most 8 per run
    assert spy.calls == [] and not node.default_ledger().exists()


def test_core_sensitive_group_by_is_refused_by_the_nodes_policy(node, monkeypatch):
    spec = query_spec(1.0)
    spec["columns"]["mobile"] = {"categories": ["138", "139"]}
    spec["queries"][1]["group_by"] = ["mobile"]
    spy = Spy(monkeypatch)
    with pytest.raises(AnalysisRefusal, match=r"rule: ANALYSIS-CS-COLUMN"):
        answer_analysis(node, AnalysisRequest("a", "release", spec))
    assert spy.calls == [] and not node.default_ledger().exists()


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda s: s["columns"]["monetary_12m"].update({"min": 30000}), "bounds inverted"),
        (lambda s: s["queries"][0].update({"column": "lifetime_value"}), "not declared"),
        (lambda s: s.update({"epsilon": 5.0}), "sum to"),  # parts no longer add up
        (lambda s: s.update({"_target_": "os.system"}), "unknown key"),
    ],
)
def test_a_tampered_spec_is_revalidated_and_refused(node, monkeypatch, change, rule):
    spec = query_spec(1.0)
    change(spec)
    spy = Spy(monkeypatch)
    with pytest.raises(AnalysisRefusal, match=rule) as info:
        answer_analysis(node, AnalysisRequest("a", "release", spec))
    assert "\n" not in str(info.value) and "os.system" not in str(info.value)
    assert spy.calls == [] and not node.default_ledger().exists()


def test_bad_data_is_refused_with_nothing_reserved(node, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,unexpected\n1,2\n", encoding="utf-8")
    node = type(node)(**{**node.__dict__, "data": bad})
    with pytest.raises(AnalysisRefusal, match=r"bad\.csv"):
        answer_analysis(node, _release("a", 1.0))
    assert not node.default_ledger().exists()


def test_steps_are_charged_once_and_in_order(node, monkeypatch):
    spec = segments_spec(iterations=2)
    with pytest.raises(AnalysisRefusal, match="no analysis reservation"):
        answer_analysis(node, AnalysisRequest("k", "kmeans", spec, 0))  # before the release
    assert not node.default_ledger().exists()
    answer_analysis(node, AnalysisRequest("k", "release", spec))
    entry = _ledger(node).run("k")
    assert (entry["reserved_epsilon"], entry["spent_epsilon"], entry["steps"]) == (2.0, 1.0, 1)
    steps = plan(load_analysis_spec(spec, "test"))
    # release 1.0, then init 20%, two Lloyd steps 20% each, final 40% of the segments' 1.0
    assert [(s.step, s.iteration) for s in steps] == [("release", 0)] + [
        ("kmeans", i) for i in range(4)
    ]
    assert [s.epsilon for s in steps] == pytest.approx([1.0, 0.2, 0.2, 0.2, 0.4], abs=1e-12)
    spy = Spy(monkeypatch)
    with pytest.raises(AnalysisRefusal, match="already charged or comes out of order"):
        answer_analysis(node, AnalysisRequest("k", "release", spec))  # a replay
    with pytest.raises(AnalysisRefusal, match="already charged or comes out of order"):
        answer_analysis(node, AnalysisRequest("k", "kmeans", spec, 1, CENTROIDS))  # skips 0
    with pytest.raises(AnalysisRefusal, match="not part of this analysis's plan"):
        answer_analysis(node, AnalysisRequest("k", "kmeans", spec, 7))
    with pytest.raises(AnalysisRefusal, match="needs 3 centroids of 3 features"):
        answer_analysis(node, AnalysisRequest("k", "kmeans", spec, 2, [[1.0, 2.0]]))
    assert spy.calls == []
    answer_analysis(node, AnalysisRequest("k", "kmeans", spec, 0))  # control: in order
    assert spy.calls == ["read data", "kmeans_node_step"]
    entry = _ledger(node).run("k")
    assert entry["steps"] == 2 and entry["spent_epsilon"] == pytest.approx(1.2, abs=1e-12)


def test_final_step_keeps_assignments_on_the_node(node):
    spec = segments_spec(iterations=1)
    answer_analysis(node, AnalysisRequest("s", "release", spec))
    answer_analysis(node, AnalysisRequest("s", "kmeans", spec, 0))
    centroids = CENTROIDS
    answer_analysis(node, AnalysisRequest("s", "kmeans", spec, 1, centroids))
    assert not segments_path(node, "s").exists()  # only the final step assigns
    release = answer_analysis(node, AnalysisRequest("s", "kmeans", spec, 2, centroids))
    path = segments_path(node, "s")
    assert path.parent.parent == node.default_ledger().parent  # beside the node's ledger
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "row,segment" and len(lines) == 1 + 400
    assert {line.split(",")[1] for line in lines[1:]} <= {"0", "1", "2", ""}  # "": missing
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # the reply carries statistics only: no row numbers, no assignment
    assert "row" not in json.dumps(release)
    entry = _ledger(node).run("s")
    assert entry["steps"] == 4 and entry["spent_epsilon"] == pytest.approx(2.0, abs=1e-12)


def test_a_spec_swapped_between_steps_is_charged_what_it_spends(node):
    """A coordinator that sends another spec at a later step cannot hide spend: each step adds
    its own epsilon to what the run spent (a plan recomputed from the new spec would charge 1.0
    here, 0.25 less than was spent), and the reservation still caps the run."""
    first = segments_spec(iterations=2)  # epsilon 2: release 1.0, segments 1.0
    answer_analysis(node, AnalysisRequest("w", "release", first))
    swapped = segments_spec(iterations=2)
    for query in swapped["queries"]:
        query["epsilon"] = 0.375  # release 0.75 ...
    swapped["segments"]["epsilon"] = 1.25  # ... and k-means init 0.2 * 1.25 = 0.25
    answer_analysis(node, AnalysisRequest("w", "kmeans", swapped, 0))
    assert _ledger(node).run("w")["spent_epsilon"] == pytest.approx(1.25, abs=1e-12)
    centroids = CENTROIDS
    answer_analysis(node, AnalysisRequest("w", "kmeans", swapped, 1, centroids))  # +0.25
    answer_analysis(node, AnalysisRequest("w", "kmeans", swapped, 2, centroids))  # +0.25
    with pytest.raises(AnalysisRefusal, match=r"rule: reservation"):
        answer_analysis(node, AnalysisRequest("w", "kmeans", swapped, 3, centroids))  # +0.5
    assert _ledger(node).run("w")["spent_epsilon"] == pytest.approx(1.75, abs=1e-12)
