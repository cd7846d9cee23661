"""``analyse_round``: a round in the store classified, written and audited on both backends."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.affinity
from sqlalchemy import func, select
from tests.analysis import layouts as lay

from tuban.analysis import analyse
from tuban.errors import NotFoundError, UsageError
from tuban.store.analysis import analyse_round
from tuban.store.models import AuditEntry, Decision, Patch, PatchLineage, Round

BOWTIE = shapely.Polygon([(6000, 0), (6200, 200), (6200, 0), (6000, 200), (6000, 0)])
CURRENT = {
    "T1": lay.box(0, 0, 100, 100),  # inside P01 → R1
    "T2": lay.box(300, 0, 400, 100),  # 20 % outside P02 → R2
    "T3": lay.box(2300, 0, 2350, 50),  # 200 m from the undisturbed P03 → R3
    "T4": lay.box(5000, 5000, 5020, 5020),  # small, overlaps only the schematic P04 → R5
    "T5": lay.box(8000, 8000, 8100, 8100),  # 1 ha, nothing near → R4
    "T6": lay.box(-50, 3000, 50, 3100),  # across the county line, equal shares
    "T7": BOWTIE,  # invalid: repaired, the change noted
}
PREVIOUS = {"Q1": lay.box(0, 0, 100, 100), "Q2": lay.box(7000, 7000, 7100, 7100), "Q3": lay.box(300, 0, 350, 100)}
EXPECTED_RULES = {"T1": "R1", "T2": "R2", "T3": "R3", "T4": "R5", "T5": "R4", "T6": "R4", "T7": "R4"}


def _scopes():
    s = lay.scopes([lay.box(-10, -10, 110, 110), lay.box(300, 0, 380, 100), lay.box(2000, 0, 2100, 100),
                    lay.box(4990, 4990, 5030, 5030)],
                   rp_num=["豫水保〔2024〕1号", "豫水保〔2024〕2号", "豫水保〔2024〕3号", None],
                   vec_type=["防治责任范围", "防治责任范围", "防治责任范围", "示意性范围"])
    s["RP_TIME"] = [None if r is None else "2024-01-01" for r in s["RP_NUM"]]
    return s


def _load(store) -> dict:
    layers = {
        "patches": lay.patches(list(CURRENT.values()), list(CURRENT)),
        "previous": lay.patches(list(PREVIOUS.values()), list(PREVIOUS)),
        "scopes": _scopes(),
        "divisions": lay.divisions(),
    }
    store.import_divisions(layers["divisions"], actor="test")
    store.import_projects(layers["scopes"], actor="test")
    store.import_patches(layers["previous"], round_name="2023-1", actor="test")
    store.import_patches(layers["patches"], round_name="2024-1", actor="test")
    return layers


def _patches(store, round_name="2024-1") -> dict[str, Patch]:
    with store.session() as s:
        rid = s.scalar(select(Round.id).where(Round.name == round_name))
        return {p.qdnm: p for p in s.scalars(select(Patch).where(Patch.round_id == rid))}


def test_analyse_round_writes_fields_decisions_lineage_and_audit(store) -> None:
    layers = _load(store)
    out = store.analyse_round("2024-1", previous_round="2023-1", actor="analyst")
    assert out.engine == ("postgis" if store.dialect == "postgresql" else "shapely")
    assert out.patches == 7
    assert out.decisions == 7
    assert out.updated == 7
    assert out.completed == ["Q2"]
    got = _patches(store)
    by_rule = {q: out.result.compliance.rule[k] for k, q in enumerate(out.result.patches["QDNM"])}
    assert by_rule == EXPECTED_RULES
    assert got["T1"].byd == "合规"
    assert got["T1"].prid == "P01"
    assert got["T1"].prnm == "项目P01"
    assert got["T2"].byd == "疑似超出防治责任范围"
    assert got["T2"].earea == pytest.approx(0.2, abs=1e-6)
    assert got["T3"].byd == "疑似建设地点变更"
    assert got["T3"].prid == "P03"
    assert got["T4"].byd == "疑似未批先建"
    assert got["T4"].prid is None
    assert got["T1"].qdtype == "续建（范围不变）"
    assert got["T2"].qdtype == "续建（范围扩大）"
    assert got["T5"].qdtype == "新增"
    assert got["T6"].xzqdm == "410821,410822"
    assert got["T6"].lead_division_code == "410821"
    assert got["T1"].xzqdm == "410822"
    assert got["T1"].lead_division_code == "410822"
    assert got["T1"].qarea == pytest.approx(1.0, abs=1e-6)
    assert all(p.version == 2 for p in got.values())
    # the same classes as the file form on the same layers
    ref = analyse(layers["patches"], layers["scopes"], layers["divisions"], layers["previous"])
    assert list(ref.compliance.rule) == [EXPECTED_RULES[q] for q in CURRENT]
    with store.session() as s:
        decisions = {d.patch_id: d for d in s.scalars(select(Decision))}
        assert len(decisions) == 7
        assert {d.kind for d in decisions.values()} == {"suspected"}
        d2 = decisions[got["T2"].id]
        assert d2.rule_id == "R2"
        assert d2.actor == "analyst"
        assert d2.numbers["outside_pct"] == pytest.approx(20, abs=1e-3)
        assert "超出项目 P02" in d2.explanation_zh
        assert "outside the responsibility scope" in d2.explanation_en
        assert "geometry_note" in decisions[got["T7"].id].numbers
        assert "1,000 m³" in decisions[got["T4"].id].explanation_en
        prev = _patches(store, "2023-1")
        links = set(s.execute(select(PatchLineage.parent_id, PatchLineage.child_id, PatchLineage.kind)).all())
        assert links == {(prev["Q1"].id, got["T1"].id, "previous_round"),
                         (prev["Q3"].id, got["T2"].id, "previous_round")}
        summary = s.scalars(select(AuditEntry).where(AuditEntry.action == "round.analyse")).one()
        assert summary.actor == "analyst"
        assert summary.after["rules"]["R1"] == 1
        assert summary.after["completed_qdnm"] == ["Q2"]
        per_patch = s.scalars(select(AuditEntry).where(AuditEntry.action == "patch.analyse")).all()
        assert len(per_patch) == 7
        t2 = next(a for a in per_patch if a.entity_id == str(got["T2"].id))
        assert t2.before["byd"] is None
        assert t2.after["byd"] == "疑似超出防治责任范围"
        assert t2.before["version"] == 1
        assert t2.after["version"] == 2


def test_rerun_changes_nothing_but_adds_decisions(store) -> None:
    _load(store)
    store.analyse_round("2024-1", previous_round="2023-1", actor="a")
    again = store.analyse_round("2024-1", previous_round="2023-1", actor="b")
    assert again.updated == 0
    assert again.lineage == 2
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(PatchLineage)) == 2
        assert s.scalar(select(func.count()).select_from(Decision)) == 14
    assert all(p.version == 2 for p in _patches(store).values())


def test_reviewed_patches_keep_their_fields(store) -> None:
    _load(store)
    with store.transaction(actor="test") as tx:
        p = tx.session.scalar(select(Patch).where(Patch.qdnm == "T5"))
        p.state, p.byd = "office_reviewed", "非生产建设项目扰动"
    out = store.analyse_round("2024-1", actor="a")
    assert out.kept_reviewed == 1
    assert out.updated == 6
    assert _patches(store)["T5"].byd == "非生产建设项目扰动"
    with store.session() as s:
        d = s.scalar(select(Decision).join(Patch, Patch.id == Decision.patch_id).where(Patch.qdnm == "T5"))
        assert d.byd == "疑似未批先建"
        assert d.rule_id == "R4"
    forced = store.analyse_round("2024-1", actor="a", overwrite_reviewed=True)
    assert forced.updated == 1
    assert _patches(store)["T5"].byd == "疑似未批先建"


def test_refusals(store) -> None:
    _load(store)
    with pytest.raises(NotFoundError, match="2099-1"):
        analyse_round(store, "2099-1", actor="a")
    with pytest.raises(NotFoundError, match="previous round"):
        analyse_round(store, "2024-1", previous_round="1999-1", actor="a")
    with pytest.raises(UsageError, match="own previous round"):
        analyse_round(store, "2024-1", previous_round="2024-1", actor="a")
    with pytest.raises(UsageError, match="engine"):
        analyse_round(store, "2024-1", actor="a", engine="gpu")
    with store.session() as s:  # nothing written by the refused runs
        assert s.scalar(select(func.count()).select_from(Decision)) == 0


def _random_layers(seed: int) -> dict:
    rng = np.random.default_rng(seed)

    def boxes(n, lo, hi):
        x, y = rng.integers(0, 3000, n), rng.integers(0, 3000, n)
        w, h = rng.integers(lo, hi, n), rng.integers(lo, hi, n)
        return [lay.box(a, b, a + c, b + d) for a, b, c, d in zip(x, y, w, h, strict=True)]

    cur = boxes(150, 5, 250)
    prev = [shapely.affinity.scale(g, xfact=f) for g, f in zip(cur[:80], rng.choice([0.8, 1.0, 1.3], 80),
                                                                strict=True)] + boxes(20, 5, 200)
    n = 30
    scopes = lay.scopes(boxes(n, 50, 600), ids=[f"P{k % 25:02d}" for k in range(n)],
                        rp_num=list(rng.choice(["豫水保〔2024〕1号", None], n, p=[0.8, 0.2])),
                        vec_type=list(rng.choice(["防治责任范围", "示意性范围"], n, p=[0.85, 0.15])))
    split = int(rng.integers(0, 3000))
    divisions = lay.divisions([lay.box(-1000, -1000, split, 4000), lay.box(split, -1000, 4000, 4000)],
                              ["410821", "410822"])
    return {"patches": lay.patches(cur), "previous": lay.patches(prev, [f"Q{k}" for k in range(len(prev))]),
            "scopes": scopes, "divisions": divisions}


def _view(res) -> list[tuple]:
    comp = res.compliance
    prid = [None if k < 0 else res.scopes["SWC_P_ID"][k] for k in comp.lead_scope]
    return list(zip(res.patches["QDNM"], comp.rule, prid, res.xzqdm(), res.change.qdtype, strict=True))


def test_postgis_in_database_and_shapely_engines_agree(postgis_url) -> None:
    from tuban.store import open_store

    with open_store(postgis_url) as store:
        store.upgrade()
        layers = _random_layers(5)
        store.import_divisions(layers["divisions"], actor="t")
        store.import_projects(layers["scopes"], actor="t")
        store.import_patches(layers["previous"], round_name="r0", actor="t")
        store.import_patches(layers["patches"], round_name="r1", actor="t")
        py = analyse_round(store, "r1", previous_round="r0", actor="t", engine="shapely")
        pg = analyse_round(store, "r1", previous_round="r0", actor="t", engine="postgis")
        assert py.engine == "shapely"
        assert pg.engine == "postgis"
        assert _view(py.result) == _view(pg.result)
        assert len(set(py.result.compliance.rule)) >= 4  # the layout exercises most rules
        assert pg.updated == 0  # the in-database run wrote nothing different
        assert py.completed == pg.completed
        assert py.lineage == pg.lineage
        a, b = py.result, pg.result
        np.testing.assert_allclose(a.area_m2, b.area_m2, atol=0.01)  # 1e-6 ha
        np.testing.assert_allclose(a.compliance.outside_m2, b.compliance.outside_m2, atol=0.01)
        for x, y in zip(a.numbers(), b.numbers(), strict=True):
            assert x.keys() == y.keys()
            assert [s["SWC_P_ID"] for s in x["scopes"]] == [s["SWC_P_ID"] for s in y["scopes"]]
            assert [d["XZQDM"] for d in x["divisions"]] == [d["XZQDM"] for d in y["divisions"]]
            assert [q["QDNM"] for q in x["previous"]] == [q["QDNM"] for q in y["previous"]]
            assert (x.get("nearest_scope") or {}).get("SWC_P_ID") == (y.get("nearest_scope") or {}).get("SWC_P_ID")


def test_rejected_and_superseded_patches_are_left_out(store) -> None:
    _load(store)
    with store.transaction(actor="test") as tx:
        for qdnm, state in (("T4", "rejected"), ("T5", "superseded")):
            tx.session.scalar(select(Patch).where(Patch.qdnm == qdnm)).state = state
    out = store.analyse_round("2024-1", actor="a")
    assert out.patches == 5
    assert sorted(out.result.patches["QDNM"]) == ["T1", "T2", "T3", "T6", "T7"]
    got = _patches(store)
    assert got["T4"].byd is None
    assert got["T4"].version == 1
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Decision).where(Decision.patch_id == got["T5"].id)) == 0
