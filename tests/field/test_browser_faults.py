"""The PWA in headless Chromium under faults (issue 7 point 7, reliability D #38, #42):

* the server is SIGKILLed in the middle of a photo upload from the phone, restarted, and the app's retry
  completes the upload: exactly one stored photo whose bytes match the phone's hash, no partial file;
* two phones edit the same patch offline; the second sync is a hard conflict with both values kept, the phone
  shows it, and the reviewer sees both versions on the review page and resolves it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tuban.field.testing import make_jpeg
from tuban.store.models import AuditEntry, Photo, Review
from tuban.web import WebSettings

from .conftest import COUNTY_A, FieldWorld
from .server import ServerProcess
from .test_browser import (
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    DEVICE,
    compass,
    open_field_window,
    phone_login,
    review_login,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"])]


def _phone(browser: Any, base: str, username: str) -> tuple[Any, Any, list[str]]:
    from playwright.sync_api import expect

    context, page, errors = phone_login(browser, base, username)
    page.click("#btn-check")
    expect(page.locator("#budget-text")).to_contain_text("2 个图斑")
    page.click("#btn-download")
    expect(page.locator("#tasks li")).to_have_count(2)
    return context, page, errors


def _open_task(page: Any, qdnm: str) -> None:
    from playwright.sync_api import expect

    page.locator("#tasks li", has_text=qdnm).click()
    expect(page.locator("#detail")).to_be_visible()


def _chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (set TUBAN_CHROMIUM)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


def _upload_offset(updir: Path) -> tuple[int, int] | None:
    for meta in updir.glob("*.json"):
        try:
            state = json.loads(meta.read_text("utf-8"))
        except (OSError, ValueError):
            continue  # being replaced right now
        return int(state["offset"]), int(state["meta"]["size"])
    return None


def test_server_killed_mid_photo_upload_then_resumed(fworld: FieldWorld, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    _chromium()
    open_field_window(fworld)
    server = ServerProcess(fworld.store.url, tmp_path / "blobs", WebSettings.random_secret(),
                           log=tmp_path / "server.log")
    data = make_jpeg(lon=DEVICE["longitude"], lat=DEVICE["latitude"], seed=61, target_bytes=1_600_000)
    sha = hashlib.sha256(data).hexdigest()
    server.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            context, page, errors = _phone(browser, server.base, "a_field")
            _open_task(page, "A-1")
            compass(page, 0)
            page.set_input_files("input[data-kind=overview]",
                                 files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": data}])
            expect(page.locator("#photos > li")).to_have_count(1)
            # a slow uplink (≈ 400 KB/s): the 1.6 MB photo takes several 256 KB chunks and seconds
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 40,
                                                          "downloadThroughput": -1, "uploadThroughput": 400_000})
            page.click("#btn-save")  # online: the sync starts at once
            deadline = time.monotonic() + 60
            progress = None
            while time.monotonic() < deadline:
                progress = _upload_offset(tmp_path / "uploads")
                if progress and 0 < progress[0] < progress[1]:
                    break
                time.sleep(0.05)
            assert progress, "the upload never started"
            assert 0 < progress[0] < progress[1], progress
            server.kill()  # mid-upload: some chunks acknowledged, the next one in flight
            killed_at = progress[0]
            expect(page.locator("#photos .status")).to_have_class("status uploading")
            page.screenshot(path=str(ARTIFACTS / "10-killed-mid-upload.png"), full_page=True)
            time.sleep(1)
            server.start()  # same store, blobs, uploads and secret: the phone's session still holds
            cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                          "downloadThroughput": -1, "uploadThroughput": -1})
            # the app retries by itself (no reload, no online event) and resumes at the persisted offset
            expect(page.locator("#photos .status")).to_have_class("status done", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "11-resumed-done.png"), full_page=True)
            assert errors == []
            browser.close()
    finally:
        server.stop()
    with fworld.store.session() as s:
        photos = s.scalars(select(Photo)).all()
        assert len(photos) == 1  # exactly one stored photo
        assert (photos[0].sha256, photos[0].size) == (sha, len(data))
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "photo.create")) == 1
    blob = tmp_path / "blobs" / sha[:2] / sha[2:]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha  # the server's bytes are the phone's
    assert not list((tmp_path / "uploads").glob("*.part"))
    log = (tmp_path / "server.log").read_text("utf-8", "replace")
    assert killed_at > 0, log


def test_two_phones_edit_same_patch_offline_conflict_surfaced(fworld: FieldWorld, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    _chromium()
    fworld.store.add_user("a_field2", "password-a_field2", roles=[("field_inspector", COUNTY_A)], actor="test")
    fworld.store.add_user("a_boss", "password-a_boss", roles=[("county_admin", COUNTY_A)], actor="test")
    server = ServerProcess(fworld.store.url, tmp_path / "blobs", WebSettings.random_secret(),
                           log=tmp_path / "server.log")
    server.start()
    pid = fworld.patches["A-2"]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            phones = [_phone(browser, server.base, name) for name in ("a_field", "a_field2")]
            for (context, page, _), value in zip(phones, ("停工", "完工"), strict=True):
                context.set_offline(True)
                expect(page.locator("#net")).to_contain_text("离线")
                _open_task(page, "A-2")
                page.check("input[name=outcome][value=corrected]")
                page.select_option("#record-form [name=QDCS]", value)
                page.click("#btn-save")
                expect(page.locator("#save-msg")).to_contain_text("已保存")
                page.click("#btn-back")
            with fworld.store.session() as s:
                assert s.scalars(select(Review)).all() == []  # both edits are still on the phones
            (ctx1, page1, err1), (ctx2, page2, err2) = phones
            ctx1.set_offline(False)
            expect(page1.locator("#tasks li", has_text="A-2").locator(".status")).to_have_class(
                "status done", timeout=30_000)
            ctx2.set_offline(False)
            status2 = page2.locator("#tasks li", has_text="A-2").locator(".status")
            expect(status2).to_have_class("status conflict", timeout=30_000)
            expect(status2).to_contain_text("冲突")
            page2.screenshot(path=str(ARTIFACTS / "12-phone-conflict.png"), full_page=True)
            assert err1 == []
            assert err2 == []

            # the reviewer sees both versions and settles the conflict on the review page
            page = review_login(browser, server.base, "a_boss")
            page.goto(f"{server.base}/rounds/{fworld.round_id}/review#patch={pid}")
            expect(page.locator("#field-box")).to_have_attribute("data-loaded", str(pid), timeout=20_000)
            recs = page.locator("#field-records .field-rec")
            expect(recs).to_have_count(2)
            hard = page.locator("#field-records .field-rec.conflict-hard")
            expect(hard).to_have_count(1)
            row = hard.locator("tr[data-field=QDCS]")
            expect(row.locator(".v-server")).to_contain_text("停工")
            expect(row.locator(".v-device")).to_contain_text("完工")
            page.locator("#field-box").screenshot(path=str(ARTIFACTS / "13-review-conflict.png"))
            row.locator(".v-device input[type=radio]").check()
            hard.locator(".btn-resolve").click()
            expect(page.locator("#field-records .field-rec.conflict-hard")).to_have_count(0, timeout=15_000)
            expect(page.locator("#field-records")).to_contain_text("已裁决")
            expect(page.locator("#p-version")).to_have_text(str(fworld.patch("A-2").version))  # the panel reloaded
            page.screenshot(path=str(ARTIFACTS / "14-review-resolved.png"))
            browser.close()
    finally:
        server.stop()
    assert fworld.patch("A-2").qdcs == "完工"
    assert fworld.patch("A-2").version == 3  # v1 → phone 1's edit → the reviewer's choice
    with fworld.store.session() as s:
        reviews = s.scalars(select(Review).where(Review.patch_id == pid).order_by(Review.id)).all()
        assert [r.kind for r in reviews] == ["field", "field"]
        data = reviews[1].data
        assert data["conflict"]["fields"]["QDCS"] == {"base": "施工", "server": "停工", "device": "完工"}
        assert data["resolution"]["choices"] == {"QDCS": "device"}
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("field.%"))).all()
        assert sorted(actions) == ["field.conflict.resolve", "field.record.create", "field.record.create"]
