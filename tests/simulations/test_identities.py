"""Tests of the vectorised identity generators (validated by the privacy package's validators)."""

from __future__ import annotations

import inspect
import re
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from confide.privacy import geo_cn
from confide.privacy.validators import (
    is_luhn,
    is_national_id,
    luhn_check_digits,
    national_id_check_chars,
)
from confide.simulations import identities as ids

N = 5_000


def _gb11643_scalar(s: str) -> bool:
    """Independent scalar reference implementation of the ISO 7064 MOD 11-2 check."""
    if len(s) != 18 or not s[:17].isdigit():
        return False
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    total = sum(int(c) * w for c, w in zip(s[:17], weights, strict=True))
    return s[17] == "10X98765432"[total % 11]


def _luhn_scalar(s: str) -> bool:
    digits = [int(c) for c in reversed(s)]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return total % 10 == 0


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(123)


def test_names_are_chinese_with_one_or_two_given_characters(rng: np.random.Generator) -> None:
    gender = np.where(rng.random(N) < 0.5, "F", "M")
    names = ids.chinese_names(rng, N, gender)
    assert names.shape == (N,)
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,4}", s) for s in names)
    lengths = np.strings.str_len(names)
    assert 0.1 < (lengths == 2).mean() < 0.4  # single-character given names ~25%
    surnames = set(np.strings.slice(names, 0, 1))
    assert {"王", "李", "张"} <= surnames
    top = np.isin(np.strings.slice(names, 0, 1), ["王", "李", "张"]).mean()
    assert 0.15 < top < 0.28  # weighted: the three commonest surnames ~21%


def test_names_lean_to_gender(rng: np.random.Generator) -> None:
    female = ids.chinese_names(rng, N, "F")
    male = ids.chinese_names(rng, N, "M")
    assert (np.char.find(female, "娜") >= 0).sum() > (np.char.find(male, "娜") >= 0).sum()
    assert (np.char.find(male, "强") >= 0).sum() > (np.char.find(female, "强") >= 0).sum()
    with pytest.raises(ValueError, match="gender"):
        ids.chinese_names(rng, 3, ["F", "X", "M"])


def test_mobile_numbers(rng: np.random.Generator) -> None:
    mobiles = ids.mobile_numbers(rng, N)
    assert all(re.fullmatch(r"1[3-9]\d{9}", m) for m in mobiles)
    assert set(np.strings.slice(mobiles, 0, 2)) <= {"13", "15", "17", "18", "19"}
    assert len(set(mobiles)) > 0.99 * N


def test_national_ids_structure(rng: np.random.Generator) -> None:
    birth = np.datetime64("1940-01-01") + rng.integers(0, 24_000, size=N)
    gender = np.where(rng.random(N) < 0.5, "F", "M")
    province = rng.choice(ids.PROVINCES, size=N)
    codes = np.array([ids.PROVINCE_CODES[p] for p in province])
    out = ids.national_ids(rng, birth, gender, codes)
    assert is_national_id(pd.Series(out)).all()
    assert all(_gb11643_scalar(s) for s in out[:500])
    assert (np.strings.slice(out, 0, 2) == codes).all()
    assert (np.strings.slice(out, 6, 14) == np.strings.replace(birth.astype("U10"), "-", "")).all()
    parity = np.strings.slice(out, 16, 17).astype(int) % 2
    assert ((parity == 1) == (gender == "M")).all()
    assert (np.strings.slice(out, 14, 17) != "000").all()
    region = set(np.strings.slice(out, 0, 6))
    known = {code for c in ids.CITIES for code, _ in c.districts}
    assert region <= known
    assert (np.strings.slice(out, 17, 18) == "X").any()  # the check character can be X


def test_id_check_character_is_the_privacy_validators(rng: np.random.Generator) -> None:
    """The generator and the validator share one MOD 11-2 implementation; both agree with an
    independent scalar reference, and a corrupted check character is refused."""
    good = np.array(["11010519491231002X", "440524198001010013"])
    digits = np.array([[int(c) for c in s[:17]] for s in good])
    assert national_id_check_chars(digits).tolist() == ["X", "3"]
    assert is_national_id(pd.Series(good)).tolist() == [True, True]
    bad = pd.Series(["11010519491231002Y", "110105194912310021", "11010519490231002X"])
    assert is_national_id(bad).tolist() == [False, False, False]
    assert not any(_gb11643_scalar(s) for s in bad[:2])


