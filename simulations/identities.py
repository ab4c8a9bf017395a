"""Vectorised generators of realistic (but fictitious) Chinese customer identity fields.

Every generator takes a :class:`numpy.random.Generator` and returns a numpy array of ``str``
with one value per customer; no per-row Python loops, so a million rows take well under a
second per field.

- :func:`chinese_names` — weighted common surnames (a few compound ones), one or two
  gender-leaning given-name characters.
- :func:`mobile_numbers` — 11 digits on real mainland prefixes (13x/15x/17x/18x/19x).
- :func:`national_ids` — 18-character resident identity numbers per GB 11643-1999: a real
  6-digit region code in the customer's province, the 8-digit birth date, a 3-digit sequence
  whose last digit is odd for men and even for women, and the ISO 7064 MOD 11-2 check
  character (``0``–``9`` or ``X``).
- :func:`emails` — pinyin of the name plus digits on common domains, or numeric QQ mail.
- :func:`addresses` — province + city + district + road + number (+ building/room).
- :func:`bank_cards` — UnionPay debit card numbers (BIN starting ``62``, 16 or 19 digits)
  with a valid Luhn check digit.

The geography (10 provinces, their cities with tier 1–4 and real district region codes) is
exported as :data:`PROVINCES`, :data:`PROVINCE_CODES` and :data:`CITIES`; :func:`sample_cities`
draws a city for each customer's province.

``_check_gb11643`` and ``_check_luhn`` are vectorised validators used by the tests only; the
privacy package has its own public validators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CITIES",
    "PROVINCES",
    "PROVINCE_CODES",
    "City",
    "addresses",
    "bank_cards",
    "chinese_names",
    "emails",
    "mobile_numbers",
    "national_ids",
    "sample_cities",
]

StrArray = NDArray[np.str_]


# --------------------------------------------------------------------------- geography


@dataclass(frozen=True)
class City:
    """A city: its province, tier (1 = 北上广深 … 4 = smaller prefecture cities), relative
    population weight within the province and ``(region code, district name)`` pairs."""

    province: str
    name: str
    tier: int
    weight: float
    districts: tuple[tuple[str, str], ...]


#: The ten provinces (short names, as written in the ``province`` column).
PROVINCES: tuple[str, ...] = (
    "北京",
    "上海",
    "广东",
    "浙江",
    "江苏",
    "四川",
    "湖北",
    "山东",
    "福建",
    "陕西",
)

#: GB/T 2260 two-digit province codes (the first two digits of a national ID).
PROVINCE_CODES: dict[str, str] = {
    "北京": "11",
    "上海": "31",
    "广东": "44",
    "浙江": "33",
    "江苏": "32",
    "四川": "51",
    "湖北": "42",
    "山东": "37",
    "福建": "35",
    "陕西": "61",
}

_PROVINCE_FULL: dict[str, str] = {
    "北京": "北京市",
    "上海": "上海市",
    "广东": "广东省",
    "浙江": "浙江省",
    "江苏": "江苏省",
    "四川": "四川省",
    "湖北": "湖北省",
    "山东": "山东省",
    "福建": "福建省",
    "陕西": "陕西省",
}
_MUNICIPALITIES = frozenset({"北京", "上海"})


def _c(province: str, name: str, tier: int, weight: float, *districts: str) -> City:
    pairs = tuple((d[:6], d[6:]) for d in districts)
    return City(province, name, tier, weight, pairs)


#: Cities per province with real GB/T 2260 district codes.
CITIES: tuple[City, ...] = (
    _c(
        "北京",
        "北京",
        1,
        1.0,
        "110101东城区",
        "110102西城区",
        "110105朝阳区",
        "110106丰台区",
        "110107石景山区",
        "110108海淀区",
    ),
    _c(
        "上海",
        "上海",
        1,
        1.0,
        "310101黄浦区",
        "310104徐汇区",
        "310105长宁区",
        "310106静安区",
        "310107普陀区",
        "310115浦东新区",
    ),
    _c("广东", "广州", 1, 0.26, "440103荔湾区", "440104越秀区", "440106天河区", "440111白云区"),
    _c("广东", "深圳", 1, 0.25, "440303罗湖区", "440304福田区", "440305南山区", "440306宝安区"),
    _c("广东", "东莞", 2, 0.15, "441900南城街道"),
    _c("广东", "佛山", 2, 0.14, "440604禅城区", "440606顺德区"),
    _c("广东", "汕头", 3, 0.08, "440507龙湖区"),
    _c("广东", "湛江", 3, 0.07, "440802赤坎区"),
    _c("广东", "梅州", 4, 0.05, "441402梅江区"),
    _c("浙江", "杭州", 2, 0.33, "330102上城区", "330106西湖区", "330108滨江区"),
    _c("浙江", "宁波", 2, 0.2, "330203海曙区", "330212鄞州区"),
    _c("浙江", "温州", 3, 0.17, "330302鹿城区"),
    _c("浙江", "绍兴", 3, 0.1, "330602越城区"),
    _c("浙江", "金华", 3, 0.12, "330702婺城区"),
    _c("浙江", "丽水", 4, 0.08, "331102莲都区"),
    _c("江苏", "南京", 2, 0.25, "320102玄武区", "320106鼓楼区"),
    _c("江苏", "苏州", 2, 0.25, "320505虎丘区", "320508姑苏区"),
    _c("江苏", "无锡", 2, 0.14, "320213梁溪区"),
    _c("江苏", "常州", 3, 0.1, "320402天宁区"),
    _c("江苏", "徐州", 3, 0.12, "320303云龙区"),
    _c("江苏", "盐城", 3, 0.08, "320902亭湖区"),
    _c("江苏", "宿迁", 4, 0.06, "321302宿城区"),
    _c("四川", "成都", 2, 0.55, "510104锦江区", "510107武侯区", "510108成华区"),
    _c("四川", "绵阳", 3, 0.13, "510703涪城区"),
    _c("四川", "南充", 4, 0.12, "511302顺庆区"),
    _c("四川", "宜宾", 4, 0.12, "511502翠屏区"),
    _c("四川", "巴中", 4, 0.08, "511902巴州区"),
    _c("湖北", "武汉", 2, 0.5, "420102江岸区", "420106武昌区", "420111洪山区"),
    _c("湖北", "宜昌", 3, 0.14, "420502西陵区"),
    _c("湖北", "襄阳", 3, 0.14, "420602襄城区"),
    _c("湖北", "荆州", 4, 0.11, "421002沙市区"),
    _c("湖北", "黄冈", 4, 0.11, "421102黄州区"),
    _c("山东", "济南", 2, 0.22, "370102历下区", "370104槐荫区"),
    _c("山东", "青岛", 2, 0.26, "370202市南区", "370212崂山区"),
    _c("山东", "烟台", 3, 0.14, "370602芝罘区"),
    _c("山东", "潍坊", 3, 0.14, "370702潍城区"),
    _c("山东", "临沂", 3, 0.13, "371302兰山区"),
    _c("山东", "菏泽", 4, 0.11, "371702牡丹区"),
    _c("福建", "福州", 2, 0.3, "350102鼓楼区", "350104仓山区"),
    _c("福建", "厦门", 2, 0.25, "350203思明区", "350206湖里区"),
    _c("福建", "泉州", 3, 0.2, "350502鲤城区"),
    _c("福建", "漳州", 3, 0.1, "350602芗城区"),
    _c("福建", "龙岩", 4, 0.08, "350802新罗区"),
    _c("福建", "南平", 4, 0.07, "350702延平区"),
    _c("陕西", "西安", 2, 0.6, "610102新城区", "610113雁塔区", "610116长安区"),
    _c("陕西", "宝鸡", 4, 0.1, "610302渭滨区"),
    _c("陕西", "咸阳", 3, 0.12, "610402秦都区"),
    _c("陕西", "汉中", 4, 0.09, "610702汉台区"),
    _c("陕西", "榆林", 4, 0.09, "610802榆阳区"),
)

_CITY_NAMES = np.array([c.name for c in CITIES])
_CITY_PROVINCE = np.array([c.province for c in CITIES])
_CITY_TIER = np.array([c.tier for c in CITIES], dtype=np.int64)
_CITY_INDEX = {c.name: i for i, c in enumerate(CITIES)}
_CITY_PREFIX = np.array(
    [
        ("" if c.province in _MUNICIPALITIES else _PROVINCE_FULL[c.province]) + c.name + "市"
        for c in CITIES
    ]
)
# Flat district table: (city index, region code, district name).
_DIST_CITY = np.array([i for i, c in enumerate(CITIES) for _ in c.districts], dtype=np.int64)
_DIST_CODE = np.array([int(code) for c in CITIES for code, _ in c.districts], dtype=np.int64)
_DIST_NAME = np.array([name for c in CITIES for _, name in c.districts])
_DIST_START = np.searchsorted(_DIST_CITY, np.arange(len(CITIES)))
_DIST_COUNT = np.bincount(_DIST_CITY, minlength=len(CITIES))
_DIST_PROVINCE_CODE = np.array(
    [int(PROVINCE_CODES[_CITY_PROVINCE[i]]) for i in _DIST_CITY], dtype=np.int64
)


_PROV_CITY_ORDER = np.argsort(pd.Index(PROVINCES).get_indexer(_CITY_PROVINCE), kind="stable")
_PROV_OF_CITY = pd.Index(PROVINCES).get_indexer(_CITY_PROVINCE[_PROV_CITY_ORDER])
_PROV_CITY_WEIGHT = np.array([CITIES[i].weight for i in _PROV_CITY_ORDER])
_PROV_CITY_CUM = np.cumsum(_PROV_CITY_WEIGHT)
_PROV_CITY_TOTAL = np.bincount(_PROV_OF_CITY, weights=_PROV_CITY_WEIGHT, minlength=len(PROVINCES))
_PROV_CITY_START = np.searchsorted(_PROV_OF_CITY, np.arange(len(PROVINCES)))
_PROV_CITY_COUNT = np.bincount(_PROV_OF_CITY, minlength=len(PROVINCES))


def _province_index(provinces: ArrayLike) -> NDArray[np.int64]:
    codes = pd.Index(PROVINCES).get_indexer(np.asarray(provinces))
    if (codes < 0).any():
        bad = sorted(set(np.asarray(provinces)[codes < 0].tolist()))[:3]
        raise ValueError(f"unknown province(s) {bad}; expected one of {list(PROVINCES)}")
    return codes.astype(np.int64)


def _city_index(cities: ArrayLike) -> NDArray[np.int64]:
    codes = pd.Index(_CITY_NAMES).get_indexer(np.asarray(cities))
    if (codes < 0).any():
        bad = sorted(set(np.asarray(cities)[codes < 0].tolist()))[:3]
        raise ValueError(f"unknown city/cities {bad}")
    return codes.astype(np.int64)


def sample_cities(
    rng: np.random.Generator, provinces: ArrayLike
) -> tuple[StrArray, NDArray[np.int64]]:
    """Draw a city for each province by population weight; returns ``(cities, city_tiers)``."""
    prov = _province_index(provinces)
    # Inverse-CDF draw over the cities of each row's province (cities grouped by province).
    start, count = _PROV_CITY_START[prov], _PROV_CITY_COUNT[prov]
    base = np.concatenate([[0.0], _PROV_CITY_CUM])[start]
    target = base + rng.random(len(prov)) * _PROV_CITY_TOTAL[prov]
    pos = np.clip(np.searchsorted(_PROV_CITY_CUM, target, side="right"), start, start + count - 1)
    city = _PROV_CITY_ORDER[pos]
    return _CITY_NAMES[city], _CITY_TIER[city]


# --------------------------------------------------------------------------- names

# (surname, pinyin, relative frequency in %), approximate national frequencies.
_SURNAMES: tuple[tuple[str, str, float], ...] = (
    ("王", "wang", 7.25),
    ("李", "li", 7.19),
    ("张", "zhang", 6.83),
    ("刘", "liu", 5.38),
    ("陈", "chen", 4.53),
    ("杨", "yang", 3.08),
    ("黄", "huang", 2.23),
    ("赵", "zhao", 2.19),
    ("吴", "wu", 2.05),
    ("周", "zhou", 1.89),
    ("徐", "xu", 1.48),
    ("孙", "sun", 1.47),
    ("马", "ma", 1.29),
    ("朱", "zhu", 1.26),
    ("胡", "hu", 1.24),
    ("郭", "guo", 1.15),
    ("何", "he", 1.14),
    ("高", "gao", 1.07),
    ("林", "lin", 1.06),
    ("罗", "luo", 0.98),
    ("郑", "zheng", 0.96),
    ("梁", "liang", 0.89),
    ("谢", "xie", 0.79),
    ("宋", "song", 0.71),
    ("唐", "tang", 0.71),
    ("许", "xu", 0.68),
    ("韩", "han", 0.68),
    ("冯", "feng", 0.66),
    ("邓", "deng", 0.66),
    ("曹", "cao", 0.64),
    ("彭", "peng", 0.63),
    ("曾", "zeng", 0.61),
    ("肖", "xiao", 0.60),
    ("田", "tian", 0.59),
    ("董", "dong", 0.57),
    ("袁", "yuan", 0.56),
    ("潘", "pan", 0.55),
    ("于", "yu", 0.54),
    ("蒋", "jiang", 0.53),
    ("蔡", "cai", 0.52),
    ("余", "yu", 0.52),
    ("杜", "du", 0.51),
    ("叶", "ye", 0.50),
    ("程", "cheng", 0.48),
    ("苏", "su", 0.47),
    ("魏", "wei", 0.46),
    ("吕", "lv", 0.45),
    ("丁", "ding", 0.44),
    ("任", "ren", 0.43),
    ("沈", "shen", 0.42),
    ("姚", "yao", 0.41),
    ("卢", "lu", 0.40),
    ("姜", "jiang", 0.39),
    ("崔", "cui", 0.38),
    ("钟", "zhong", 0.37),
    ("谭", "tan", 0.36),
    ("陆", "lu", 0.35),
    ("汪", "wang", 0.34),
    ("范", "fan", 0.33),
    ("金", "jin", 0.32),
    ("石", "shi", 0.31),
    ("廖", "liao", 0.30),
    ("贾", "jia", 0.29),
    ("夏", "xia", 0.28),
    ("韦", "wei", 0.27),
    ("付", "fu", 0.26),
    ("方", "fang", 0.25),
    ("白", "bai", 0.24),
    ("邹", "zou", 0.23),
    ("孟", "meng", 0.22),
    ("熊", "xiong", 0.21),
    ("秦", "qin", 0.20),
    ("邱", "qiu", 0.20),
    ("江", "jiang", 0.19),
    ("尹", "yin", 0.19),
    ("薛", "xue", 0.18),
    ("闫", "yan", 0.18),
    ("段", "duan", 0.17),
    ("雷", "lei", 0.17),
    ("侯", "hou", 0.16),
    ("龙", "long", 0.16),
    ("史", "shi", 0.15),
    ("陶", "tao", 0.15),
    ("黎", "li", 0.14),
    ("贺", "he", 0.14),
    ("顾", "gu", 0.13),
    ("毛", "mao", 0.13),
    ("郝", "hao", 0.12),
    ("龚", "gong", 0.12),
    ("邵", "shao", 0.11),
    ("万", "wan", 0.11),
    ("钱", "qian", 0.10),
    ("严", "yan", 0.10),
    ("武", "wu", 0.10),
    ("戴", "dai", 0.10),
    ("莫", "mo", 0.09),
    ("孔", "kong", 0.09),
    ("汤", "tang", 0.09),
    ("欧阳", "ouyang", 0.05),
    ("上官", "shangguan", 0.02),
    ("司马", "sima", 0.02),
    ("诸葛", "zhuge", 0.01),
)
_SURNAME = np.array([s for s, _, _ in _SURNAMES])
_SURNAME_P = np.array([w for _, _, w in _SURNAMES]) / sum(w for _, _, w in _SURNAMES)

_GIVEN_M = (
    "伟wei 强qiang 磊lei 军jun 勇yong 杰jie 涛tao 斌bin 超chao 刚gang 辉hui 鹏peng 飞fei "
    "鑫xin 波bo 宇yu 浩hao 凯kai 健jian 俊jun 帆fan 帅shuai 旭xu 龙long 阳yang 建jian "
    "国guo 峰feng 亮liang 成cheng 志zhi 东dong 博bo 轩xuan 睿rui 泽ze 宸chen 昊hao 天tian"
)
_GIVEN_F = (
    "芳fang 娜na 敏min 静jing 丽li 艳yan 娟juan 霞xia 秀xiu 玲ling 英ying 燕yan 萍ping "
    "红hong 婷ting 雪xue 琳lin 倩qian 晶jing 颖ying 慧hui 欣xin 怡yi 佳jia 梦meng 诗shi "
    "涵han 悦yue 媛yuan 雨yu 琪qi 璐lu 瑶yao 萱xuan 妍yan 茜qian 蕾lei 薇wei 莉li"
)
_GIVEN_N = (
    "文wen 华hua 晓xiao 子zi 一yi 嘉jia 思si 永yong 海hai 春chun 金jin 玉yu 明ming 云yun 然ran"
)


def _pool(spec: str) -> tuple[StrArray, dict[str, str]]:
    items = spec.split()
    return np.array([s[0] for s in items]), {s[0]: s[1:] for s in items}


_POOL_M, _PY_M = _pool(_GIVEN_M)
_POOL_F, _PY_F = _pool(_GIVEN_F)
_POOL_N, _PY_N = _pool(_GIVEN_N)
_PINYIN: dict[str, str] = {**_PY_N, **_PY_F, **_PY_M}
_SURNAME_PINYIN: dict[str, str] = {s: p for s, p, _ in _SURNAMES}


def _as_male(gender: ArrayLike, n: int) -> NDArray[np.bool_]:
    g = np.broadcast_to(np.asarray(gender), (n,))
    bad = ~np.isin(g, ["F", "M"])
    if bad.any():
        raise ValueError(f"gender must be 'F' or 'M', got {g[bad][0]!r}")
    return g == "M"


def _given_char(rng: np.random.Generator, male: NDArray[np.bool_]) -> StrArray:
    n = len(male)
    c = np.where(
        male,
        _POOL_M[rng.integers(len(_POOL_M), size=n)],
        _POOL_F[rng.integers(len(_POOL_F), size=n)],
    )
    return np.where(rng.random(n) < 0.2, _POOL_N[rng.integers(len(_POOL_N), size=n)], c)


def chinese_names(rng: np.random.Generator, n: int, gender: ArrayLike) -> StrArray:
    """``n`` names: a frequency-weighted surname and 1–2 given-name characters leaning to
    ``gender`` (``"F"``/``"M"``, scalar or one per row)."""
    male = _as_male(gender, n)
    surname = _SURNAME[rng.choice(len(_SURNAME), size=n, p=_SURNAME_P)]
    first = _given_char(rng, male)
    second = np.where(rng.random(n) < 0.25, "", _given_char(rng, male))
    return np.strings.add(np.strings.add(surname, first), second)


# --------------------------------------------------------------------------- phones

# Real mobile network prefixes (China Mobile / Unicom / Telecom / Broadnet), with weights.
_MOBILE_PREFIXES = np.array(
    [
        130,
        131,
        132,
        133,
        134,
        135,
        136,
        137,
        138,
        139,
        150,
        151,
        152,
        153,
        155,
        156,
        157,
        158,
        159,
        170,
        171,
        173,
        175,
        176,
        177,
        178,
        180,
        181,
        182,
        183,
        184,
        185,
        186,
        187,
        188,
        189,
        191,
        192,
        193,
        195,
        196,
        197,
        198,
        199,
    ],
    dtype=np.int64,
)
_MOBILE_W = np.where(_MOBILE_PREFIXES < 160, 3.0, np.where(_MOBILE_PREFIXES < 180, 1.0, 2.0))
_MOBILE_W = np.where(np.isin(_MOBILE_PREFIXES, [170, 171, 192]), 0.3, _MOBILE_W)


def mobile_numbers(rng: np.random.Generator, n: int) -> StrArray:
    """``n`` 11-digit mainland mobile numbers on real 13x/15x/17x/18x/19x prefixes."""
    prefix = rng.choice(_MOBILE_PREFIXES, size=n, p=_MOBILE_W / _MOBILE_W.sum())
    return (prefix * 10**8 + rng.integers(0, 10**8, size=n)).astype("U11")


# --------------------------------------------------------------------------- national IDs

_GB_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_GB_CHECK = np.array(list("10X98765432"))


def _digits(values: NDArray[np.int64], width: int) -> NDArray[np.int64]:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers) % 10


def _date_parts(dates: NDArray[np.datetime64]) -> tuple[NDArray[np.int64], ...]:
    d = dates.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def national_ids(
    rng: np.random.Generator,
    birth_dates: ArrayLike,
    genders: ArrayLike,
    province_codes: ArrayLike,
) -> StrArray:
    """GB 11643 18-character IDs: a real region code within each 2-digit province code
    (e.g. ``"44"``), ``YYYYMMDD`` birth date, gender-parity sequence and MOD 11-2 check."""
    dates = np.asarray(birth_dates, dtype="datetime64[D]")
    n = len(dates)
    male = _as_male(genders, n)
    prov = np.broadcast_to(np.asarray(province_codes).astype(np.int64), (n,))
    # Region: a random district of the province (districts sorted by province code).
    order = np.argsort(_DIST_PROVINCE_CODE, kind="stable")
    dist_prov = _DIST_PROVINCE_CODE[order]
    start = np.searchsorted(dist_prov, prov, side="left")
    count = np.searchsorted(dist_prov, prov, side="right") - start
    if (count == 0).any():
        raise ValueError(f"unknown province code {prov[count == 0][0]}")
    region = _DIST_CODE[order[start + (rng.random(n) * count).astype(np.int64)]]
    year, month, day = _date_parts(dates)
    # Sequence 001–999: last digit odd for men, even for women (never 000).
    last = 2 * rng.integers(0, 5, size=n) + male
    seq = 10 * rng.integers(0, 100, size=n) + last
    seq = np.where(seq == 0, 2, seq)
    body = region * 10**11 + (year * 10000 + month * 100 + day) * 1000 + seq
    check = _GB_CHECK[(_digits(body, 17) * _GB_WEIGHTS).sum(axis=1) % 11]
    return np.strings.add(body.astype("U17"), check)


def _check_gb11643(ids: ArrayLike) -> NDArray[np.bool_]:
    """Vectorised validity test (for tests): 18 chars, digits, real date, MOD 11-2 check."""
    s = np.asarray(ids, dtype="U18")
    ok = np.strings.str_len(s) == 18
    codes = np.ascontiguousarray(s).view(np.uint32).reshape(len(s), 18).astype(np.int64)
    digits = codes - ord("0")
    ok &= ((digits[:, :17] >= 0) & (digits[:, :17] <= 9)).all(axis=1)
    last = np.where(codes[:, 17] == ord("X"), 10, digits[:, 17])
    ok &= (last >= 0) & (last <= 10)
    expected = (12 - (np.clip(digits[:, :17], 0, 9) * _GB_WEIGHTS).sum(axis=1) % 11) % 11
    ok &= last == expected
    d8 = np.clip(digits[:, 6:14], 0, 9) @ (10 ** np.arange(7, -1, -1))
    y, m, d = d8 // 10000, d8 // 100 % 100, d8 % 100
    valid = ok & (m >= 1) & (m <= 12) & (d >= 1) & (y >= 1800)
    month = (np.where(valid, y, 2000) - 1970) * 12 + np.where(valid, m, 1) - 1
    month = month.astype("datetime64[M]")
    month_len = (month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")
    return valid & (d <= month_len.astype(np.int64))


# --------------------------------------------------------------------------- emails

_EMAIL_DOMAINS = np.array(
    [
        "163.com",
        "126.com",
        "qq.com",
        "sina.com",
        "foxmail.com",
        "outlook.com",
        "gmail.com",
        "139.com",
        "yeah.net",
    ]
)
_EMAIL_DOMAIN_P = np.array([0.2, 0.1, 0.35, 0.05, 0.08, 0.07, 0.05, 0.07, 0.03])


def emails(rng: np.random.Generator, names: ArrayLike) -> StrArray:
    """One email per name: QQ mail with a 6–10 digit QQ number, or pinyin of the name
    (full surname, given-name initials or full) plus optional digits on a common domain."""
    s = pd.Series(np.asarray(names, dtype=str))
    n = len(s)
    compound = s.str.len() >= 3
    compound &= s.str[:2].isin([x for x in _SURNAME_PINYIN if len(x) == 2])
    sur = np.where(compound, s.str[:2], s.str[:1])
    given = pd.Series(np.where(compound, s.str[2:], s.str[1:]))
    sur_py = pd.Series(sur).map(_SURNAME_PINYIN).fillna("x").to_numpy(dtype=str)
    g1 = given.str[0].map(_PINYIN).fillna("").to_numpy(dtype=str)
    g2 = given.str[1].map(_PINYIN).fillna("").to_numpy(dtype=str)
    full = np.strings.add(g1, g2)
    initials = np.strings.add(np.strings.slice(g1, 0, 1), np.strings.slice(g2, 0, 1))
    style = rng.integers(0, 3, size=n)
    local = np.where(
        style == 0,
        np.strings.add(sur_py, full),
        np.where(
            style == 1,
            np.strings.add(sur_py, initials),
            np.strings.add(np.strings.add(full, "."), sur_py),
        ),
    )
    number = rng.integers(0, 10000, size=n)
    digits = np.where(number < 5000, (number % 100).astype("U4"), number.astype("U4"))
    local = np.where(rng.random(n) < 0.7, np.strings.add(local, digits), local)
    domain = rng.choice(_EMAIL_DOMAINS, size=n, p=_EMAIL_DOMAIN_P)
    qq = domain == "qq.com"
    qq_number = rng.integers(10**5, 10**10, size=n).astype("U10")
    local = np.where(qq & (rng.random(n) < 0.7), qq_number, local)
    return np.strings.add(np.strings.add(local, "@"), domain)


# --------------------------------------------------------------------------- addresses

_ROADS = np.array(
    [
        "人民",
        "解放",
        "中山",
        "建设",
        "和平",
        "新华",
        "文化",
        "胜利",
        "长江",
        "黄河",
        "青年",
        "朝阳",
        "东风",
        "友谊",
        "光明",
        "幸福",
        "学府",
        "科技",
        "花园",
        "滨江",
        "湖滨",
        "延安",
        "世纪",
        "振兴",
        "团结",
        "工业",
        "体育",
        "迎宾",
        "金桥",
        "锦绣",
    ]
)
_ROAD_SUFFIX = np.array(["路", "路", "路", "大道", "街", "东路", "西路", "南路", "北路"])


def addresses(rng: np.random.Generator, cities: ArrayLike) -> StrArray:
    """Street addresses in each city: ``广东省深圳市南山区科技路88号6栋1203室``
    (municipalities start at the city: ``北京市朝阳区…``)."""
    city = _city_index(cities)
    n = len(city)
    dist = _DIST_START[city] + (rng.random(n) * _DIST_COUNT[city]).astype(np.int64)
    road = np.strings.add(
        _ROADS[rng.integers(len(_ROADS), size=n)],
        _ROAD_SUFFIX[rng.integers(len(_ROAD_SUFFIX), size=n)],
    )
    number = np.strings.add(rng.integers(1, 999, size=n).astype("U3"), "号")
    building = rng.integers(1, 30, size=n).astype("U2")
    room = (rng.integers(1, 33, size=n) * 100 + rng.integers(1, 7, size=n)).astype("U4")
    unit = np.strings.add(np.strings.add(np.strings.add(building, "栋"), room), "室")
    unit = np.where(rng.random(n) < 0.8, unit, "")
    out = np.strings.add(_CITY_PREFIX[city], _DIST_NAME[dist])
    for part in (road, number, unit):
        out = np.strings.add(out, part)
    return out


# --------------------------------------------------------------------------- bank cards

# UnionPay debit BINs of large Chinese banks with their card lengths.
_BINS = np.array(
    [
        622202,
        622848,
        621700,
        622700,
        621661,
        622262,
        622588,
        621483,
        622609,
        621226,
        622908,
        623058,
    ],
    dtype=np.int64,
)
_BIN_LEN = np.array([19, 19, 19, 19, 19, 19, 16, 16, 16, 19, 19, 19], dtype=np.int64)
_BIN_P = np.array([0.16, 0.14, 0.14, 0.06, 0.1, 0.08, 0.08, 0.06, 0.05, 0.05, 0.04, 0.04])


def _luhn_digit(payload: NDArray[np.int64], width: int) -> NDArray[np.int64]:
    d = _digits(payload, width)[:, ::-1]  # rightmost payload digit first: it gets doubled
    doubled = d[:, 0::2] * 2
    total = (doubled - 9 * (doubled > 9)).sum(axis=1) + d[:, 1::2].sum(axis=1)
    return (10 - total % 10) % 10


def bank_cards(rng: np.random.Generator, n: int) -> StrArray:
    """``n`` Luhn-valid UnionPay card numbers (BIN ``62…``, 16 or 19 digits)."""
    k = rng.choice(len(_BINS), size=n, p=_BIN_P / _BIN_P.sum())
    length = _BIN_LEN[k]
    body_width = length - 7  # digits between the 6-digit BIN and the check digit
    body = rng.integers(0, 10**12, size=n) % (10**body_width)
    payload = _BINS[k] * 10**body_width + body
    out = np.empty(n, dtype="U19")
    for width in np.unique(length):
        m = length == width
        full = payload[m] * 10 + _luhn_digit(payload[m], int(width) - 1)
        out[m] = full.astype(f"U{width}")
    return out


def _check_luhn(cards: ArrayLike) -> NDArray[np.bool_]:
    """Vectorised Luhn test (for tests) of digit strings of any length up to 19."""
    s = np.asarray(cards, dtype="U19")
    lengths = np.strings.str_len(s)
    ok = np.zeros(len(s), dtype=bool)
    for width in np.unique(lengths):
        m = lengths == width
        codes = np.ascontiguousarray(s[m]).view(np.uint32).reshape(-1, 19)[:, :width]
        d = codes.astype(np.int64) - ord("0")
        digit_ok = ((d >= 0) & (d <= 9)).all(axis=1)
        r = np.clip(d[:, ::-1], 0, 9)
        doubled = r[:, 1::2] * 2
        total = r[:, 0::2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
        ok[m] = digit_ok & (total % 10 == 0)
    return ok
