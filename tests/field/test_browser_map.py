"""The PWA's offline imagery and outline editing in headless Chromium on a phone viewport.

* the download includes the round's before/after imagery tiles around the tasks, with the size estimated and
  shown against the budget before downloading; then the phone goes offline AND the server is stopped, the app is
  reloaded, and the patch map still shows imagery: every tile on the map was answered from the offline cache
  (the service worker marks it, the page checks it);
* the inspector redraws the outline by tapping the map, drags a vertex, saves offline; once back online the record
  reaches the server with that outline (validated there) and the reviewer sees it on the review map.
Screenshots: artifacts/field/21-… to 24-….
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tuban.store.models import Review
from tuban.web import WebSettings

from .conftest import FieldWorld, add_imagery
from .server import ServerProcess, login
from .test_browser import ARGS, ARTIFACTS, CHROMIUM, open_field_window, phone_login, review_login

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"])]

TILES_FROM_CACHE = """() => {
  const tiles = [...document.querySelectorAll('#d-map img.tile')];
  return tiles.length > 0 && tiles.every(i => i.dataset.source === 'cache' && i.complete && i.naturalWidth === 256);
}"""


def test_offline_imagery_and_outline_redraw(fworld: FieldWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (set TUBAN_CHROMIUM)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    add_imagery(fworld, tmp_path / "imagery")
    open_field_window(fworld)
    monkeypatch.setenv("TUBAN_FIELD_TILE_ZOOMS", "16-18")  # small enough for a quick test
    monkeypatch.setenv("TUBAN_FIELD_TILE_PAD_M", "80")
    server = ServerProcess(fworld.store.url, tmp_path / "blobs", WebSettings.random_secret(),
                           log=tmp_path / "server.log")
    server.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            context, page, errors = phone_login(browser, server.base, "a_field")

            # the size is estimated and shown against the budget BEFORE downloading
            page.click("#btn-check")
            expect(page.locator("#budget-text")).to_contain_text("瓦片 tiles")
            expect(page.locator("#budget-text")).to_contain_text("预算 budget")
            expect(page.locator("#budget-text")).to_have_attribute("data-fits", "true")
            plan = page.evaluate("() => window.tubanField.state.pendingPlan")
            assert plan["zooms"] == [16, 18]
            assert plan["count"] > 10
            with fworld.store.session() as s:
                assert s.scalars(select(Review)).all() == []
            page.screenshot(path=str(ARTIFACTS / "21-budget-imagery.png"), full_page=True)
            # a budget below the estimate trims the top zoom level (re-estimated before downloading)
            page.fill("#budget-mb", str(max(1, int(plan["estimate_bytes"] * 0.6 / 1048576))))
            page.click("#btn-recheck")
            page.wait_for_function("() => window.tubanField.state.pendingPlan.budget_bytes < "
                                   f"{plan['estimate_bytes']}")
            small = page.evaluate("() => window.tubanField.state.pendingPlan")
            assert small["fits"] is False or small["trimmed"], small
            page.fill("#budget-mb", "150")
            page.click("#btn-recheck")
            page.wait_for_function("() => window.tubanField.state.pendingPlan.zooms && "
                                   "window.tubanField.state.pendingPlan.zooms[1] === 18")
            page.click("#btn-download")
            page.wait_for_function("() => document.body.dataset.downloaded", timeout=120_000)
            cached = page.evaluate("async () => (await (await caches.open('tuban-field-tiles-v1')).keys()).length")
            assert cached == plan["count"]

            # offline for real: no network and no server; the app reloads from its cache
            context.set_offline(True)
            server.stop()
            page.reload()
            expect(page.locator("#home")).to_be_visible()
            expect(page.locator("#net")).to_contain_text("离线")
            page.locator("#tasks li", has_text="A-1").click()
            expect(page.locator("#detail")).to_be_visible()
            page.wait_for_function(TILES_FROM_CACHE, timeout=30_000)
            n_tiles = page.locator("#d-map img.tile").count()
            assert n_tiles >= 2
            layer_urls = page.eval_on_selector_all("#d-map img.tile", "els => els.map(e => e.dataset.url)")
            assert all(f"/rounds/{fworld.round_id}/tiles/after/" in u for u in layer_urls)
            page.locator("#d-map").screenshot(path=str(ARTIFACTS / "22-offline-map.png"))
            page.click("#btn-layer")  # the before image is offline too
            page.wait_for_function(TILES_FROM_CACHE.replace("img.tile'", "img.tile[data-url*=before]'"))

            # redraw the outline by tapping four corners, then drag one vertex
            box = page.locator("#d-map").bounding_box()
            assert box is not None
            page.click("#btn-ol-redraw")
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            for dx, dy in ((-60, -45), (55, -50), (65, 40), (-50, 50)):
                page.mouse.click(cx + dx, cy + dy)
            expect(page.locator("#ol-info")).to_contain_text("4 个顶点")
            page.click("#btn-ol-done")
            page.click("#btn-ol-drag")
            expect(page.locator("#d-map circle.vertex")).to_have_count(4)
            before_drag = page.evaluate("() => window.tubanField.state.map.outline()")
            page.mouse.move(cx - 60, cy - 45)
            page.mouse.down()
            page.mouse.move(cx - 75, cy - 60, steps=4)
            page.mouse.up()
            page.click("#btn-ol-done")
            outline = page.evaluate("() => window.tubanField.state.map.outline()")
            assert outline["coordinates"][0][0] != before_drag["coordinates"][0][0]  # the vertex moved
            assert outline["coordinates"][0][1:-1] == before_drag["coordinates"][0][1:-1]  # the others did not
            page.check("input[name=outcome][value=corrected]")
            page.fill("#record-form [name=MEMO]", "现场范围比解译图斑偏西北")
            page.click("#btn-save")
            expect(page.locator("#save-msg")).to_contain_text("已保存")
            page.locator("#detail").screenshot(path=str(ARTIFACTS / "23-outline-redrawn.png"))

            server.start()  # back online: the record syncs with its outline
            context.set_offline(False)
            page.click("#btn-back")
            expect(page.locator("#tasks li", has_text="A-1").locator(".status")).to_have_class(
                "status done", timeout=60_000)
            assert errors == []

            rev = review_login(browser, server.base, "a_staff")
            pid = fworld.patches["A-1"]
            rev.goto(f"{server.base}/rounds/{fworld.round_id}/review#patch={pid}")
            expect(rev.locator("#field-box")).to_have_attribute("data-loaded", str(pid), timeout=20_000)
            expect(rev.locator("#field-records .rec-outline")).to_contain_text("4")
            rev.wait_for_function("() => window.tubanFieldReview.state.outlines && "
                                  "window.tubanFieldReview.state.outlines.features.length === 1 && "
                                  "window.tubanReview.maps[1].getLayer('field-outline')")
            rev.wait_for_timeout(800)
            rev.screenshot(path=str(ARTIFACTS / "24-review-outline.png"))
            browser.close()

        reviewer = login(server.base, "a_staff")
        records = reviewer.get(f"/api/field/patches/{fworld.patches['A-1']}/records").json()["records"]
        assert len(records) == 1
        stored = records[0]["record"]["outline"]
        assert stored["coordinates"] == outline["coordinates"]
        check = records[0]["outline_check"]
        assert check["vertices"] == 4
        assert check["hausdorff_m"] < 300
        reviewer.close()
    finally:
        server.stop()
