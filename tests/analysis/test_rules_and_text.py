"""The versioned rules file and the explanations."""

from __future__ import annotations

import json

import pytest

from tuban.analysis import analyse, explain, load_rules
from tuban.errors import ConfigError

from . import layouts as lay


def test_packaged_rules_hold_the_issue_thresholds():
    r = load_rules()
    assert (r.version, r.tolerance_min_ha, r.tolerance_share) == ("1", 0.01, 0.05)
    assert (r.site_change_radius_m, r.plan_threshold_ha) == (500.0, 0.5)
    assert (r.expand_share, r.shrink_share) == (0.10, 0.10)
    assert r.counting_vec_types == ("防治责任范围",)
    assert r.tolerance_ha(0.1) == 0.01
    assert r.tolerance_ha(4.0) == pytest.approx(0.2)


def test_a_custom_rules_file_changes_the_decision(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('version = "test-2"\n[compliance]\ntolerance_share = 0.25\n', encoding="utf-8")
    rules = load_rules(path)
    p = lay.patches([lay.box(0, 0, 100, 100)])
    s = lay.scopes([lay.box(20, -10, 120, 110)])  # 20 % outside
    assert analyse(p, s, lay.divisions()).compliance.rule.tolist() == ["R2"]
    res = analyse(p, s, lay.divisions(), rules=rules)
    assert res.compliance.rule.tolist() == ["R1"]
    assert json.loads(res.to_geodataframe()["NUMBERS"][0])["rules_version"] == "test-2"


@pytest.mark.parametrize(("text", "match"), [
    ("version = ", "not valid TOML"),
    ("[compliance]\ntolerance_share = 0.1\n", "no 'version'"),
    ('version = "x"\n[compliance]\nsite_change_radius_m = -5\n', "non-negative"),
    ('version = "x"\n[compliance]\ncounting_vec_types = "防治责任范围"\n', "list of strings"),
])
def test_bad_rules_files_are_refused(tmp_path, text, match):
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_rules(path)


def test_explanations_for_every_rule():
    p = lay.patches([lay.box(0, 0, 100, 100), lay.box(300, 0, 400, 100), lay.box(1000, 1000, 1100, 1100),
                     lay.box(5000, 5000, 5100, 5100), lay.box(8000, 8000, 8020, 8020)])
    s = lay.scopes([lay.box(-10, -10, 110, 110), lay.box(300, 0, 370, 100), lay.box(1200, 1000, 1300, 1100),
                    lay.box(5000, 5000, 5100, 5100)],
                   rp_num=["豫水保〔2024〕1号", "豫水保〔2024〕2号", "豫水保〔2024〕3号", None])
    frame = analyse(p, s, lay.divisions()).to_geodataframe()
    assert list(frame["RULE_ID"]) == ["R1", "R2", "R3", "R4", "R5"]
    zh, en = frame["EXPLAIN_ZH"].tolist(), frame["EXPLAIN_EN"].tolist()
    assert zh[0].startswith("图斑 T1（1 ha）位于项目 P01（批复文号 豫水保〔2024〕1号）")
    assert zh[0].endswith("合规。")
    assert "有 0.3 ha 超出项目 P02（批复文号 豫水保〔2024〕2号）防治责任范围，占图斑 30%" in zh[1]
    assert "100 m" in zh[2]
    assert "疑似建设地点变更" in zh[2]
    assert "P04" in zh[3]
    assert "仅作关联参考" in zh[3]
    assert zh[3].endswith("疑似未批先建。")
    assert "1000 m³" in zh[4]
    assert frame["HINT"][4]
    assert frame["BYD"][4] == "疑似未批先建"
    assert "0.3 ha (30% of the patch) outside" in en[1]
    assert "suspected change of construction site" in en[2]
    assert "suggested link" in en[3]
    # explain() recomputes the stored sentence from a row, as a Series or a plain mapping
    row = frame.iloc[1]
    assert explain(row, lang="zh") == zh[1]
    assert explain({"QDNM": row["QDNM"], "RULE_ID": "R2", "NUMBERS": json.loads(row["NUMBERS"])}, lang="en") == en[1]


def test_lineage_and_completed_tables():
    cur = lay.patches([lay.box(0, 0, 100, 100), lay.box(150, 0, 250, 100)])
    prev = lay.patches([lay.box(50, 0, 200, 100), lay.box(100, 0, 150, 100), lay.box(900, 0, 950, 50)],
                       ["Q1", "Q2", "Q3"])
    res = analyse(cur, lay.scopes([lay.box(5000, 5000, 5100, 5100)]), lay.divisions(), prev)
    lineage = res.lineage()
    assert list(zip(lineage["QDNM"], lineage["PREV_QDNM"], strict=True)) == [("T1", "Q1"), ("T2", "Q1")]
    assert lineage["overlap_ha"].tolist() == pytest.approx([0.5, 0.5], abs=1e-6)  # Q2 only touches T1, T2
    assert list(res.completed()["QDNM"]) == ["Q2", "Q3"]
    frame = res.to_geodataframe()
    assert list(frame["PREV_QDNM"]) == ["Q1", "Q1"]
    assert list(frame["QDTYPE"]) == ["续建（范围缩小）", "续建（范围缩小）"]
