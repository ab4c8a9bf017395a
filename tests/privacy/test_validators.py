import pandas as pd

from confide.privacy import is_email, is_luhn, is_mobile, is_national_id


def test_national_id_checksum_and_dates():
    s = pd.Series(
        [
            "11010519491231002X",  # valid
            "110105194912310021",  # bad checksum
            "11010519490231002X",  # 31 Feb... (checksum adjusted below)
            "１１０１０５１９４９１２３１００２Ｘ",  # full width
            "11010519491231002x",
            None,
            "abc",
            "1101051949123100",
        ]
    )
    assert is_national_id(s).tolist() == [True, False, False, True, True, False, False, False]


def _with_check(body17):
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body17 + "10X98765432"[sum(int(c) * k for c, k in zip(body17, w, strict=True)) % 11]


def test_national_id_impossible_dates_even_with_valid_checksum():
    good = _with_check("11010520000229123")  # 29 Feb 2000 exists
    feb30 = _with_check("11010520230230123")
    feb29 = _with_check("11010520230229123")  # 2023 is not a leap year
    month13 = _with_check("11010520231301123")
    old = _with_check("11010518991231123")
    future = _with_check("11010521990101123")
    out = is_national_id(pd.Series([good, feb30, feb29, month13, old, future]))
    assert out.tolist() == [True, False, False, False, False, False]


def test_mobile():
    s = pd.Series(
        [
            "13800138000",
            "+86 138-0013-8000",
            "12800138000",
            "１３８００１３８０００",
            None,
            "1380013800",
            13800138000,
        ]
    )
    assert is_mobile(s).tolist() == [True, True, False, True, False, False, True]


def test_luhn():
    s = pd.Series(
        [
            "4111111111111111",
            "4111111111111112",
            "4111 1111 1111 1111",
            "000000000000",
            None,
            "79927398713",
            "６２２２０２０２０２０２０２０２０００",  # full width, valid check digit
            "６２２２０２０２０２０２０２０２００１",  # full width, wrong check digit
        ]
    )
    assert is_luhn(s).tolist() == [True, False, True, False, False, False, True, False]


def test_email():
    s = pd.Series(
        ["a@b.com", "first.last+tag@sub.example.cn", "a@b", "x y@b.com", None, "@b.com", "a@-b.com"]
    )
    assert is_email(s).tolist() == [True, True, False, False, False, False, False]
