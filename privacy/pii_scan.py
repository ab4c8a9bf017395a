"""PII scan: find columns whose content looks like identity data.

Each text column is sampled (``sample_size`` non-null values, seeded) and tested with the
validators (national ID, mobile, Luhn card number, email) and two heuristics (Chinese personal
names: 2-4 CJK characters starting with a common surname; addresses: a province/city prefix
plus an address marker such as 路/街/号). A kind is detected when at least ``threshold`` of the
sample matches. All detected kinds are core_sensitive. Findings never quote values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .errors import SchemaError
from .findings import Finding, Rule
from .generalize import generalize_series
from .policy import Policy
from .reader import open_csv
from .rules import RULE_BY_ID as _JOB_RULES
from .tiers import Tier
from .validators import is_email, is_luhn, is_mobile, is_national_id, normalize_text

__all__ = ["PII_KINDS", "ColumnScan", "ScanReport", "scan_dataframe", "scan_file"]

PII_KINDS = ("national_id", "mobile", "bank_card", "email", "name", "address")
_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严"
    "覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚"
    "符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆"
    "农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋"
    "商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_NAME_RX = r"[\u4e00-\u9fff]{2,4}"
_ADDRESS_MARKERS = r"路|街|道|号|区|县|镇|乡|村|巷|弄|栋|幢|室|单元|小区|大厦"
_NAME_HINTS = {
    "national_id": r"id_?card|idno|national_?id|sfz|身份证|证件",
    "mobile": r"phone|mobile|tel|cell|手机|电话",
    "bank_card": r"bank|card_?no|card_?num|pan\b|卡号|银行卡",
    "email": r"e_?mail|邮箱",
    "name": r"(^|_)name$|full_?name|姓名",
    "address": r"addr|address|地址|住址",
}

RULE_DEFINITIONS = tuple(
    Rule(_rid, _sev, _title, _why, None, scope="scan")
    for _rid, _sev, _title, _why in (
        (
            "PII-DETECTED",
            "WARN",
            "Identity-looking content is classified core_sensitive",
            "Content that validates as national IDs, phones, cards, emails, names or addresses is "
            "personal information (PIPL art. 4, 28; GB/T 35273-2020 annex A/B).",
        ),
        (
            "PII-TIER",
            "ERROR",
            "Policy tier is not lower than the content suggests",
            "A column holding identity data but tiered general/non-sensitive could reach features, "
            "logs or outputs.",
        ),
        (
            "PII-NAME-HINT",
            "INFO",
            "Column name suggests identity data",
            "The header looks like an identity field although the sampled content did not match; "
            "review the classification.",
        ),
    )
)


@dataclass(frozen=True)
class ColumnScan:
    """Scan result for one column (ratios are over the non-null sample)."""

    column: str
    sampled: int
    ratios: dict[str, float]
    kind: str | None
    policy_tier: Tier | None

    @property
    def suggested_tier(self) -> Tier | None:
        """core_sensitive when identity content was detected, else None."""
        return Tier.CORE_SENSITIVE if self.kind else None


@dataclass
class ScanReport:
    """All column scans plus findings (severity ERROR/WARN/INFO)."""

    columns: list[ColumnScan] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def has(self, *severities: str) -> bool:
        """True if any finding has one of ``severities``."""
        return any(f.severity in severities for f in self.findings)


def _is_name(t: pd.Series) -> pd.Series:
    ok = t.str.fullmatch(_NAME_RX).fillna(False).astype(bool)
    return ok & t.str.slice(0, 1).isin(_SURNAMES)


def _is_address(t: pd.Series) -> pd.Series:
    prov = generalize_series(t, "address_to_province", column=str(t.name))
    marker = t.str.contains(_ADDRESS_MARKERS, regex=True).fillna(False).astype(bool)
    return (prov != "unknown").fillna(False).astype(bool) & marker


_CHECKS = {
    "national_id": is_national_id,
    "mobile": is_mobile,
    "bank_card": is_luhn,
    "email": is_email,
    "name": _is_name,
    "address": _is_address,
}


def _sample(s: pd.Series, n: int) -> pd.Series:
    s = s.dropna()
    if pd.api.types.is_string_dtype(s.dtype) or pd.api.types.is_object_dtype(s.dtype):
        s = s[s.astype("str") != ""]
    if len(s) > n:
        s = s.sample(n, random_state=0)
    return s


def _scan_column(
    name: str, s: pd.Series, sample_size: int, threshold: float, policy_tier: Tier | None
) -> ColumnScan:
    sample = _sample(s, sample_size)
    ratios: dict[str, float] = {}
    if (
        len(sample)
        and not pd.api.types.is_bool_dtype(sample.dtype)
        and not pd.api.types.is_float_dtype(sample.dtype)
    ):
        t = normalize_text(sample).rename(name)
        for kind, check in _CHECKS.items():
            ratios[kind] = float(np.mean(check(t).to_numpy()))
    best = max(PII_KINDS, key=lambda k: ratios.get(k, 0.0))  # ties -> earlier kind
    kind = best if ratios.get(best, 0.0) >= threshold else None
    return ColumnScan(name, len(sample), ratios, kind, policy_tier)


def scan_dataframe(
    df: pd.DataFrame,
    policy: Policy | None = None,
    *,
    node: str = "local",
    sample_size: int = 10_000,
    threshold: float = 0.8,
    source: str = "<data>",
) -> ScanReport:
    """Scan every column; compare with ``policy`` when given."""
    report = ScanReport()
    for name in df.columns:
        col = str(name)
        rule = policy.columns.get(col) if policy is not None else None
        scan = _scan_column(col, df[name], sample_size, threshold, rule.tier if rule else None)
        report.columns.append(scan)
        report.findings.extend(_findings(scan, policy, node, source))
    if policy is not None:
        present = {str(c) for c in df.columns}
        for c in policy.columns:
            if c not in present:
                report.findings.append(
                    Finding(
                        _JOB_RULES["SCHEMA-MISSING"].severity,
                        "SCHEMA-MISSING",
                        node,
                        c,
                        f"{source}: column '{c}' listed in policy {policy.source} is missing from "
                        "the data",
                    )
                )
    return report


def _findings(scan: ColumnScan, policy: Policy | None, node: str, source: str) -> list[Finding]:
    c, kind = scan.column, scan.kind
    what = (
        (f"content looks like {kind} ({scan.ratios[kind]:.0%} of {scan.sampled} sampled values)")
        if kind
        else None
    )
    out: list[Finding] = []
    if policy is not None and scan.policy_tier is None:
        msg = (
            f"{source}: column '{c}' is not listed in policy {policy.source} "
            "(rule: unknown_columns=refuse)"
        )
        if what:
            msg += f"; {what}, list it as core_sensitive"
        out.append(Finding("ERROR", "UNLISTED-COLUMN", node, c, msg))
    elif kind and policy is not None and scan.policy_tier < Tier.CORE_SENSITIVE:
        out.append(
            Finding(
                "ERROR",
                "PII-TIER",
                node,
                c,
                f"{source}: column '{c}': {what} but policy {policy.source} gives "
                f"tier {scan.policy_tier.value}; use core_sensitive",
            )
        )
    elif kind:
        sev = "INFO" if policy is not None else "WARN"
        tail = (
            "policy tier is core_sensitive"
            if policy is not None
            else "classify it core_sensitive in the policy"
        )
        out.append(Finding(sev, "PII-DETECTED", node, c, f"{source}: column '{c}': {what}; {tail}"))
    if not kind:
        for hint_kind, rx in _NAME_HINTS.items():
            if re.search(rx, c, flags=re.IGNORECASE):
                if scan.policy_tier is Tier.CORE_SENSITIVE:
                    break
                out.append(
                    Finding(
                        "INFO",
                        "PII-NAME-HINT",
                        node,
                        c,
                        f"{source}: column '{c}': name suggests {hint_kind} but the "
                        "sampled content did not match; review its tier",
                    )
                )
                break
    return out


def scan_file(
    path: str | Path,
    policy: Policy | None = None,
    *,
    node: str = "local",
    sample_size: int = 10_000,
    threshold: float = 0.8,
    max_rows: int = 200_000,
) -> ScanReport:
    """Scan the first ``max_rows`` rows of a CSV (read as text) or Parquet file."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        if not p.is_file():
            raise SchemaError(f"{p}: file does not exist (rule: data path)")
        pf = pq.ParquetFile(p)
        batches = pf.iter_batches(batch_size=max_rows)
        df = (
            next(batches).to_pandas()
            if pf.metadata.num_rows
            else pf.schema_arrow.empty_table().to_pandas()
        )
    else:  # the shared reader's rules (confide.privacy.reader), on the rows scanned
        with open_csv(p) as table:
            df = next(table.chunks(max_rows), None)
            if df is None:
                df = pd.DataFrame({n: pd.Series([], dtype="str") for n in table.names})
    return scan_dataframe(
        df, policy, node=node, sample_size=sample_size, threshold=threshold, source=str(p)
    )
