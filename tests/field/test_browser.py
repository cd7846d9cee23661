"""The PWA in headless Chromium on a phone viewport: download tasks, go offline, record a patch with photos,
come back online, sync, and find the record and photos on the review side. Screenshots go to artifacts/field/."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from tuban.field.testing import make_jpeg
from tuban.store.models import Photo, Review, Round
from tuban.web import WebSettings

from .conftest import LAT, LON, FieldWorld
from .server import ServerProcess, login

CHROMIUM = os.environ.get("TUBAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "field"
DEVICE = {"latitude": LAT - 0.0002, "longitude": LON + 0.0005, "accuracy": 8}  # ≈ 22 m south of A-1


def open_field_window(world: FieldWorld) -> None:
    """Photos are taken now: open the round's field window around today."""
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    with world.store.transaction(actor="test") as tx:
        tx.session.execute(update(Round).where(Round.id == world.round_id).values(
            field_start=today - dt.timedelta(days=30), field_end=today + dt.timedelta(days=30)))


def phone_login(browser: Any, base: str, username: str) -> tuple[Any, Any, list[str]]:
    """A phone (viewport, touch, geolocation at DEVICE) logged in to the field app, its service worker
    ready (offline use); page errors collected."""
    from playwright.sync_api import expect

    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True,
        geolocation=DEVICE, permissions=["geolocation"], locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/field/")
    page.fill("#login-form [name=username]", username)
    page.fill("#login-form [name=password]", f"password-{username}")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#home")).to_be_visible()
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    return context, page, errors


def compass(page: Any, alpha: float) -> None:
    """Emulate the phone's compass (absolute device orientation, alpha counter-clockwise from north)."""
    page.evaluate("a => window.dispatchEvent(new DeviceOrientationEvent('deviceorientationabsolute', "
                  "{alpha: a, beta: 0, gamma: 0, absolute: true}))", alpha)


def review_login(browser: Any, base: str, username: str) -> Any:
    """A desktop page logged in to the review web app."""
    page = browser.new_page(viewport={"width": 1500, "height": 950}, locale="zh-CN", timezone_id="Asia/Shanghai")
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", f"password-{username}")
    page.click("#login-submit")
    page.wait_for_url(f"{base}/rounds")
    return page


