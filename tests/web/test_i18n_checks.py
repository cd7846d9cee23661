"""The review page speaks the page's language: photo-check reasons through the web catalogue,
the field panel's strings from it, the map's first view and a boot block that text from the
database cannot break."""

from __future__ import annotations

import datetime as dt
import json
import re
import string
from pathlib import Path

import shapely

from tuban.field import checks as ck
from tuban.field.policy import load_policy
from tuban.web.i18n import load_catalogue

FIELD_REVIEW_JS = Path(__file__).resolve().parents[2] / "src/tuban/web/static/js/field-review.js"


def _every_branch() -> list[ck.CheckResult]:
    """One result from every branch of every photo check."""
    patch = shapely.box(113.0, 35.0, 113.001, 35.001)
    loc = [
        ck.check_location(patch, lon=None, lat=None, bearing=None),
        ck.check_location(shapely.Polygon(), lon=113.0, lat=35.0, bearing=None),
        ck.check_location(patch, lon=113.0005, lat=35.0005, bearing=None),
        ck.check_location(patch, lon=113.0005, lat=34.998, bearing=0.0, max_distance_m=100),
        ck.check_location(patch, lon=113.0005, lat=34.997, bearing=180.0, max_distance_m=100),
        ck.check_location(patch, lon=113.0005, lat=34.997, bearing=None, max_distance_m=100),
    ]
    day = dt.date(2024, 10, 1)
    at = dt.datetime(2024, 10, 5, 3, tzinfo=dt.UTC)
    window = [
        ck.check_field_window(at, None, None),
        ck.check_field_window(None, day, None),
        ck.check_field_window(at.replace(tzinfo=None), day, None),
        ck.check_field_window(at, dt.date(2024, 10, 6), None),
        ck.check_field_window(at, None, dt.date(2024, 10, 2)),
        ck.check_field_window(at, day, dt.date(2024, 10, 31)),
    ]
    other = [
        ck.check_accuracy(None), ck.check_accuracy(5.0), ck.check_accuracy(80.0),
        ck.check_mock_location(None), ck.check_mock_location(True), ck.check_mock_location(False),
        ck.check_exif_position(exif_lon=None, exif_lat=None, exif_valid=False, lon=113.0, lat=35.0, problem="0/0"),
        ck.check_exif_position(exif_lon=113.0, exif_lat=35.0, exif_valid=True, lon=None, lat=None),
        ck.check_exif_position(exif_lon=113.0, exif_lat=35.0, exif_valid=True, lon=113.0001, lat=35.0),
        ck.check_exif_position(exif_lon=113.0, exif_lat=35.0, exif_valid=True, lon=113.01, lat=35.0),
        ck.check_duplicate(sha256="a" * 64, phash=None, patch_id=1, prior=[ck.PriorUse(7, "a" * 64)]),
        ck.check_duplicate(sha256="b" * 64, phash="ff00", patch_id=1, prior=[ck.PriorUse(8, "c" * 64, "ff01")]),
        ck.check_duplicate(sha256=None, phash=None, patch_id=1, prior=[]),
        ck.check_duplicate(sha256="d" * 64, phash=None, patch_id=1, prior=[]),
    ]
    policy = load_policy({"min_photos": 3, "required_kinds": ["overview", "closeup"]})
    sets = [ck.check_photo_set(k, policy=policy) for k in (["overview", "closeup", "x"], ["overview", "closeup"],
                                                           ["overview", "overview", "overview"], ["x"])]
    return loc + window + other + sets


def _fill(template: str, params: dict, *, lang: str, labels: dict[str, str]) -> str:
    """What field-review.js's checkText does."""
    def one(m: re.Match[str]) -> str:
        v = params.get(m.group(1))
        if v is None:
            return m.group(0)
        if isinstance(v, list):
            return (", " if lang == "en" else "、").join(labels.get(f"field.photo.{k}", k) for k in v)
        return str(v)

    return re.sub(r"\{(\w+)\}", one, template)


def test_every_check_reason_has_a_template_in_both_languages() -> None:
    cat = load_catalogue()
    results = _every_branch()
    keys = {r.key for r in results}
    assert len(keys) == len(results), "each branch has its own key"
    for r in results:
        for lang in ("zh", "en"):
            template = cat.messages[lang].get(f"check.{r.key}")
            assert template, f"check.{r.key} missing in {lang}"
            names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            assert names <= set(r.params), (r.key, lang, names, r.params)
        # the English template says exactly what the English message says
        assert _fill(cat.messages["en"][f"check.{r.key}"], r.params, lang="en", labels={}) == r.message, r.key
        zh = _fill(cat.messages["zh"][f"check.{r.key}"], r.params, lang="zh", labels=cat.messages["zh"])
        assert not re.search(r"\b(taken|photos?|missing|patch)\b", zh), zh  # no English left in Chinese
    assert "缺少照片类型：近景" in _fill(cat.messages["zh"]["check.photo_set.missing"],
                                      {"kinds": ["closeup"]}, lang="zh", labels=cat.messages["zh"])
    for name in ("location", "field_window", "accuracy", "mock_location", "exif_position", "duplicate", "photo_set"):
        assert cat.messages["zh"][f"check.name.{name}"] != name


def test_field_review_script_takes_its_strings_from_the_catalogue() -> None:
    cat = load_catalogue()
    js = FIELD_REVIEW_JS.read_text(encoding="utf-8")
    literals = re.findall(r'"(?:[^"\\\n]|\\.)*"', js)
    assert literals
    chinese = [lit for lit in literals if re.search(r"[\u4e00-\u9fff]", lit)]
    assert not chinese, f"UI text belongs in messages.json, not in the script: {chinese}"
    used = set(re.findall(r'"((?:field|check)\.[a-z_.]+)"', js))
    for key in {k for k in used if not k.endswith(".")}:
        assert key in cat.messages["zh"], key
    listed = re.search(r'\[("title".*?)\]\.forEach', js, re.S)
    assert listed
    for name in re.findall(r'"(\w+)"', listed.group(1)):
        assert f"field.{name}" in cat.messages["zh"], name
        assert f"field.{name}" in cat.messages["en"], name


def _boot(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="boot">(.*?)</script>', html, re.S)
    assert m, "no boot block"
    return json.loads(m.group(1))


def test_review_page_boot_has_the_extent_and_cannot_be_broken_by_a_name(client_for, world) -> None:
    from tuban.store.models import Round

    staff = client_for("a_staff")
    html = staff.get(f"/rounds/{world.round_id}/review").text
    boot = _boot(html)
    assert boot["messages"]["field.title"] == "外业核查"
    assert boot["messages"]["check.location.near"].startswith("拍摄点距图斑")
    # the map opens on the reviewer's visible patches (county A's five, in 113.2…113.3 / 35.2…35.3)
    detail = [staff.get(f"/api/patches/{pid}").json() for pid in world.patches.values()]
    visible = [d["bbox"] for d in detail if "bbox" in d]
    minx, miny, maxx, maxy = boot["extent"]
    assert minx == min(b[0] for b in visible)
    assert miny == min(b[1] for b in visible)
    assert maxx == max(b[2] for b in visible)
    assert maxy == max(b[3] for b in visible)
    evil = '</script><script>alert("x")</script>&'
    with world.store.transaction(actor="t") as tx:
        tx.session.get(Round, world.round_id).name = evil
    html = staff.get(f"/rounds/{world.round_id}/review").text
    assert "<script>alert" not in html
    assert _boot(html)["round"]["name"] == evil
