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

__all__ = ["HINT_R5_EN", "HINT_R5_ZH", "TEMPLATES", "compose", "explain", "explain_rule", "project_label", "projects_label"]

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


def project_label(sid: Any, rp: Any, lang: Lang) -> str:
    """``项目 P02（批复文号 …）`` / ``project P02 (approval …)``."""
    pid = sid or "?"
    if lang == "zh":
        return f"项目 {pid}（批复文号 {rp}）" if rp else f"项目 {pid}（无批复文号）"
    return f"project {pid} (approval {rp})" if rp else f"project {pid} (no approval number)"


def projects_label(first: str | None, count: int, lang: Lang) -> str:
    """The lead project's label, with the number of further projects."""
    if first is None or count < 1:
        return "?"
    if count > 1:
        return first + (f"等 {count} 个项目" if lang == "zh" else f" and {count - 1} more")
    return first


#: the sentence templates, one per rule and language; ``compose`` fills them
TEMPLATES: dict[str, dict[str, str]] = {
    "zh": {
        "head": "图斑 {qdnm}（{a} ha）",
        "R1": "{head}位于{projects}防治责任范围内，范围外 {o} ha（占图斑 {op}%），未超过容差 {t} ha，合规。",
        "R2": "{head}有 {o} ha 超出{projects}防治责任范围，占图斑 {op}%，超过容差 {t} ha，疑似超出防治责任范围。",
        "R3": "{head}未与任何已批复的防治责任范围相交，但距{projects}防治责任范围 {site} m（不超过 {radius} m）"
              "且该范围内无当前扰动，疑似建设地点变更。",
        "near": "最近的已批复防治责任范围（{project}）在 {distance} m 处",
        "disturbed": "且其内已有扰动",
        "none_near": "{search} m 内没有已批复的防治责任范围",
        "suggested": "；与项目 {ids} 的示意性或未批复范围相交，仅作关联参考",
        "R4": "{head}未与任何已批复的防治责任范围相交，{where}{sug}，疑似未批先建。",
        "sep": "、",
    },
    "en": {
        "head": "Patch {qdnm} ({a} ha)",
        "R1": "{head} lies within the responsibility scope of {projects}; {o} ha ({op}%) is outside, within the "
              "tolerance of {t} ha: compliant.",
        "R2": "{head} has {o} ha ({op}% of the patch) outside the responsibility scope of {projects}, more than "
              "the tolerance of {t} ha: suspected of exceeding the scope.",
        "R3": "{head} overlaps no approved scope, but the undisturbed scope of {projects} lies {site} m away "
              "(within {radius} m): suspected change of construction site.",
        "near": "the nearest approved scope ({project}) is {distance} m away",
        "disturbed": " and already disturbed",
        "none_near": "there is no approved scope within {search} m",
        "suggested": "; it overlaps schematic or unapproved scopes of {ids} (a suggested link only)",
        "R4": "{head} overlaps no approved scope and {where}{sug}: suspected construction before approval.",
        "sep": ", ",
    },
}


def compose(
    lang: Lang,
    rule: str,
    *,
    qdnm: Any,
    a: str,
    o: str = "?",
    op: str = "?",
    t: str = "?",
    projects: str = "?",
    site: str = "?",
    radius: str = "?",
    near_project: str | None = None,
    near_m: str = "?",
    near_disturbed: bool = False,
    search: str = "?",
    suggested: list[str] | tuple[str, ...] = (),
) -> str:
    """The sentence for *rule* from already formatted numbers (the one place the wording lives)."""
    tpl = TEMPLATES[lang]
    head = tpl["head"].format(qdnm=qdnm, a=a)
    if rule in ("R1", "R2", "R3"):
        return tpl[rule].format(head=head, projects=projects, o=o, op=op, t=t, site=site, radius=radius)
    if near_project is not None:
        where = tpl["near"].format(project=near_project, distance=near_m) + (tpl["disturbed"] if near_disturbed else "")
    else:
        where = tpl["none_near"].format(search=search)
    sug = tpl["suggested"].format(ids=tpl["sep"].join(suggested)) if suggested else ""
    text = tpl["R4"].format(head=head, where=where, sug=sug)
    if rule == "R5":
        return text + HINT_R5_ZH + "。" if lang == "zh" else text[:-1] + f"; {HINT_R5_EN}."
    return text


def explain_rule(rule: str, numbers: Mapping[str, Any], qdnm: Any, lang: Lang = "zh") -> str:
    """The sentence for *rule* (R1–R5) with *numbers* (the patch's ``NUMBERS``)."""
    projects = list(numbers.get("projects") or [])
    near = numbers.get("nearest_scope") or {}
    first = project_label(projects[0].get("SWC_P_ID"), projects[0].get("RP_NUM"), lang) if projects else None
    return compose(
        lang,
        rule,
        qdnm=qdnm,
        a=_n(numbers.get("area_ha")),
        o=_n(numbers.get("outside_ha")),
        op=_n(numbers.get("outside_pct"), 1),
        t=_n(numbers.get("tolerance_ha")),
        projects=projects_label(first, len(projects), lang),
        site=_n(numbers.get("site_change_distance_m"), 1),
        radius=_n(numbers.get("radius_m", 500), 0),
        near_project=project_label(near.get("SWC_P_ID"), near.get("RP_NUM"), lang) if near else None,
        near_m=_n(near.get("distance_m"), 1),
        near_disturbed=bool(near.get("disturbed")),
        search=_n(numbers.get("nearest_search_m", 1000), 0),
        suggested=[str(x.get("SWC_P_ID")) for x in numbers.get("suggested") or []],
    )


def explain(row: Mapping[str, Any] | Any, *, lang: Lang = "zh") -> str:
    """One sentence for a result row (a mapping or a pandas Series with QDNM, RULE_ID, NUMBERS)."""
    numbers = row["NUMBERS"]
    if isinstance(numbers, str):
        numbers = json.loads(numbers)
    return explain_rule(str(row["RULE_ID"]), numbers, row["QDNM"], lang)
