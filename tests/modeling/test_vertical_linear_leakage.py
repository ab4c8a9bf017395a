"""What the secure linear protocol lets the feature node and the coordinator see of the labels.

The feature node opens the label node's sealed columns with its own channel, exactly as its
vertical-share step does; the ``y - 0.5`` column it receives (the int64 view of the fixed-point
ring, over 2^16) at the aligned training positions gives the label-leakage attacks nothing
(AUCs near 0.5). Control: the same column without the dealer's mask gives them the labels.
The coordinator relays only sealed arrays: a channel from its own fresh key pair does not open
them (control: the right peer does)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.supercore.task_identity import TaskIdentity

from confide.core.errors import ConfideError
from confide.modeling.label_leakage import attack_aucs
from confide.privacy import PrivacyError
from confide.privacy.secure_product import FRACTION_BITS, PairChannel
from tests.clients.test_vertical_linear_node import RUN, Flow, org

__all__: list[str] = []


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """Messages are created inside a Flower task; give this process one."""
    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 9)):
        monkeypatch.setattr(TaskIdentity, attr, value)


def _decode(column: np.ndarray) -> np.ndarray:
    """A ring column as the real numbers it encodes (int64 view over 2^FRACTION_BITS)."""
    return np.ascontiguousarray(column, dtype=np.uint64).view(np.int64) / float(2**FRACTION_BITS)


def test_the_feature_nodes_view_of_the_label_column_gives_the_attacks_nothing(tmp_path):
    flow = Flow(*org(tmp_path, bank_rows=3000, shop_rows=2800, overlap=2500)).psi()
    secret = flow.feature["pair_secret"]  # F's half of the pair key, kept in its state
    flow.match()
    arrays = flow.replies["psi-match"].arrays
    channel = PairChannel(secret, arrays["pair_key:shop"].tobytes(), RUN, ("shop", "bank"))
    plain = np.asarray(flow.label["q_cross:shop"])  # L's unmasked encoding (control)
    width = plain.shape[1]
    n_pos = int(flow.feature["n_positions"])
    received = channel.open(arrays["sealed_cross:shop"], "cross", np.uint64, (n_pos, width))
    at = np.flatnonzero(np.asarray(flow.label["q_gram:shop"]).reshape(-1))  # training positions
    truth = _decode(plain[at, -1])  # y - 0.5
    assert set(np.round(truth, 6).tolist()) == {-0.5, 0.5}
    y = (truth > 0).astype(int)
    assert len(at) == len(flow.label["train_rows"]) >= 1900
    masked = attack_aucs(_decode(received[at, -1]), y)
    assert all(abs(auc - 0.5) <= 0.05 for auc in masked.values()), masked
    control = attack_aucs(truth, y)
    assert max(control.values()) >= 0.95, control


def _does_not_open(channel: PairChannel, blob: np.ndarray, label: str, shape) -> bool:
    try:
        channel.open(blob, label, np.uint64, shape)
    except (ConfideError, PrivacyError):
        return True
    return False


def test_every_array_the_coordinator_relays_between_the_nodes_is_sealed(tmp_path):
    flow = Flow(*org(tmp_path)).psi()
    shop_secret = flow.feature["pair_secret"]
    flow.match()
    m = flow.replies["psi-match"].arrays
    bank_secret = flow.label["pair_secret:shop"]
    bank_public, shop_public = m["pair_key:shop"].tobytes(), flow.match_arrays["pair_key:shop"]
    shop_public = shop_public.tobytes()
    flow.share()
    s = flow.replies["vertical-share"].arrays
    n_pos, d_feature = int(flow.feature["n_positions"]), 2
    width = np.asarray(flow.label["q_cross:shop"]).shape[1]
    to_shop = {  # L -> F in psi-match
        "cross": (m["sealed_cross:shop"], (n_pos, width)),
        "gram": (m["sealed_gram:shop"], (n_pos, 1)),
    }
    to_bank = {  # F -> L in vertical-share
        "masked_feature_cross": (s["masked_cross"], (n_pos, d_feature)),
        "masked_feature_gram": (s["masked_gram"], (n_pos, d_feature * (d_feature + 1) // 2)),
        "share_cross": (s["share_cross"], (d_feature, width)),
        "share_gram": (s["share_gram"], (d_feature * (d_feature + 1) // 2, 1)),
    }
    own_secret, _ = PairChannel.generate()  # the coordinator's own fresh key pair
    for roles, public, blobs in (
        (("shop", "bank"), bank_public, to_shop),
        (("bank", "shop"), shop_public, to_bank),
    ):
        coordinator = PairChannel(own_secret, public, RUN, roles)
        for label, (blob, shape) in blobs.items():
            assert _does_not_open(coordinator, blob, label, shape), label
    # control: the right peer opens each of them
    shop_channel = PairChannel(shop_secret, bank_public, RUN, ("shop", "bank"))
    bank_channel = PairChannel(bank_secret, shop_public, RUN, ("bank", "shop"))
    for channel, blobs in ((shop_channel, to_shop), (bank_channel, to_bank)):
        for label, (blob, shape) in blobs.items():
            assert channel.open(blob, label, np.uint64, shape).shape == shape
