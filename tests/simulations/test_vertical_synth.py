"""The built-in vertical federation's data: one seeded population split into a bank and an
e-commerce platform with a known overlap, join keys that differ only by full-width characters
or spaces, and a logistic ground truth whose Bayes ROC-AUC is documented."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from confide.config import compose_config, to_container
from confide.job import JobError, parse_job
from confide.privacy import load_policy
from confide.simulations.federation import materialize_synthetic_nodes
from confide.simulations.vertical_synth import (
    BANK_COLUMNS,
    DOCUMENTED_AUC,
    ECOMMERCE_COLUMNS,
    bank_only_probability,
    generate_population,
    ground_truth_auc,
)

ID = re.compile(r"U[0-9]{9}")
TOLERANCE = 0.015  # about 5 standard errors of a ROC-AUC on 30,000 people


def _nfkc(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


@pytest.fixture(scope="module")
def population():
    return generate_population(seed=3, bank_rows=4000, ecommerce_rows=3500, overlap=2800)


def test_node_sizes_and_the_overlap_are_exact(population):
    bank, shop = population.bank, population.ecommerce
    assert (len(bank), len(shop), population.overlap) == (4000, 3500, 2800)
    bank_ids = {_nfkc(v) for v in bank["customer_id"]}
    shop_ids = {_nfkc(v) for v in shop["customer_id"]}
    assert (len(bank_ids), len(shop_ids)) == (4000, 3500)  # unique after normalisation
    assert len(bank_ids & shop_ids) == 2800
    assert (len(bank_ids - shop_ids), len(shop_ids - bank_ids)) == (1200, 700)
    truth = population.truth
    assert len(truth) == 4000 + 3500 - 2800
    assert int(truth["in_bank"].sum()) == 4000 and int(truth["in_ecommerce"].sum()) == 3500


def test_join_keys_differ_only_by_width_and_spaces(population):
    shop = population.ecommerce["customer_id"]
    bank = population.bank["customer_id"]
    wide = shop[~shop.map(lambda v: v.strip(" \u3000").isascii())]
    spaced = shop[shop.map(lambda v: v != v.strip())]
    assert 0.02 < len(wide) / len(shop) < 0.06 and 0.015 < len(spaced) / len(shop) < 0.05
    assert 0.01 < bank.map(lambda v: v != v.strip()).mean() < 0.03
    assert all(ID.fullmatch(_nfkc(v)) for v in [*shop, *bank])
    # control: without NFKC and trimming the same customers do not match
    raw = set(bank) & set(shop)
    assert len(raw) < 2800 - 100
    assert not any(ID.fullmatch(v) for v in wide)


def test_columns_match_the_shipped_policies_and_only_the_bank_has_the_label(population):
    from pathlib import Path

    import confide.simulations as sims

    root = Path(sims.__file__).parent / "policies"
    load_policy(root / "bank_customers.yaml").check_columns(list(BANK_COLUMNS), "bank")
    load_policy(root / "ecommerce_customers.yaml").check_columns(list(ECOMMERCE_COLUMNS), "shop")
    assert tuple(population.bank.columns) == BANK_COLUMNS
    assert tuple(population.ecommerce.columns) == ECOMMERCE_COLUMNS
    assert "churned" not in population.ecommerce.columns


def test_the_same_person_has_the_same_identity_at_both_nodes(population):
    bank = population.bank.assign(key=population.bank["customer_id"].map(_nfkc))
    shop = population.ecommerce.assign(key=population.ecommerce["customer_id"].map(_nfkc))
    both = bank.merge(shop, on="key", suffixes=("_b", "_s"))
    assert len(both) == 2800
    assert (both["name_b"] == both["name_s"]).all() and (both["mobile_b"] == both["mobile_s"]).all()


def test_generation_is_deterministic_by_seed(population):
    again = generate_population(seed=3, bank_rows=4000, ecommerce_rows=3500, overlap=2800)
    assert again.bank.equals(population.bank) and again.ecommerce.equals(population.ecommerce)
    other = generate_population(seed=4, bank_rows=4000, ecommerce_rows=3500, overlap=2800)
    assert not other.bank["customer_id"].equals(population.bank["customer_id"])


def test_ground_truth_auc_matches_the_documented_values():
    measured = ground_truth_auc(seed=5, people=30_000, draws=400)
    for key in ("all_features", "bank_only"):
        assert abs(measured[key] - DOCUMENTED_AUC[key]) < TOLERANCE, (key, measured)
    assert abs(measured["positive_rate"] - DOCUMENTED_AUC["positive_rate"]) < 0.01
    # the join is worth it: the e-commerce features carry a large share of the signal
    assert DOCUMENTED_AUC["all_features"] - DOCUMENTED_AUC["bank_only"] > 0.1
    # control: the bank-only figure is outside the tolerance of the all-feature one
    assert abs(measured["bank_only"] - DOCUMENTED_AUC["all_features"]) > TOLERANCE


def test_the_bank_only_bayes_probability_is_calibrated_and_the_control_is_not():
    truth = generate_population(seed=6, bank_rows=30_000, ecommerce_rows=30_000, overlap=30_000)
    t = truth.truth
    p_bank = bank_only_probability(t["eta_bank"].to_numpy(), t["age"].to_numpy(), draws=400)
    y = t["churned"].to_numpy()
    assert abs(p_bank.mean() - y.mean()) < 0.01  # calibrated on average
    assert roc_auc_score(y, p_bank) < roc_auc_score(y, t["p_all"].to_numpy()) - 0.1
    shuffled = np.random.default_rng(0).permutation(y)  # control: labels without signal
    assert abs(roc_auc_score(shuffled, p_bank) - DOCUMENTED_AUC["bank_only"]) > TOLERANCE


def test_bad_sizes_are_refused():
    with pytest.raises(JobError, match=r"federation.overlap: must be a whole number from 1"):
        generate_population(seed=0, bank_rows=100, ecommerce_rows=50, overlap=60)
    with pytest.raises(JobError, match=r"federation.overlap"):
        generate_population(seed=0, bank_rows=100, ecommerce_rows=50, overlap=0)


def _small_job(**federation):
    config = to_container(compose_config(["federation=bank_ecommerce", "task=joint_churn"]))
    config["federation"]["nodes"][0]["rows"] = 1000
    config["federation"]["nodes"][1]["rows"] = 800
    config["federation"].update(federation)
    return parse_job(config)


def test_materialising_writes_each_node_like_a_horizontal_synthetic_node(tmp_path):
    from confide.clients.node_data import read_node_csv

    job = materialize_synthetic_nodes(_small_job(overlap=600), tmp_path)
    for node in job.nodes:
        assert node.data == tmp_path / node.name / "customers.csv"
        assert node.keys == tmp_path / node.name / "keys.json"
        assert node.ledger == tmp_path / node.name / "ledger.json"
        assert node.keys.stat().st_mode & 0o077 == 0
    bank, shop = (read_node_csv(n.data) for n in job.nodes)
    assert (len(bank), len(shop)) == (1000, 800)
    matched = {_nfkc(v) for v in bank["customer_id"]} & {_nfkc(v) for v in shop["customer_id"]}
    assert len(matched) == 600
    assert (shop["customer_id"] != shop["customer_id"].str.strip()).any()  # spaces survive CSV


def test_a_bad_overlap_key_is_refused(tmp_path):
    with pytest.raises(JobError, match=r"federation\.overlap: must be a whole number"):
        materialize_synthetic_nodes(_small_job(overlap="600"), tmp_path)
    with pytest.raises(JobError, match=r"federation\.overlap: must be a whole number from 1"):
        materialize_synthetic_nodes(_small_job(overlap=900), tmp_path)


def test_a_vertical_federation_needs_both_synthetic_profiles(tmp_path):
    config = to_container(compose_config(["federation=bank_ecommerce", "task=joint_churn"]))
    config["federation"]["nodes"][1]["profile"] = "vertical_bank"
    with pytest.raises(JobError, match="one node with profile vertical_bank and one with"):
        materialize_synthetic_nodes(parse_job(config), tmp_path)
