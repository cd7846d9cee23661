"""The per-patch NUMBERS (JSON) and sentences of a result, column by column.

:meth:`AnalysisResult.numbers` builds one dict per patch and :func:`explain_rule` one
sentence from it; for a whole round that Python loop costs far more than the analysis.
Here the same strings come from whole columns: numbers are formatted once per value,
list items once per pair, and each patch only joins its pieces. The output is the same
text — ``json.loads(numbers_json(res)[i]) == res.numbers()[i]`` and
``sentences(res, lang)[i] == explain_rule(rule, numbers, qdnm, lang)`` (tested).
"""

from __future__ import annotations

import json
import re
import string
from typing import TYPE_CHECKING, Any

import numpy as np

from tuban.analysis.explanations import (
    HINT_R5_EN,
    HINT_R5_ZH,
    TEMPLATES,
    Lang,
    project_label,
    projects_label,
)
from tuban.analysis.overlay import M2_PER_HA

if TYPE_CHECKING:
    from tuban.analysis.core import AnalysisResult

__all__ = ["TextColumns", "numbers_json", "sentences"]

_NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _jf(values: Any) -> list[str]:
    """JSON numbers (as ``json.dumps`` writes floats)."""
    arr = np.asarray(values, dtype=float)
    out = [repr(v) for v in arr.tolist()]
    return out if np.isfinite(arr).all() else [_NONFINITE.get(s, s) for s in out]


_ESCAPE = re.compile(r'[\x00-\x1f"\\]').search


def _js(values: Any) -> list[str]:
    """JSON strings or null (``json.dumps`` only for the strings that need escapes)."""
    return ["null" if v is None or v != v else (
        f'"{v}"' if isinstance(v, str) and not _ESCAPE(v) else json.dumps(v, ensure_ascii=False)) for v in values]


def _n(values: np.ndarray, digits: int = 4) -> list[str]:
    """:func:`tuban.analysis.explanations._n` for a column."""
    out = [f"{v:.{digits}f}" for v in np.asarray(values, dtype=float).tolist()]
    return ["?" if s[-1] in "nf" else (s.rstrip("0").rstrip(".") if "." in s else s) for s in out]


def _lists(group: np.ndarray, items: list[str], n: int) -> list[str]:
    """``[item, …]`` per patch from *items* sorted by patch (*group*)."""
    b = np.searchsorted(group, np.arange(n + 1)).tolist()
    return ["[" + ", ".join(items[b[i]:b[i + 1]]) + "]" if b[i + 1] > b[i] else "[]" for i in range(n)]


class TextColumns:
    """Everything the NUMBERS and the sentences need, as columns (computed once per result)."""

    def __init__(self, res: AnalysisResult) -> None:
        comp, n = res.compliance, len(res.area_m2)
        self.n = n
        self.rule = comp.rule.tolist()
        sc = res.scopes
        sid = [str(v) for v in sc["SWC_P_ID"].tolist()]
        self.sid, self.rp = sid, sc["RP_NUM"].tolist()
        self.jsid, self.jrp = _js(sid), _js(self.rp)
        area = res.area_m2
        with np.errstate(divide="ignore", invalid="ignore"):
            outside_pct = np.where(area > 0, 100 * comp.outside_m2 / np.where(area > 0, area, 1.0), 0.0)
        self.area_ha, self.outside_ha = area / M2_PER_HA, comp.outside_m2 / M2_PER_HA
        self.outside_pct, self.tol_ha = outside_pct, comp.tolerance_m2 / M2_PER_HA
        self.covered_ha = comp.covered_m2 / M2_PER_HA
        self.lead = comp.lead_scope
        self.site_m = comp.site_change_m
        near_idx, near_m = res.nearest_counting_scope()
        rule = comp.rule
        self.has_near = (near_idx >= 0) & np.isin(rule, ("R3", "R4", "R5"))
        self.near_idx, self.near_m = near_idx, near_m
        self.disturbed = comp.scope_disturbed
        # pairs: counting scopes and suggested (other) scopes, sorted by patch then scope
        c = comp.pair_counting
        self.pc, self.sc_j, self.sc_ov = comp.pair_patch[c], comp.pair_scope[c], comp.pair_overlap_m2[c]
        self.ps, self.sg_j, self.sg_ov = comp.pair_patch[~c], comp.pair_scope[~c], comp.pair_overlap_m2[~c]
        # projects: the lead, then the other counting scopes' projects in scope order, each once
        codes = {s: k for k, s in enumerate(dict.fromkeys(sid))}
        scode = np.array([codes[s] for s in sid], dtype=np.int64) if sid else np.zeros(0, dtype=np.int64)
        self.scode = scode
        other = np.zeros(len(self.pc), dtype=bool)
        if len(self.pc):
            lead_code = np.where(self.lead[self.pc] >= 0, scode[np.maximum(self.lead[self.pc], 0)], -1)
            key = self.pc * (len(codes) + 1) + scode[self.sc_j]
            _, first = np.unique(key, return_index=True)
            other[first] = True
            other &= scode[self.sc_j] != lead_code
        self.other = other
        self.n_projects = (self.lead >= 0).astype(np.int64) + np.bincount(self.pc[other], minlength=n)
        self._text: dict[str, list[str]] = {}

    def text(self, name: str, digits: int = 4, rows: np.ndarray | None = None) -> list[str]:
        """Column *name* formatted for the sentences (once; only at *rows* when given, "" elsewhere)."""
        if name not in self._text:
            values = getattr(self, name)
            if rows is None:
                self._text[name] = _n(values, digits)
            else:
                out = [""] * self.n
                for i, v in zip(rows.tolist(), _n(values[rows], digits), strict=True):
                    out[i] = v
                self._text[name] = out
        return self._text[name]


