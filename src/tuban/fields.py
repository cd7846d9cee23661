"""Official field codes (domain.md §3) as data: names, types, limits and code lists.

These specs drive import validation, the store's columns, export and the UI labels.

>>> PATCH_FIELDS["QAREA"].kind
'real'
>>> [f.name for f in PROJECT_FIELDS.values() if f.required]
['PRO_NAME']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DIVISION_FIELDS", "PATCH_FIELDS", "PROJECT_FIELDS", "FieldSpec"]

Kind = Literal["text", "real", "flag", "code", "date"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One official field: its code, type, limit, code list and labels."""

    name: str
    kind: Kind
    zh: str
    en: str
    max_len: int | None = None
    codelist: str | None = None
    required: bool = False
    unit: str | None = None


def _spec(*specs: FieldSpec) -> dict[str, FieldSpec]:
    return {s.name: s for s in specs}


PATCH_FIELDS: dict[str, FieldSpec] = _spec(
    FieldSpec("QDNM", "text", "图斑编号", "Patch number", max_len=64, required=True),
    FieldSpec("QTYPE", "code", "扰动类型", "Disturbance type", codelist="QTYPE"),
    FieldSpec("QAREA", "real", "扰动面积", "Disturbed area", unit="ha"),
    FieldSpec("EAREA", "real", "超出防治责任范围面积", "Area outside scope", unit="ha"),
    FieldSpec("QDCS", "code", "建设状态", "Construction status", codelist="QDCS"),
    FieldSpec("QDTYPE", "code", "扰动变化类型", "Change type", codelist="QDTYPE"),
    FieldSpec("BYD", "code", "扰动合规性", "Compliance", codelist="BYD"),
    FieldSpec("ISREVIEW", "flag", "是否现场复核", "Field-verified", codelist="FLAG"),
    FieldSpec("ISFOCUS", "flag", "是否重点监管", "Priority", codelist="FLAG"),
    FieldSpec("XZQDM", "text", "涉及县行政区划代码", "County code(s)", max_len=200),
    FieldSpec("ADDRESS", "text", "详细地址", "Address", max_len=100),
    FieldSpec("PROBLEM", "text", "问题", "Problem", max_len=1000),
    FieldSpec("PROPOSAL", "text", "建议", "Proposal", max_len=1000),
    FieldSpec("MEMO", "text", "备注", "Memo", max_len=1000),
    FieldSpec("PRID", "text", "关联项目编号", "Linked project id", max_len=64),
    FieldSpec("PRNM", "text", "关联项目名称", "Linked project name", max_len=200),
    FieldSpec("SEROSION", "code", "土壤侵蚀强度", "Erosion intensity", codelist="SEROSION"),
)

PROJECT_FIELDS: dict[str, FieldSpec] = _spec(
    FieldSpec("SWC_P_ID", "text", "项目编号", "Project id", max_len=64),
    FieldSpec("PRO_NAME", "text", "项目名称", "Project name", max_len=200, required=True),
    FieldSpec("CS_UNIT", "text", "建设单位", "Responsible party", max_len=200),
    FieldSpec("RP_AGNT", "text", "批复机构", "Approving agency", max_len=200),
    FieldSpec("RP_NUM", "text", "批复文号", "Approval number", max_len=100),
    FieldSpec("RP_TIME", "date", "批复时间", "Approval date"),
    FieldSpec("PRO_TYPE", "code", "项目类型", "Project type", codelist="PRO_TYPE"),
    FieldSpec("PRO_CATE", "code", "项目类别", "Category", codelist="PRO_CATE"),
    FieldSpec("PRO_NAT", "code", "建设性质", "Nature", codelist="PRO_NAT"),
    FieldSpec("PRO_LEVEL", "code", "立项级别", "Approval level", codelist="PRO_LEVEL"),
    FieldSpec("CST_STATE", "code", "建设状态", "Construction status", codelist="QDCS"),
    FieldSpec("IVV_CNTY", "text", "涉及县", "Counties involved", max_len=200),
    FieldSpec("VEC_TYPE", "code", "矢量类型", "Vector type", codelist="VEC_TYPE"),
)

DIVISION_FIELDS: dict[str, FieldSpec] = _spec(
    FieldSpec("XZQDM", "text", "行政区划代码", "Division code", max_len=12, required=True),
    FieldSpec("XZQMC", "text", "行政区划名称", "Division name", max_len=100, required=True),
)
