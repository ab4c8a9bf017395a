"""The secure linear protocol's node steps (clients/vertical_linear_node.py), driven through
:func:`~confide.clients.vertical_node.answer_vertical` exactly as server/vertical_app.py relays
them (its ``_deal`` for the dealer's arrays): the whole sequence completes and matches the
in-process twin without DP, each node records its epsilon with DP, bad input is refused with
one line and writes nothing, and ``confide score`` scores with the stored models."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from flwr.supercore.task_identity import TaskIdentity

from confide.clients.vertical_node import (
    VerticalRefusal,
    answer_vertical,
    node_arrays,
    public_job,
)
from confide.clients.vertical_step import secret_order
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.modeling.vertical_linear import LinearVerticalModel, run_linear_vertical_arrays
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.secure_product import PairChannel
from confide.server.vertical_app import _deal
from confide.wire import VerticalRequest
from tests.vertical_org import write_vertical_org

__all__: list[str] = []

RUN = "r1"


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """Messages are created inside a Flower task; give this process one."""
    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 9)):
        monkeypatch.setattr(TaskIdentity, attr, value)


def org(root: Path, dp: str = "epsilon3", protocol: str = "secure_linear", **sizes: int):
    """The small org under ``root``: (job, the public job the coordinator sends)."""
    size = {"bank_rows": 300, "shop_rows": 250, "overlap": 200} | sizes
    conf = write_vertical_org(root, protocol=protocol, **size)
    if dp == "off":  # DP off needs columns the policies let leave without DP
        for name in ("bank", "shop"):
            path = root / name / "policy.yaml"
            policy = yaml.safe_load(path.read_text(encoding="utf-8"))
            for column in policy["columns"].values():
                if column["tier"] == "general_sensitive":
                    column["tier"] = "non_sensitive"
            policy["dp"]["require_dp"] = False
            path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    overrides = ["federation=vbank", "task=vchurn", f"run.root={root / 'runs'}", f"dp={dp}"]
    cfg = to_container(compose_config(overrides, [conf]))
    return parse_job(cfg), public_job(cfg)


class Flow:
    """The coordinator's relay of the secure linear steps, one step at a time."""

    def __init__(self, job, shared) -> None:
        self.job, self.shared = job, shared
        self.bank, self.shop = job.node("bank"), job.node("shop")
        self.label: dict[str, Any] = {}
        self.feature: dict[str, Any] = {}
        self.replies: dict[str, Any] = {}

    def ask(self, node, step: str, arrays: dict | None = None, state=None):
        own = self.label if node is self.bank else self.feature
        request = VerticalRequest(RUN, step, self.shared, arrays or {})
        reply = answer_vertical(node, request, own if state is None else state)
        self.replies[step] = reply
        return reply

    def psi(self):
        blind = self.ask(self.bank, "psi-blind")
        reblind = self.ask(self.shop, "psi-reblind", {"m1": blind.arrays["m1"]})
        self.dealt = _deal(blind, {"shop": reblind})
        self.match_arrays = {"m2:shop": reblind.arrays["m2"], "m3:shop": reblind.arrays["m3"]}
        for_label, _ = self.dealt["shop"]
        self.match_arrays.update({f"{k}:shop": v for k, v in for_label.items()})
        self.match_arrays["pair_key:shop"] = reblind.arrays["pair_key"]
        return self

    def match(self):
        self.ask(self.bank, "psi-match", self.match_arrays)
        return self

    def share_arrays(self) -> dict[str, np.ndarray]:
        m = self.replies["psi-match"].arrays
        return {
            "pair_key": m["pair_key:shop"],
            "sealed_cross": m["sealed_cross:shop"],
            "sealed_gram": m["sealed_gram:shop"],
            "test": m["test:shop"],
            **self.dealt["shop"][1],
        }

    def share(self):
        self.ask(self.shop, "vertical-share", self.share_arrays())
        return self

    def solve(self):
        answer = self.replies["vertical-share"].arrays
        keys = ("masked_cross", "masked_gram", "share_cross", "share_gram")
        self.ask(self.bank, "vertical-solve", {f"{k}:shop": answer[k] for k in keys})
        return self

    def score_arrays(self) -> dict[str, np.ndarray]:
        return {
            "weights": self.replies["vertical-solve"].arrays["weights:shop"],
            "test": self.replies["psi-match"].arrays["test:shop"],
        }

    def score(self):
        self.ask(self.shop, "vertical-score", self.score_arrays())
        return self

    def evaluate(self):
        logit = self.replies["vertical-score"].arrays["test_logit"]
        self.ask(self.bank, "vertical-evaluate", {"test_logit:shop": logit})
        return self

    def all(self):
        return self.psi().match().share().solve().score().evaluate()