def numbers_json(res: AnalysisResult, cols: TextColumns | None = None) -> list[str]:
    """``NUMBERS`` of every patch as JSON text (the same as encoding :meth:`numbers`)."""
    c = cols or TextColumns(res)
    n, r = c.n, res.rules
    sc = res.scopes
    a = res.area_m2
    with np.errstate(divide="ignore", invalid="ignore"):
        sc_items = [f'{{"SWC_P_ID": {s}, "RP_NUM": {p}, "overlap_ha": {h}, "overlap_pct": {q}}}' for s, p, h, q in zip(
            [c.jsid[j] for j in c.sc_j.tolist()], [c.jrp[j] for j in c.sc_j.tolist()],
            _jf(c.sc_ov / M2_PER_HA), _jf(100 * c.sc_ov / a[c.pc]), strict=True)]
    scopes = _lists(c.pc, sc_items, n)
    jname, jvec = _js(sc["PRO_NAME"].tolist()), _js(sc["VEC_TYPE"].tolist())
    approved = ["true" if v else "false" for v in sc["approved"].tolist()]
    sg = c.sg_j.tolist()
    sg_items = [f'{{"SWC_P_ID": {s}, "PRO_NAME": {m}, "VEC_TYPE": {v}, "approved": {ap}, "overlap_ha": {h}}}'
                for s, m, v, ap, h in zip([c.jsid[j] for j in sg], [jname[j] for j in sg], [jvec[j] for j in sg],
                                          [approved[j] for j in sg], _jf(c.sg_ov / M2_PER_HA), strict=True)]
    suggested = _lists(c.ps, sg_items, n)
    oj = c.sc_j[c.other].tolist()
    other = _lists(c.pc[c.other], [f'{{"SWC_P_ID": {c.jsid[j]}, "RP_NUM": {c.jrp[j]}}}' for j in oj], n)
    lead = c.lead.tolist()
    projects = [
        "[]" if j < 0 else (f'[{{"SWC_P_ID": {c.jsid[j]}, "RP_NUM": {c.jrp[j]}, "PRO_NAME": {jname[j]}}}'
                            + (", " + o[1:] if len(o) > 2 else "]"))
        for j, o in zip(lead, other, strict=True)
    ]
    d = res.divisions
    dcode = _js([str(v) for v in res.division_codes[d.pair_division]])
    with np.errstate(divide="ignore", invalid="ignore"):
        dshare = _jf(100 * d.pair_overlap_m2 / a[d.pair_patch])
    divisions = _lists(d.pair_patch, [f'{{"XZQDM": {k}, "share_pct": {s}}}' for k, s in zip(dcode, dshare, strict=True)],
                       n)
    disturbed = c.disturbed.tolist()
    near = [""] * n
    rows = np.flatnonzero(c.has_near)
    for i, j, dm in zip(rows.tolist(), c.near_idx[rows].tolist(), _jf(c.near_m[rows]), strict=True):
        near[i] = (f', "nearest_scope": {{"SWC_P_ID": {c.jsid[j]}, "RP_NUM": {c.jrp[j]}, "distance_m": {dm}, '
                   f'"disturbed": {"true" if disturbed[j] else "false"}}}')
    site = [""] * n
    rows = np.flatnonzero(np.asarray(c.rule, dtype=object) == "R3")
    for i, v in zip(rows.tolist(), _jf(c.site_m[rows]), strict=True):
        site[i] = v
    version = json.dumps(r.version, ensure_ascii=False)
    radius, search = _jf([r.site_change_radius_m])[0], _jf([r.nearest_search_m])[0]
    tail = [""] * n
    ch = res.change
    if ch is not None:
        qid = _js([str(v) for v in res.previous_ids[ch.pair_previous]])
        qov = _jf(res.lineage_overlap_m2() / M2_PER_HA)
        prev = _lists(ch.pair_current, [f'{{"QDNM": {q}, "overlap_ha": {o}}}' for q, o in zip(qid, qov, strict=True)],
                      n)
        share = ch.change_share
        pct = _jf(100 * share)
        pct = [p if s == s else "null" for p, s in zip(pct, share.tolist(), strict=True)]
        tail = [f', "previous": {p}, "previous_area_ha": {q}, "area_change_pct": {s}'
                for p, q, s in zip(prev, _jf(ch.previous_area_m2 / M2_PER_HA), pct, strict=True)]
    return [
        f'{{"rules_version": {version}, "area_ha": {ah}, "covered_ha": {cv}, "outside_ha": {oh}, '
        f'"outside_pct": {op}, "tolerance_ha": {th}, "radius_m": {radius}'
        + (f', "nearest_search_m": {search}' if ru in ("R4", "R5") else "")
        + f', "scopes": {s}, "projects": {pj}'
        + (f', "site_change_distance_m": {sd}' if ru == "R3" else "")
        + f'{nr}, "suggested": {sg}, "divisions": {dv}{tl}}}'
        for ah, cv, oh, op, th, ru, s, pj, sd, nr, sg, dv, tl in zip(
            _jf(c.area_ha), _jf(c.covered_ha), _jf(c.outside_ha), _jf(c.outside_pct), _jf(c.tol_ha), c.rule,
            scopes, projects, site, near, suggested, divisions, tail, strict=True)
    ]


