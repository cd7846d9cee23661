"""One-sentence explanations (zh-CN and English) of the rule that fired for a patch.

The sentence is built only from the rule id and the numbers stored with the patch, so
a reviewer can always recompute it::

    >>> numbers = {"area_ha": 1.2, "outside_ha": 0.36, "outside_pct": 30.0, "tolerance_ha": 0.06,
    ...            "projects": [{"SWC_P_ID": "P02", "RP_NUM": "豫水保〔2023〕12号"}]}
    >>> explain({"QDNM": "T1", "RULE_ID": "R2", "NUMBERS": numbers}, lang="zh")
    '图斑 T1（1.2 ha）有 0.36 ha 超出项目 P02（批复文号 豫水保〔2023〕12号）防治责任范围，占图斑 30%，超过容差 0.06 ha，疑似超出防治责任范围。'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["HINT_R5_EN", "HINT_R5_ZH", "explain", "explain_rule"]

Lang = Literal["zh", "en"]

HINT_R5_ZH = "面积小于方案编报下限：若挖填土石方总量小于 1000 m³ 可不编报水土保持方案（水利部令第53号），核实后可认定为可不编报方案"
HINT_R5_EN = "below the plan threshold: may need no plan if earthwork < 1,000 m³ (MWR Order 53); check, then set 可不编报方案"


def _n(x: Any, digits: int = 4) -> str:
    """Format a number compactly: 1.2, 0.0123, 30 (the format rounds correctly, as ``round`` does)."""
    if x is None:
        return "?"
    v = float(x)
    if not math.isfinite(v):
        return "?"
    text = f"{v:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _project(p: Mapping[str, Any], lang: Lang) -> str:
    pid = p.get("SWC_P_ID") or "?"
    rp = p.get("RP_NUM")
    if lang == "zh":
        return f"项目 {pid}（批复文号 {rp}）" if rp else f"项目 {pid}（无批复文号）"
    return f"project {pid} (approval {rp})" if rp else f"project {pid} (no approval number)"


def _projects(ps: list[Mapping[str, Any]], lang: Lang) -> str:
    if not ps:
        return "?"
    text = _project(ps[0], lang)
    if len(ps) > 1:
        text += f"等 {len(ps)} 个项目" if lang == "zh" else f" and {len(ps) - 1} more"
    return text


def _suggested(numbers: Mapping[str, Any], lang: Lang) -> str:
    sug = numbers.get("suggested") or []
    if not sug:
        return ""
    ids = "、".join(str(s.get("SWC_P_ID")) for s in sug) if lang == "zh" else ", ".join(
        str(s.get("SWC_P_ID")) for s in sug)
    if lang == "zh":
        return f"；与项目 {ids} 的示意性或未批复范围相交，仅作关联参考"
    return f"; it overlaps schematic or unapproved scopes of {ids} (a suggested link only)"


def explain_rule(rule: str, numbers: Mapping[str, Any], qdnm: Any, lang: Lang = "zh") -> str:
    """The sentence for *rule* (R1–R5) with *numbers* (the patch's ``NUMBERS``)."""
    a = _n(numbers.get("area_ha"))
    o = _n(numbers.get("outside_ha"))
    op = _n(numbers.get("outside_pct"), 1)
    t = _n(numbers.get("tolerance_ha"))
    projects = list(numbers.get("projects") or [])
    near = numbers.get("nearest_scope") or {}
    radius = _n(numbers.get("radius_m", 500), 0)
    if lang == "zh":
        head = f"图斑 {qdnm}（{a} ha）"
        if rule == "R1":
            return (f"{head}位于{_projects(projects, lang)}防治责任范围内，范围外 {o} ha（占图斑 {op}%），"
                    f"未超过容差 {t} ha，合规。")
        if rule == "R2":
            return (f"{head}有 {o} ha 超出{_projects(projects, lang)}防治责任范围，占图斑 {op}%，"
                    f"超过容差 {t} ha，疑似超出防治责任范围。")
        if rule == "R3":
            return (f"{head}未与任何已批复的防治责任范围相交，但距{_projects(projects, lang)}防治责任范围 "
                    f"{_n(numbers.get('site_change_distance_m'), 1)} m（不超过 {radius} m）且该范围内无当前扰动，"
                    f"疑似建设地点变更。")
        if near:
            where = (f"最近的已批复防治责任范围（{_project(near, lang)}）在 {_n(near.get('distance_m'), 1)} m 处"
                     + ("且其内已有扰动" if near.get("disturbed") else ""))
        else:
            where = f"{_n(numbers.get('nearest_search_m', 1000), 0)} m 内没有已批复的防治责任范围"
        text = f"{head}未与任何已批复的防治责任范围相交，{where}{_suggested(numbers, lang)}，疑似未批先建。"
        if rule == "R5":
            text += HINT_R5_ZH + "。"
        return text
    head = f"Patch {qdnm} ({a} ha)"
    if rule == "R1":
        return (f"{head} lies within the responsibility scope of {_projects(projects, lang)}; {o} ha ({op}%) is "
                f"outside, within the tolerance of {t} ha: compliant.")
    if rule == "R2":
        return (f"{head} has {o} ha ({op}% of the patch) outside the responsibility scope of "
                f"{_projects(projects, lang)}, more than the tolerance of {t} ha: suspected of exceeding the scope.")
    if rule == "R3":
        return (f"{head} overlaps no approved scope, but the undisturbed scope of {_projects(projects, lang)} lies "
                f"{_n(numbers.get('site_change_distance_m'), 1)} m away (within {radius} m): "
                f"suspected change of construction site.")
    if near:
        where = (f"the nearest approved scope ({_project(near, lang)}) is {_n(near.get('distance_m'), 1)} m away"
                 + (" and already disturbed" if near.get("disturbed") else ""))
    else:
        where = f"there is no approved scope within {_n(numbers.get('nearest_search_m', 1000), 0)} m"
    text = f"{head} overlaps no approved scope and {where}{_suggested(numbers, lang)}: suspected construction before approval."
    if rule == "R5":
        text = text[:-1] + f"; {HINT_R5_EN}."
    return text


def explain(row: Mapping[str, Any] | Any, *, lang: Lang = "zh") -> str:
    """One sentence for a result row (a mapping or a pandas Series with QDNM, RULE_ID, NUMBERS)."""
    numbers = row["NUMBERS"]
    if isinstance(numbers, str):
        numbers = json.loads(numbers)
    return explain_rule(str(row["RULE_ID"]), numbers, row["QDNM"], lang)
