"""A vertical node's side (clients/vertical_node.py): bad input fails with one line and writes
nothing; a coordinator that sends malformed arrays, extra arrays or extra keys is refused;
steps come in order; a node answers only its role's steps.

Everything here stops before a node plans or trains (fast); the full protocol runs in
tests/e2e/test_vertical_simulation.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.supercore.task_identity import TaskIdentity

from confide.clients import client_app
from confide.clients.vertical_node import VerticalRefusal, answer_vertical, public_job
from confide.code_identity import identity_run_config
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.privacy.psi import ELEMENT_SIZE
from confide.vertical_records import ARRAYS_KEY, request_records
from confide.wire import (
    VERTICAL_KEY,
    VerticalReply,
    VerticalRequest,
    VerticalWireError,
)
from tests.vertical_org import write_vertical_org

NODE_ID = 9


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """Messages are created inside a Flower task; give this process one."""
    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", NODE_ID)):
        monkeypatch.setattr(TaskIdentity, attr, value)


def _org(root: Path, **kwargs):
    conf = write_vertical_org(root, bank_rows=300, shop_rows=250, overlap=200, **kwargs)
    cfg = to_container(
        compose_config(["federation=vbank", "task=vchurn", f"run.root={root / 'runs'}"], [conf])
    )
    job = parse_job(cfg)
    return job, public_job(cfg)


def _written(root: Path) -> list[str]:
    """Files a node may write: its ledger, its models, anything new beside its data."""
    expected = {"customers.csv", "policy.yaml", "keys.json"}
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name not in expected and "conf" not in p.parts
    )


def _refusal(node, request, state=None) -> str:
    with pytest.raises(VerticalRefusal) as info:
        answer_vertical(node, request, {} if state is None else state)
    message = str(info.value)
    assert "\n" not in message
    return message


def _edit_csv(path: Path, edit) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame).to_csv(path, index=False)


def test_a_missing_join_key_column_is_one_line_and_writes_nothing(tmp_path):
    job, shared = _org(tmp_path)
    bank = job.node("bank")
    _edit_csv(bank.data, lambda f: f.drop(columns=["customer_id"]))
    message = _refusal(bank, VerticalRequest("r1", "psi-blind", shared))
    assert "join key column 'customer_id' is missing" in message
    assert "VFL-JOIN-KEY-MISSING" in message
    assert _written(tmp_path) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda f: f.assign(
                customer_id=["" if i < 3 else v for i, v in enumerate(f.customer_id)]
            ),
            "3 empty",
        ),
        (
            lambda f: f.assign(
                customer_id=[f.customer_id[0] if i < 4 else v for i, v in enumerate(f.customer_id)]
            ),
            "duplicated",
        ),
    ],
)
def test_empty_or_duplicated_join_keys_give_counts_never_values(tmp_path, edit, expected):
    job, shared = _org(tmp_path)
    shop = job.node("shop")
    before = pd.read_csv(shop.data, dtype=str, keep_default_na=False).customer_id.tolist()
    _edit_csv(shop.data, edit)
    message = _refusal(shop, VerticalRequest("r1", "psi-reblind", shared, _m1(3)))
    assert expected in message and "customer_id" in message
    assert not any(value.strip() and value.strip() in message for value in before)
    assert _written(tmp_path) == []


def test_a_missing_feature_at_its_node_is_one_line_and_writes_nothing(tmp_path):
    job, shared = _org(tmp_path)
    shop = job.node("shop")
    _edit_csv(shop.data, lambda f: f.drop(columns=["visits"]))
    message = _refusal(shop, VerticalRequest("r1", "vertical-check", shared))
    assert "'visits'" in message and "missing" in message
    assert _written(tmp_path) == []


def _psi(job, shared, run_id="r1"):
    """psi-blind at the bank and psi-reblind at the shop; returns the match request's state."""
    bank_state, shop_state = {}, {}
    blind = answer_vertical(
        job.node("bank"), VerticalRequest(run_id, "psi-blind", shared), bank_state
    )
    reblind = answer_vertical(
        job.node("shop"),
        VerticalRequest(run_id, "psi-reblind", shared, {"m1": blind.arrays["m1"]}),
        shop_state,
    )
    arrays = {"m2:shop": reblind.arrays["m2"], "m3:shop": reblind.arrays["m3"]}
    return VerticalRequest(run_id, "psi-match", shared, arrays), bank_state, shop_state