def _percent(template: str, **fixed: str) -> tuple[str, tuple[str, ...]]:
    """A ``str.format`` template as a ``%`` template and its field names (in order); the
    *fixed* fields are filled in once."""
    parts, names = [], []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        parts.append(literal.replace("%", "%%"))
        if name is not None:
            if name in fixed:
                parts.append(fixed[name].replace("%", "%%"))
            else:
                parts.append("%s")
                names.append(name)
    return "".join(parts), tuple(names)


def sentences(res: AnalysisResult, lang: Lang, cols: TextColumns | None = None) -> list[str]:
    """The sentence of every patch (:func:`~tuban.analysis.explanations.explain_rule`).

    The templates of :func:`~tuban.analysis.explanations.compose` are turned into ``%``
    templates once and filled rule by rule from whole columns (no call per patch).
    """
    c = cols or TextColumns(res)
    n, r = c.n, res.rules
    tpl = TEMPLATES[lang]
    qdnm = [str(q) for q in res.patches["QDNM"].tolist()]
    a, o, op, t = c.text("area_ha"), c.text("outside_ha"), c.text("outside_pct", 1), c.text("tol_ha")
    rule = np.asarray(c.rule, dtype=object)
    site = c.text("site_m", 1, np.flatnonzero(rule == "R3"))
    fixed = {"radius": _n(np.array([r.site_change_radius_m]), 0)[0],
             "search": _n(np.array([r.nearest_search_m]), 0)[0]}
    labels = [project_label(s, p, lang) for s, p in zip(c.sid, c.rp, strict=True)]
    lead, count = c.lead.tolist(), c.n_projects.tolist()
    projs = [projects_label(labels[j] if j >= 0 else None, k, lang) for j, k in zip(lead, count, strict=True)]
    columns = {"qdnm": qdnm, "a": a, "o": o, "op": op, "t": t, "projects": projs, "site": site}
    out: list[str] = [""] * n
    for name in ("R1", "R2", "R3"):
        rows = np.flatnonzero(rule == name).tolist()
        if rows:
            fmt, fields = _percent(tpl[name].replace("{head}", tpl["head"]), **fixed)
            picked = [[col[i] for i in rows] for col in (columns[f] for f in fields)]
            for i, text in zip(rows, [fmt % v for v in zip(*picked, strict=True)], strict=True):
                out[i] = text
    rows_arr = np.flatnonzero((rule == "R4") | (rule == "R5"))
    if len(rows_arr):
        rows = rows_arr.tolist()
        # where: the nearest approved scope (and whether it is disturbed), or none within the search
        near_d = c.text("near_m", 1, np.flatnonzero(c.has_near))
        near_fmt, _ = _percent(tpl["near"])
        none_near = tpl["none_near"].format(**fixed)
        near_idx, has_near, disturbed = c.near_idx.tolist(), c.has_near.tolist(), c.disturbed.tolist()
        where = [(near_fmt % (labels[near_idx[i]], near_d[i]) + (tpl["disturbed"] if disturbed[near_idx[i]] else ""))
                 if has_near[i] else none_near for i in rows]
        # suggested links: the schematic / unapproved scopes it overlaps
        b = np.searchsorted(c.ps, np.arange(n + 1)).tolist()
        sg_ids = [c.sid[j] for j in c.sg_j.tolist()]
        sug_fmt, _ = _percent(tpl["suggested"])
        sep = tpl["sep"]
        sug = [sug_fmt % sep.join(sg_ids[b[i]:b[i + 1]]) if b[i + 1] > b[i] else "" for i in rows]
        fmt, fields = _percent(tpl["R4"].replace("{head}", tpl["head"]), **fixed)
        columns = {**columns, "where": where, "sug": sug}
        picked = [columns[f] if f in ("where", "sug") else [columns[f][i] for i in rows] for f in fields]
        texts = [fmt % v for v in zip(*picked, strict=True)]
        hint = HINT_R5_ZH + "。" if lang == "zh" else f"; {HINT_R5_EN}."
        for i, text in zip(rows, texts, strict=True):
            if rule[i] == "R5":
                text = text + hint if lang == "zh" else text[:-1] + hint
            out[i] = text
    return out