def test_identities_keep_no_validators_or_province_table_of_their_own() -> None:
    source = inspect.getsource(ids)
    for copy in ("_check_gb11643", "_check_luhn", "_GB_WEIGHTS", "10X98765432", '"广东省"'):
        assert copy not in source, copy
    assert {p: geo_cn.PROVINCE_CODES[p] for p in ids.PROVINCES} == ids.PROVINCE_CODES
    assert geo_cn.PROVINCE_CODES["广东"] == "44" and len(geo_cn.PROVINCE_CODES) == 34


def test_identity_tables_are_package_data() -> None:
    data = resources.files("confide.simulations").joinpath("data")
    for name in ("cities.csv", "districts.csv", "surnames.csv", "given_names.csv"):
        assert data.joinpath(name).is_file(), name
    assert resources.files("confide.privacy").joinpath("data/provinces.csv").is_file()
    assert len(ids.CITIES) == 49 and ids.CITIES[0].districts[0] == ("110101", "东城区")


def test_unknown_province_code_refused(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="province code"):
        ids.national_ids(rng, np.array(["1990-01-01"], dtype="datetime64[D]"), ["F"], ["99"])


def test_bank_cards_are_unionpay_and_luhn_valid(rng: np.random.Generator) -> None:
    cards = ids.bank_cards(rng, N)
    assert all(re.fullmatch(r"62\d{14}(\d{3})?", c) for c in cards)
    lengths = set(np.strings.str_len(cards).tolist())
    assert lengths == {16, 19}
    assert is_luhn(pd.Series(cards)).all()
    assert all(_luhn_scalar(c) for c in cards[:500])


def test_card_check_digit_is_the_privacy_validators() -> None:
    payload = np.array([[int(c) for c in "411111111111111"], [int(c) for c in "000007992739871"]])
    assert luhn_check_digits(payload).tolist() == [1, 3]
    assert is_luhn(pd.Series(["4111111111111111", "5555555555554444"])).tolist() == [True, True]
    assert is_luhn(pd.Series(["4111111111111112", "79927398710", "62220a"])).tolist() == [
        False,
        False,
        False,
    ]


def test_emails(rng: np.random.Generator) -> None:
    names = ids.chinese_names(rng, N, "F")
    out = ids.emails(rng, names)
    assert all(re.fullmatch(r"[a-z0-9.]+@[a-z0-9]+\.(com|net)", e) for e in out)
    assert np.char.endswith(out, "@qq.com").mean() > 0.2
    wang = names[np.strings.startswith(names, "王")]
    wang_mail = ids.emails(rng, wang)
    non_qq = wang_mail[~np.char.endswith(wang_mail, "@qq.com")]
    assert len(non_qq) > 0
    assert (np.char.find(non_qq, "wang") >= 0).all()


def test_cities_and_addresses(rng: np.random.Generator) -> None:
    province = rng.choice(ids.PROVINCES, size=N)
    cities, tiers = ids.sample_cities(rng, province)
    by_name = {c.name: c for c in ids.CITIES}
    assert all(by_name[c].province == p for c, p in zip(cities, province, strict=True))
    assert all(by_name[c].tier == t for c, t in zip(cities, tiers, strict=True))
    assert set(tiers.tolist()) == {1, 2, 3, 4}
    out = ids.addresses(rng, cities)
    for a, c in zip(out[:1000], cities[:1000], strict=True):
        city = by_name[c]
        municipality = city.province in {"北京", "上海"}
        assert a.startswith(f"{c}市" if municipality else f"{city.province}省{c}市")
        assert f"{c}市" in a
        assert any(d in a for _, d in city.districts)
        assert re.search(r"(路|大道|街)\d+号", a)
    with pytest.raises(ValueError, match="province"):
        ids.sample_cities(rng, ["火星"])
    with pytest.raises(ValueError, match="city"):
        ids.addresses(rng, ["火星"])


def test_geography_codes_consistent() -> None:
    assert set(ids.PROVINCE_CODES) == set(ids.PROVINCES)
    for city in ids.CITIES:
        assert city.province in ids.PROVINCES
        assert 1 <= city.tier <= 4
        for code, _ in city.districts:
            assert re.fullmatch(r"\d{6}", code)
            assert code[:2] == ids.PROVINCE_CODES[city.province]
    tier1 = {c.name for c in ids.CITIES if c.tier == 1}
    assert tier1 == {"北京", "上海", "广州", "深圳"}