def test_no_overlap_stops_at_the_match_and_writes_nothing(tmp_path):
    job, shared = _org(tmp_path)
    _edit_csv(
        job.node("shop").data, lambda f: f.assign(customer_id=[f"S{i}" for i in range(len(f))])
    )
    request, bank_state, _ = _psi(job, shared)
    message = _refusal(job.node("bank"), request, bank_state)
    assert "no overlap" in message and "VFL-NO-OVERLAP" in message
    assert _written(tmp_path) == []


def test_an_overlap_below_the_minimum_stops_and_writes_nothing(tmp_path):
    job, shared = _org(tmp_path, min_overlap=201)
    request, bank_state, _ = _psi(job, shared)
    message = _refusal(job.node("bank"), request, bank_state)
    assert "200 aligned customers, below psi.min_overlap=201" in message
    assert "VFL-MIN-OVERLAP" in message
    assert _written(tmp_path) == []


def test_control_the_same_overlap_at_the_minimum_passes_the_check(tmp_path, monkeypatch):
    """Control for the two tests above: 200 aligned customers meet min_overlap=200, and the
    node goes on to plan (stopped here before any training by a sentinel)."""
    from confide.clients import vertical_node

    job, shared = _org(tmp_path, min_overlap=200)
    request, bank_state, _ = _psi(job, shared)

    class Planned(Exception):
        pass

    def sentinel(*args, **kwargs):
        raise Planned

    monkeypatch.setattr(vertical_node, "plan_label_node", sentinel)
    with pytest.raises(Planned):
        answer_vertical(job.node("bank"), request, bank_state)


def test_steps_come_in_order_and_only_to_their_role(tmp_path):
    job, shared = _org(tmp_path)
    bank, shop = job.node("bank"), job.node("shop")
    match = VerticalRequest("r1", "psi-match", shared, {"m2:shop": _blob(4), "m3:shop": _blob(4)})
    assert "must follow psi-blind" in _refusal(bank, match)
    assert "not a feature node's step" in _refusal(shop, VerticalRequest("r1", "psi-blind", shared))
    assert "not a label node's step" in _refusal(
        bank, VerticalRequest("r1", "psi-reblind", shared, _m1(2))
    )
    assert _written(tmp_path) == []


def test_a_job_asking_to_instantiate_code_is_refused(tmp_path):
    job, shared = _org(tmp_path)
    shared["model"]["net"] = {"_target_": "builtins.print"}
    message = _refusal(job.node("bank"), VerticalRequest("r1", "vertical-check", shared))
    assert "asks the node to instantiate code" in message
    assert _written(tmp_path) == []


def test_a_re_blinded_set_of_another_size_is_refused(tmp_path):
    job, shared = _org(tmp_path)
    request, bank_state, _ = _psi(job, shared)
    arrays = dict(request.arrays)
    arrays["m2:shop"] = arrays["m2:shop"][:-ELEMENT_SIZE]
    message = _refusal(
        job.node("bank"), VerticalRequest("r1", "psi-match", shared, arrays), bank_state
    )
    assert "re-blinded a set of another size" in message
    assert _written(tmp_path) == []


# --- the wire: malformed arrays and extra keys ---------------------------------------------


def _blob(n: int) -> np.ndarray:
    return np.zeros(n * ELEMENT_SIZE, dtype=np.uint8)


def _m1(n: int) -> dict:
    return {"m1": _blob(n)}


CONFIG = {"run-id": "r1", "step": "vertical-bottom", "job": "{}"}
GOOD = {"residual": np.zeros(4, np.float32), "test": np.array([1, 3], np.int64)}


@pytest.mark.parametrize(
    ("config", "arrays", "expected"),
    [
        ({**CONFIG, "extra": "x"}, GOOD, "exactly run-id, step and job"),
        ({**CONFIG, "step": "psi-anything"}, GOOD, "field 'step' must be one of"),
        ({**CONFIG, "run-id": "../x"}, GOOD, "field 'run-id'"),
        ({**CONFIG, "job": "[1]"}, GOOD, "field 'job' must be an object"),
        ({**CONFIG, "job": '{"a": NaN}'}, GOOD, "vertical message: field 'job' is not valid"),
        (CONFIG, {**GOOD, "other": np.zeros(1, np.float32)}, "unexpected array"),
        (CONFIG, {"residual": GOOD["residual"]}, "array 'test' is missing"),
        (CONFIG, {**GOOD, "residual": np.zeros(4, np.float64)}, "one-dimensional float32"),
        (CONFIG, {**GOOD, "residual": np.zeros((2, 2), np.float32)}, "one-dimensional float32"),
        (CONFIG, {**GOOD, "residual": np.array([0, np.nan], np.float32)}, "non-finite"),
        (CONFIG, {**GOOD, "residual": np.array([0, np.inf], np.float32)}, "non-finite"),
        (CONFIG, {**GOOD, "test": np.array([3, 1], np.int64)}, "increasing non-negative"),
        (CONFIG, {**GOOD, "test": np.array([-1, 1], np.int64)}, "increasing non-negative"),
        (CONFIG, {**GOOD, "test": np.array([1, 1], np.int64)}, "increasing non-negative"),
        (
            {**CONFIG, "step": "psi-reblind"},
            {"m1": np.zeros(ELEMENT_SIZE + 1, np.uint8)},
            "whole number of 32-byte group elements",
        ),
        (
            {**CONFIG, "step": "psi-match"},
            {"m2:shop": _blob(1)},
            "every feature node needs the arrays m2, m3",
        ),
        (
            {**CONFIG, "step": "psi-match"},
            {"m2:../x": _blob(1), "m3:../x": _blob(1)},
            "unexpected array",
        ),
    ],
)
def test_the_wire_refuses_malformed_requests(config, arrays, expected):
    with pytest.raises(VerticalWireError) as info:
        VerticalRequest.from_parts(config, arrays)
    assert expected in str(info.value) and "(rule: wire)" in str(info.value)