def see_on_review_page(browser: Any, base: str, world: FieldWorld, qdnm: str) -> None:
    """The reviewer opens the patch: the record, the photo markers with bearing arrows and the checks."""
    from playwright.sync_api import expect

    page = review_login(browser, base, "a_staff")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    pid = world.patches[qdnm]
    page.goto(f"{base}/rounds/{world.round_id}/review#patch={pid}")
    expect(page.locator("#p-title")).to_contain_text(qdnm)
    expect(page.locator("#field-box")).to_have_attribute("data-loaded", str(pid), timeout=20_000)
    rec = page.locator("#field-records .field-rec")
    expect(rec).to_have_count(1)
    expect(rec).to_contain_text("a_field")
    expect(rec).to_contain_text("QDCS: 停工")
    expect(rec).to_contain_text("焦作市新城建设有限公司")
    expect(rec).to_contain_text("弃土堆")
    expect(page.locator("#field-photos .field-photo")).to_have_count(3)
    expect(page.locator("#field-photoset")).to_contain_text("通过")
    # each photo: six checks, location / window / accuracy / EXIF / duplicate passed, with their reasons
    for check in ("location", "field_window", "accuracy", "exif_position", "duplicate"):
        expect(page.locator(f"#field-photos li[data-check={check}].chk-pass")).to_have_count(3)
    # the reasons in the page's language (zh-CN), from the web catalogue
    expect(page.locator("#field-photos li[data-check=location]").first).to_contain_text("拍摄点距图斑")
    expect(page.locator("#field-photoset")).to_contain_text("所需类型齐全")
    # thumbnails are display copies through the permission-checked route, and they load
    page.wait_for_function("""() => [...document.querySelectorAll('#field-photos img')]
        .every(i => i.complete && i.naturalWidth > 0 && i.src.includes('/api/field/photos/') && i.src.endsWith('display=1'))""")
    # photo markers with bearing arrows on the after-image map, rotated to the device compass bearing
    markers = page.locator(".field-photo-marker")
    expect(markers).to_have_count(3)
    bearings = page.eval_on_selector_all(".field-photo-marker", "els => els.map(e => [e.dataset.bearing, e.style.transform])")
    for bearing, transform in bearings:
        angle = re.search(r"rotateZ\(([-\d.]+)deg\)", transform)
        assert bearing, bearings
        assert angle, bearings
        assert abs(float(angle.group(1)) - float(bearing)) < 0.5, bearings  # the arrow points along the bearing
    page.wait_for_function("() => window.tubanFieldReview.state.cones && window.tubanReview.maps[1].getLayer('field-cones')")
    cones = page.evaluate("() => window.tubanFieldReview.state.cones.features.map(f => f.geometry.coordinates[0].length)")
    assert cones == [15, 15, 15]  # a view cone (apex, 13 arc points, apex) per photo
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "07-review-field-records.png"))
    page.locator("#field-box").screenshot(path=str(ARTIFACTS / "08-review-field-panel.png"))
    assert errors == []
    page.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_offline_record_with_photos_then_sync(fworld: FieldWorld, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (set TUBAN_CHROMIUM)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(fworld.store.url, tmp_path / "blobs", WebSettings.random_secret(),
                           log=tmp_path / "server.log")
    photos = {kind: make_jpeg(lon=DEVICE["longitude"], lat=DEVICE["latitude"], seed=30 + i, width=800, height=600)
              for i, kind in enumerate(("overview", "closeup", "disturbance"))}
    open_field_window(fworld)
    server.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            context, page, errors = phone_login(browser, server.base, "a_field")

            page.click("#btn-check")
            expect(page.locator("#budget-text")).to_contain_text("2 个图斑")
            page.screenshot(path=str(ARTIFACTS / "01-budget.png"), full_page=True)
            page.click("#btn-download")
            expect(page.locator("#tasks li")).to_have_count(2)
            first = page.locator("#tasks li").first
            expect(first).to_contain_text("A-1")  # sorted by distance
            expect(first.locator(".here")).to_be_visible()  # within 50 m
            page.screenshot(path=str(ARTIFACTS / "02-tasks.png"), full_page=True)

            context.set_offline(True)
            expect(page.locator("#net")).to_contain_text("离线")
            first.click()
            expect(page.locator("#detail")).to_be_visible()
            expect(page.locator("#d-nav")).to_contain_text("我在这里")
            page.check("input[name=outcome][value=corrected]")
            page.select_option("#record-form [name=QDCS]", "停工")
            page.fill("#record-form [name=responsible_party]", "焦作市新城建设有限公司")
            page.fill("#record-form [name=PROBLEM]", "裸露土方未苫盖，存在扬尘和水土流失风险")
            page.fill("#pt-label", "弃土堆")
            page.click("#btn-point")
            compass(page, 340)  # the phone faces north-north-west: heading 20° east of north
            for kind, data in photos.items():
                page.set_input_files(f"input[data-kind={kind}]",
                                     files=[{"name": f"{kind}.jpg", "mimeType": "image/jpeg", "buffer": data}])
            expect(page.locator("#photos > li")).to_have_count(3)
            page.click("#btn-save")
            expect(page.locator("#save-msg")).to_contain_text("已保存")
            expect(page.locator("#photos .status.queued")).to_have_count(3)
            page.screenshot(path=str(ARTIFACTS / "03-record-offline.png"), full_page=True)
            page.click("#btn-back")
            expect(page.locator("#tasks li").first.locator(".status")).to_have_class("status queued")
            page.screenshot(path=str(ARTIFACTS / "04-queued-offline.png"), full_page=True)
            with fworld.store.session() as s:  # nothing reached the server while offline
                assert s.scalars(select(Review)).all() == []

            context.set_offline(False)  # the 'online' event starts the sync
            expect(page.locator("#tasks li").first.locator(".status")).to_have_class("status done", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "05-synced.png"), full_page=True)
            first = page.locator("#tasks li").first
            first.click()
            expect(page.locator("#photos .chk-pass").first).to_be_visible()
            expect(page.locator("#record-form [name=QDCS]")).to_have_value("停工")  # the task follows the server
            page.screenshot(path=str(ARTIFACTS / "06-checks.png"), full_page=True)
            assert errors == []
            see_on_review_page(browser, server.base, fworld, "A-1")
            browser.close()

        # the review side sees the record, the edit and the photos with their checks
        reviewer = login(server.base, "a_staff")
        pid = fworld.patches["A-1"]
        records = reviewer.get(f"/api/field/patches/{pid}/records").json()["records"]
        assert len(records) == 1
        rec = records[0]["record"]
        assert rec["fields"]["QDCS"] == "停工"
        assert rec["responsible_party"] == "焦作市新城建设有限公司"
        assert rec["points"][0]["label"] == "弃土堆"
        listing = reviewer.get(f"/api/field/patches/{pid}/photos").json()
        assert sorted(p["kind"] for p in listing["photos"]) == ["closeup", "disturbance", "overview"]
        assert listing["photo_set"]["status"] == "pass"
        for p in listing["photos"]:
            status = {r["name"]: r["status"] for r in p["checks"]["results"]}
            assert status["location"] == status["field_window"] == status["accuracy"] == "pass", status
            assert status["exif_position"] == "pass", status  # the generated EXIF GPS is the device position
            assert status["duplicate"] == "pass", status
        reviewer.close()
    finally:
        server.stop()
    assert fworld.patch("A-1").qdcs == "停工"
    with fworld.store.session() as s:
        assert len(s.scalars(select(Photo)).all()) == 3