def written(root: Path) -> dict[str, bytes]:
    """Every file the nodes wrote (anything beside their data, policy and keys; the ledger's
    empty lock file is the ledger's own)."""
    inputs = {"customers.csv", "policy.yaml", "keys.json"}
    out = {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in inputs and "conf" not in p.relative_to(root).parts
    }
    assert all(out[k] == b"" for k in out if k.endswith(".lock"))
    return {k: v for k, v in out.items() if not k.endswith(".lock")}


def refused(flow: Flow, node, step: str, arrays: dict, state=None) -> str:
    """The one-line refusal of ``step``; asserts it wrote nothing."""
    root = Path(flow.bank.data).parent.parent
    before = written(root)
    with pytest.raises(VerticalRefusal) as info:
        flow.ask(node, step, arrays, state)
    assert written(root) == before
    message = str(info.value)
    assert "\n" not in message and message
    return message


def aligned(job, label_state) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The label node's train+test rows and the feature node's rows of the same customers."""
    bank = node_arrays(job.node("bank"), job)
    shop = node_arrays(job.node("shop"), job)
    where = {key: i for i, key in enumerate(shop.ids)}
    rows = np.r_[np.asarray(label_state["train_rows"]), np.asarray(label_state["test_rows"])]
    other = np.asarray([where[bank.ids[r]] for r in rows.tolist()])
    assert bank.y is not None
    return bank.x[rows], shop.x[other], bank.y[rows], len(label_state["train_rows"])


# --- 1. the whole sequence ---------------------------------------------------------------------


def test_the_steps_complete_and_match_the_in_process_twin_without_dp(tmp_path):
    job, shared = org(tmp_path, dp="off")
    flow = Flow(job, shared).all()
    got = flow.replies["vertical-evaluate"].summary["global"]["roc_auc"]
    x_label, x_feat, y, n_train = aligned(job, flow.label)
    spec = job.vertical
    twin = run_linear_vertical_arrays(
        x_label,
        x_feat,
        y,
        np.arange(n_train),
        np.arange(n_train, len(y)),
        job.dp,
        job.dp,
        spec.label_row_clip,
        spec.feature_row_clip,
    )
    assert got > 0.6
    assert got == pytest.approx(twin.metrics["roc_auc"], abs=1e-6)
    # control: the label node alone (its own block) differs from the joint model
    alone = flow.replies["vertical-evaluate"].summary["label_alone"]["roc_auc"]
    assert abs(alone - got) > 1e-3


def test_with_dp_each_node_records_its_epsilon_and_only_models_and_ledgers_are_written(tmp_path):
    job, shared = org(tmp_path, dp="epsilon3")
    assert job.dp.enabled
    Flow(job, shared).all()
    for name in ("bank", "shop"):
        node = job.node(name)
        entry = BudgetLedger(node.default_ledger(), name, 10.0).run(RUN)
        assert entry is not None
        assert entry["spent_epsilon"] == pytest.approx(job.dp.epsilon, abs=1e-3)
    files = sorted(written(tmp_path))
    assert len(files) == 4
    ledgers = [f for f in files if f.endswith("ledger.json")]
    assert sorted(ledgers) == ["bank/ledger.json", "shop/ledger.json"]
    models = [f for f in files if f not in ledgers]
    assert [m.split("/")[0] for m in models] == ["bank", "shop"]
    assert "top" in models[0] and "bottom" in models[1]


# --- 2. refusals -------------------------------------------------------------------------------


def test_a_tampered_sealed_blob_is_refused(tmp_path):
    flow = Flow(*org(tmp_path)).psi().match()
    arrays = flow.share_arrays()
    blob = np.array(arrays["sealed_cross"], copy=True)
    blob[len(blob) // 2] ^= 1
    message = refused(flow, flow.shop, "vertical-share", arrays | {"sealed_cross": blob})
    assert "the sealed cross does not open under the run's pair key" in message
    flow.share()  # control: the untouched blob opens


def test_a_pair_key_from_another_key_pair_is_refused(tmp_path):
    flow = Flow(*org(tmp_path)).psi().match()
    _, other = PairChannel.generate()
    key = np.frombuffer(other, np.uint8).copy()
    message = refused(flow, flow.shop, "vertical-share", flow.share_arrays() | {"pair_key": key})
    assert "does not open under the run's pair key" in message


def test_weights_of_the_wrong_length_are_refused(tmp_path):
    flow = Flow(*org(tmp_path)).psi().match().share().solve()
    arrays = flow.score_arrays()
    short = np.asarray(arrays["weights"])[:1]
    message = refused(flow, flow.shop, "vertical-score", arrays | {"weights": short})
    assert "the weights do not match the node's features" in message
    flow.score()  # control: the right weights are scored


def test_more_test_positions_than_the_test_fraction_allows_are_refused(tmp_path):
    """F answers every test position with a clean (not DP) logit, so a coordinator that widened
    the set to all of F's records could read them; F refuses more than an honest label node
    can ask for, before it reserves or writes anything."""
    flow = Flow(*org(tmp_path, dp="epsilon3")).psi().match()
    state = flow.feature
    order = secret_order(state["order_seed"], int(state["n_positions"]))
    every = np.flatnonzero(order < int(state["n_rows"])).astype(np.int64)
    arrays = flow.share_arrays()
    assert len(arrays["test"]) < len(every)
    message = refused(flow, flow.shop, "vertical-share", arrays | {"test": every})
    assert "test positions, more than the job's test fraction allows" in message
    flow.share()  # control: the label node's own test positions are accepted


def test_a_replayed_share_is_refused_by_the_ledger(tmp_path):
    flow = Flow(*org(tmp_path, dp="epsilon3")).psi().match()
    replay_state = copy.deepcopy(flow.feature)
    flow.share()
    message = refused(flow, flow.shop, "vertical-share", flow.share_arrays(), replay_state)
    assert f"run '{RUN}' already trained and released on this node" in message


def test_a_split_learning_step_on_a_secure_linear_job_is_refused(tmp_path):
    flow = Flow(*org(tmp_path)).psi().match()
    m = flow.replies["psi-match"].arrays
    arrays = {"residual": np.zeros(4, np.float32), "test": m["test:shop"]}
    message = refused(flow, flow.shop, "vertical-bottom", arrays)
    assert message == (
        "node 'shop': step vertical-bottom is not a step of protocol secure_linear (rule: VFL-STEP)"
    )


def test_a_secure_linear_step_on_a_split_learning_job_is_refused(tmp_path):
    flow = Flow(*org(tmp_path, protocol="split_learning"))
    blind = flow.ask(flow.bank, "psi-blind")
    reblind = flow.ask(flow.shop, "psi-reblind", {"m1": blind.arrays["m1"]})
    assert "pair_key" not in reblind.arrays
    arrays = {
        "pair_key": np.zeros(32, np.uint8),
        "sealed_cross": np.zeros(64, np.uint8),
        "sealed_gram": np.zeros(64, np.uint8),
        "test": np.arange(3, dtype=np.int64),
        "deal_cross_key": np.zeros(32, np.uint8),
        "deal_cross_t": np.zeros(8, np.uint64),
        "deal_gram_key": np.zeros(32, np.uint8),
        "deal_gram_t": np.zeros(3, np.uint64),
    }
    message = refused(flow, flow.shop, "vertical-share", arrays)
    assert message == (
        "node 'shop': step vertical-share is not a step of protocol split_learning (rule: VFL-STEP)"
    )


@pytest.mark.parametrize("key", ["deal_cross_t", "deal_gram_t"])
def test_dealer_arrays_that_do_not_fit_are_refused(tmp_path, key):
    flow = Flow(*org(tmp_path)).psi().match()
    arrays = flow.share_arrays()
    message = refused(flow, flow.shop, "vertical-share", arrays | {key: arrays[key][:-1]})
    assert "does not fit" in message


def test_dealer_arrays_that_do_not_fit_are_refused_at_the_label_node(tmp_path):
    flow = Flow(*org(tmp_path)).psi()
    arrays = flow.match_arrays | {"deal_cross_u:shop": flow.match_arrays["deal_cross_u:shop"][:-1]}
    message = refused(flow, flow.bank, "psi-match", arrays)
    assert "does not fit" in message or "disagree" in message


# --- 4. scoring --------------------------------------------------------------------------------


def test_score_writes_key_and_probability_equal_to_the_models_prediction(tmp_path):
    from confide.clients.vertical_scoring import score_vertical

    job, shared = org(tmp_path, dp="epsilon3")
    flow = Flow(job, shared).all()
    out = tmp_path / "bank" / "scores.csv"
    result = score_vertical(job, RUN, out)
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["customer_id", "vchurn_probability"]
    bank = node_arrays(job.node("bank"), job, with_label=False)
    shop = node_arrays(job.node("shop"), job)
    where = {key: i for i, key in enumerate(shop.ids)}
    rows = np.asarray([r for r, key in enumerate(bank.ids) if key in where])
    assert result.scored == len(rows) == len(frame) == 200
    assert bank.pseudonyms is not None
    assert frame["customer_id"].astype(str).tolist() == [str(k) for k in bank.pseudonyms[rows]]
    spec = job.vertical
    model = LinearVerticalModel(
        np.asarray(flow.label["model_w_label"]),
        np.asarray(flow.replies["vertical-solve"].arrays["weights:shop"], np.float64),
        float(np.asarray(flow.label["model_bias"])[0]),
        spec.label_row_clip,
        spec.feature_row_clip,
    )
    other = np.asarray([where[bank.ids[r]] for r in rows.tolist()])
    expected = model.predict_proba(bank.x[rows], model.feature_logits(shop.x[other]))
    np.testing.assert_allclose(frame["vchurn_probability"].to_numpy(), expected, atol=1e-6, rtol=0)
    # control: another model's predictions differ by more than the tolerance
    shifted = model.predict_proba(bank.x[rows], model.feature_logits(shop.x[other]) + 0.1)
    assert np.abs(frame["vchurn_probability"].to_numpy() - shifted).max() > 1e-3