def test_control_a_well_formed_request_parses():
    request = VerticalRequest.from_parts(CONFIG, GOOD)
    assert request.step == "vertical-bottom" and set(request.arrays) == {"residual", "test"}
    reply = VerticalReply("vertical-check", {"role": "label"})
    assert VerticalReply.from_parts(reply.to_config(), {}).summary == {"role": "label"}


def _context(job, tmp_path) -> Context:
    node = job.node("bank")
    return Context(
        run_id=1,
        node_id=NODE_ID,
        node_config={
            "name": node.name,
            "data-path": str(node.data),
            "policy-path": str(node.policy),
            "keys-path": str(node.keys),
            "ledger-path": str(node.ledger),
        },
        state=RecordDict(),
        run_config=identity_run_config(),
    )


def _status(reply: Message) -> dict:
    return dict(reply.content.config_records["confide"])


def test_the_client_app_refuses_extra_records_and_arrays_of_a_coordinator(tmp_path):
    job, shared = _org(tmp_path)
    request = VerticalRequest("r1", "psi-blind", shared)
    records = request_records(request)
    extra = RecordDict({**records, "sneaky": ConfigRecord({"x": 1})})
    reply = client_app.app(
        Message(extra, dst_node_id=NODE_ID, message_type=MessageType.QUERY), _context(job, tmp_path)
    )
    assert _status(reply)["status"] == "refused"
    assert "unexpected record" in _status(reply)["reason"]
    arrays = RecordDict(
        {
            VERTICAL_KEY: records[VERTICAL_KEY],
            ARRAYS_KEY: ArrayRecord({"m1": Array(_blob(2))}),  # psi-blind carries no array
        }
    )
    reply = client_app.app(
        Message(arrays, dst_node_id=NODE_ID, message_type=MessageType.QUERY),
        _context(job, tmp_path),
    )
    assert _status(reply)["status"] == "refused"
    assert "unexpected array" in _status(reply)["reason"]
    assert _written(tmp_path) == []


def test_control_the_client_app_answers_a_well_formed_step_under_a_supernode(tmp_path):
    """The deployment ClientApp answers psi-blind from its --node-config and keeps its PSI
    seed in its context state, never in the reply."""
    job, shared = _org(tmp_path)
    context = _context(job, tmp_path)
    message = Message(
        RecordDict(request_records(VerticalRequest("r1", "psi-blind", shared))),
        dst_node_id=NODE_ID,
        message_type=MessageType.QUERY,
    )
    reply = client_app.app(message, context)
    assert _status(reply)["status"] == "ok"
    m1 = reply.content.array_records[ARRAYS_KEY]["m1"].numpy()
    assert len(m1) == 300 * ELEMENT_SIZE
    seed = context.state.config_records["confide.vertical.state"]["psi_seed"]
    assert isinstance(seed, bytes) and len(seed) == 32
    assert seed not in m1.tobytes() and seed.hex() not in json.dumps(
        dict(reply.content.config_records[VERTICAL_KEY])
    )
    assert _written(tmp_path) == []


def test_a_replayed_training_step_is_refused_by_the_ledger_and_changes_nothing(tmp_path):
    """The run already holds an entry in the bank's ledger (it trained and released): the
    match step is refused before it trains, and the ledger is left as it was."""
    from confide.privacy.budget_ledger import BudgetLedger

    job, shared = _org(tmp_path)
    bank = job.node("bank")
    ledger = BudgetLedger(bank.default_ledger(), "bank", 10.0)
    ledger.reserve("r1", 3.0, 1e-5)
    before = bank.default_ledger().read_bytes()
    request, bank_state, _ = _psi(job, shared)
    message = _refusal(bank, request, bank_state)
    assert "run 'r1' already trained and released on this node" in message
    assert bank.default_ledger().read_bytes() == before
    assert not (tmp_path / "bank" / "models").exists()


