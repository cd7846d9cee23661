"""The scene's tables: truth patches, project registry (scopes), previous round, traps.

Names are fictional on purpose (``焦作某某置业有限公司（模拟007）`` style): never a real
company or project.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely

from tuban.sim.layout import KINDS, Layout
from tuban.sim.rules import expected_change, expected_compliance

__all__ = ["build_tables"]

_INDUSTRY = {
    "construction": [("置业", "住宅小区", "XMLX-29"), ("新材料", "新材料产业园", "XMLX-26"),
                     ("机械制造", "装备制造厂房", "XMLX-33"), ("物流", "仓储物流园", "XMLX-36")],
    "road": [("交通建设", "县道改建工程", "XMLX-01")],
    "spoil": [("建材", "弃渣场及配套工程", "XMLX-36")],
    "pit": [("建材", "取土场及配套工程", "XMLX-36")],
    "completed": [("置业", "商住楼", "XMLX-29"), ("新能源", "光伏配套厂区", "XMLX-09")],
}


def _names(place: str, kind: str, n: int) -> tuple[str, str, str]:
    options = _INDUSTRY[kind]
    short, what, pro_type = options[n % len(options)]
    company = f"{place}某某{short}有限公司（模拟{n:03d}）"
    project = f"{place}某某{what}项目（模拟{n:03d}）"
    return company, project, pro_type


def build_tables(layout: Layout, *, crs: str, place: str = "示例", rounds: tuple[str, str] = ("2023-1", "2024-1"),
                 ) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    """Truth, scopes, previous-round patches, traps and the expected table for a layout."""
    seed = layout.seed
    truth_rows, prev_rows, scope_rows = [], [], []
    for n, site in enumerate(layout.sites):
        qdnm = f"SIM{seed}-{n + 1:04d}"
        geom = site.after if site.after is not None else site.before
        assert geom is not None  # a site has a current or a previous extent
        company, project, pro_type = _names(place, site.kind, n + 1)
        prid = f"SIM{seed}-P{n + 1:04d}" if site.scope is not None else None
        truth_rows.append({
            "QDNM": qdnm, "QTYPE": KINDS[site.kind], "QAREA": round(geom.area / 1e4, 4),
            "QDCS": "完工" if site.after is None else "施工", "ISREVIEW": "0", "ISFOCUS": "0", "XZQDM": "",
            "sim_kind": site.kind, "sim_scenario": site.scenario, "sim_change": site.change,
            "active": site.after is not None, "changed": site.change != "unchanged",
            "project_id": prid, "geometry": geom,
        })
        if site.before is not None:
            prev_rows.append({"QDNM": f"SIM{seed}-Q{n + 1:04d}", "QTYPE": KINDS[site.kind],
                              "QAREA": round(site.before.area / 1e4, 4), "QDCS": "施工", "QDTYPE": "新增",
                              "ISREVIEW": "1", "PRID": prid, "round": rounds[0], "geometry": site.before})
        if site.scope is None:
            continue
        approved = site.scenario not in ("unapproved",)
        year = 2021 + (n % 3)
        scope_rows.append({
            "SWC_P_ID": prid, "PRO_NAME": project, "CS_UNIT": company,
            "RP_AGNT": f"{place}水行政主管部门（模拟）" if approved else None,
            "RP_NUM": f"{place[:1]}水保许〔{year}〕{n + 1}号（模拟）" if approved else None,
            "RP_TIME": f"{year}-{1 + n % 12:02d}-{1 + n % 27:02d}" if approved else None,
            "PRO_TYPE": pro_type, "PRO_CATE": "建设类", "PRO_NAT": "新建", "PRO_LEVEL": "县级",
            "CST_STATE": "完工" if site.after is None else "施工", "IVV_CNTY": "",
            "VEC_TYPE": "示意性范围" if site.scenario == "schematic" else "防治责任范围",
            "geometry": site.scope,
        })
    for k, s in enumerate(layout.extra_scopes):
        company, project, pro_type = _names(place, "construction", 500 + k)
        scope_rows.append({
            "SWC_P_ID": f"SIM{seed}-X{k + 1:04d}", "PRO_NAME": project, "CS_UNIT": company,
            "RP_AGNT": f"{place}水行政主管部门（模拟）", "RP_NUM": f"{place[:1]}水保许〔2024〕{600 + k}号（模拟）",
            "RP_TIME": "2024-03-01", "PRO_TYPE": pro_type, "PRO_CATE": "建设类", "PRO_NAT": "新建",
            "PRO_LEVEL": "县级", "CST_STATE": "未开工", "IVV_CNTY": "", "VEC_TYPE": "防治责任范围", "geometry": s,
        })
    truth = gpd.GeoDataFrame(truth_rows, geometry="geometry", crs=crs) if truth_rows else _empty(crs)
    previous = gpd.GeoDataFrame(prev_rows, geometry="geometry", crs=crs) if prev_rows else _empty(crs)
    scopes = gpd.GeoDataFrame(scope_rows, geometry="geometry", crs=crs) if scope_rows else _empty(crs)
    if len(scopes) == 0:
        scopes = scopes.assign(SWC_P_ID=pd.Series(dtype=object), RP_NUM=pd.Series(dtype=object),
                               VEC_TYPE=pd.Series(dtype=object))
    exp = expected_compliance(truth, scopes) if len(truth) else pd.DataFrame(
        columns=["QDNM", "BYD", "rule", "EAREA", "PRID"])
    exp["QDTYPE"] = expected_change(truth, previous).to_numpy() if len(truth) else []
    if len(truth):
        # completed sites keep their project's link and the compliance they had
        done = ~truth["active"].to_numpy()
        exp.loc[done, "PRID"] = truth.loc[done, "project_id"].to_numpy()
        by_id = scopes.set_index("SWC_P_ID")["PRO_NAME"].to_dict() if len(scopes) else {}
        exp["PRNM"] = [by_id.get(p) if p else None for p in exp["PRID"]]
        for col in ("BYD", "EAREA", "QDTYPE", "PRID", "PRNM"):
            truth[col] = exp[col].to_numpy()
        truth["rule"] = exp["rule"].to_numpy()
        exp = exp.merge(truth[["QDNM", "QTYPE", "QAREA", "sim_kind", "sim_scenario", "sim_change", "active"]],
                        on="QDNM")
        if len(previous):
            prev_exp = expected_compliance(previous.assign(active=True), scopes)
            previous["BYD"] = prev_exp["BYD"].to_numpy()
    traps = _traps(layout, crs)
    return {"truth": truth, "previous": previous, "scopes": scopes, "expected": exp, "traps": traps}


def _traps(layout: Layout, crs: str) -> gpd.GeoDataFrame:
    rows = []
    # a cloud's opacity (and its shadow) is zero beyond 1.35 radii whatever its texture
    sx, sy = layout.cloud_shift
    for prefix, clouds in (("", layout.clouds), ("baseline_", layout.baseline_clouds)):
        for x, y, r in clouds:
            rows.append({"trap": f"{prefix}cloud", "geometry": shapely.Point(x, y).buffer(r * 1.35)})
            rows.append({"trap": f"{prefix}cloud_shadow", "geometry": shapely.Point(x + sx, y + sy).buffer(r * 1.35)})
    for pond, dries in layout.ponds:
        if dries:
            rows.append({"trap": "water_level", "geometry": pond})
    if layout.river is not None:
        w0, w1 = layout.river_width
        rows.append({"trap": "water_level", "geometry": layout.river.buffer(w0 / 2).difference(layout.river.buffer(w1 / 2))})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs) if rows else _empty(crs)


def _empty(crs: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"geometry": gpd.GeoSeries([], crs=crs)}, geometry="geometry", crs=crs)


