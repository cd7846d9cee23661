from __future__ import annotations

import pytest

from tuban.codes import codelists
from tuban.errors import FieldError
from tuban.fields import PATCH_FIELDS, PROJECT_FIELDS


def test_every_domain_list_is_present_and_versioned() -> None:
    cl = codelists()
    assert cl.version
    for name in ("BYD", "QTYPE", "QDTYPE", "QDCS", "PRO_TYPE", "PRO_LEVEL", "PRO_CATE", "PRO_NAT", "VEC_TYPE"):
        assert cl[name].codes(), name
    assert len(cl["PRO_TYPE"].codes()) == 36
    assert cl["PRO_TYPE"].get("XMLX-29").zh == "房地产工程"


def test_labels_in_both_languages() -> None:
    cl = codelists()
    assert cl.label("QDTYPE", "续建（范围扩大）", "zh") == "续建（范围扩大）"
    assert cl.label("QDTYPE", "续建（范围扩大）", "en") == "Continued (expanded)"
    assert cl.label("BYD", "not-a-code", "en") == "not-a-code"


def test_validate_names_the_list_and_the_fix() -> None:
    cl = codelists()
    assert cl.validate("BYD", "合规") == "合规"
    assert cl.validate("BYD", "") is None
    with pytest.raises(FieldError, match=r"BYD='违规' in row 3 is not in code list BYD") as info:
        cl.validate("BYD", "违规", context="row 3")
    assert "合规" in str(info.value)
    with pytest.raises(FieldError, match="unknown code list"):
        cl["NOPE"]


def test_every_coded_field_names_an_existing_list() -> None:
    cl = codelists()
    for spec in [*PATCH_FIELDS.values(), *PROJECT_FIELDS.values()]:
        if spec.codelist:
            assert cl[spec.codelist].codes(), spec.name