def test_padding_hides_the_set_sizes_and_keeps_the_intersection_exact(tmp_path, monkeypatch):
    """psi.pad_to=500: every blinded set has 500 elements (300 bank and 250 shop customers
    hidden among random dummies); the match still finds exactly the 200 common customers
    (160 training rows after the 20% test split reach the plan; stopped there by a sentinel)."""
    from confide.clients import vertical_node

    job, shared = _org(tmp_path)
    shared["federation"]["psi"]["pad_to"] = 500
    bank_state, shop_state = {}, {}
    blind = answer_vertical(
        job.node("bank"), VerticalRequest("r1", "psi-blind", shared), bank_state
    )
    reblind = answer_vertical(
        job.node("shop"),
        VerticalRequest("r1", "psi-reblind", shared, {"m1": blind.arrays["m1"]}),
        shop_state,
    )
    assert (
        blind.summary == {"elements": 500, "feature_dim": 2}
        and len(blind.arrays["m1"]) == 500 * ELEMENT_SIZE
    )
    assert reblind.summary == {"elements": 500, "received": 500, "feature_dim": 2}
    assert len(reblind.arrays["m3"]) == 500 * ELEMENT_SIZE
    seen = {}

    class Planned(Exception):
        pass

    def sentinel(dp, n_rows, *args, **kwargs):
        seen["n_rows"] = n_rows
        raise Planned

    monkeypatch.setattr(vertical_node, "plan_label_node", sentinel)
    arrays = {"m2:shop": reblind.arrays["m2"], "m3:shop": reblind.arrays["m3"]}
    with pytest.raises(Planned):
        answer_vertical(
            job.node("bank"), VerticalRequest("r1", "psi-match", shared, arrays), bank_state
        )
    assert seen == {"n_rows": 160}
    shared["federation"]["psi"]["pad_to"] = 299  # control: below the bank's 300 customers
    message = _refusal(job.node("bank"), VerticalRequest("r2", "psi-blind", shared))
    assert "psi.pad_to=299 is below the node's set size" in message


def _order_seed_after_reblind(job, shared, run_id: str, noise: str | None) -> bytes:
    blind = answer_vertical(job.node("bank"), VerticalRequest(run_id, "psi-blind", shared), {})
    state: dict = {}
    request = VerticalRequest(run_id, "psi-reblind", shared, {"m1": blind.arrays["m1"]})
    answer_vertical(job.node("shop"), request, state, noise)
    return state["order_seed"]


def test_the_secret_position_order_is_fresh_under_secure_noise_and_reproducible_when_seeded(
    tmp_path,
):
    """Seeded noise (simulation) makes a run reproducible, order included, as horizontal runs
    are; a node with secure noise (deployment) draws a fresh order for every run."""
    job, shared = _org(tmp_path)
    seeded = {_order_seed_after_reblind(job, shared, run, "seeded") for run in ("r1", "r2")}
    fresh = {_order_seed_after_reblind(job, shared, run, "secure") for run in ("r1", "r1")}
    assert len(seeded) == 1
    assert len(fresh) == 2 and not fresh & seeded


def test_split_learning_refuses_more_test_positions_than_the_test_fraction_allows(tmp_path):
    """The clean test embeddings are not DP: F refuses a test set wider than an honest label
    node can ask for (the secure linear protocol's test is in test_vertical_linear_node)."""
    from confide.clients.vertical_step import secret_order

    job, shared = _org(tmp_path)
    request, bank_state, shop_state = _psi(job, shared)
    match = answer_vertical(job.node("bank"), request, bank_state)
    honest = {"residual": match.arrays["residual:shop"], "test": match.arrays["test:shop"]}
    order = secret_order(shop_state["order_seed"], int(shop_state["n_positions"]))
    every = np.flatnonzero(order < int(shop_state["n_rows"])).astype(np.int64)
    wide = VerticalRequest("r1", "vertical-bottom", shared, honest | {"test": every})
    message = _refusal(job.node("shop"), wide, dict(shop_state))
    assert "test positions, more than the job's test fraction allows" in message
    assert not (tmp_path / "shop" / "ledger.json").exists()
    # control: the label node's own test positions are accepted
    bottom = VerticalRequest("r1", "vertical-bottom", shared, honest)
    assert answer_vertical(job.node("shop"), bottom, shop_state).step == "vertical-bottom"
