"""Browser test: headless Debian Chromium driven by Playwright (sync API).

A county reviewer logs in, opens a patch, uses the swipe, records a decision and sees it in
the history; another county's reviewer fails to reach the patch. Screenshots go to
``artifacts/``. Without Chromium the test is skipped, unless ``TUBAN_REQUIRE_BROWSER`` is
set: then it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _need_browser() -> None:
    if not (Path(CHROMIUM).exists() and shutil.which(CHROMIUM)):
        if os.environ.get("TUBAN_REQUIRE_BROWSER"):
            pytest.fail(f"TUBAN_REQUIRE_BROWSER is set but {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("TUBAN_REQUIRE_BROWSER"):
            pytest.fail("TUBAN_REQUIRE_BROWSER is set but playwright is not installed")
        pytest.skip("playwright not installed")
    vendor = Path(__file__).resolve().parents[2] / "src/tuban/web/static/vendor/maplibre-gl.js"
    if not vendor.exists():
        pytest.fail(f"{vendor} is missing: run scripts/build-web-assets (npm ci + copy) first")


@pytest.fixture
def server(sqlite_world, imagery_dir: Path, detection_dir: Path):
    """The app served by uvicorn in a thread on 127.0.0.1 and a random port (with the imagery and detection
    folders of tests/web/conftest.py)."""
    import uvicorn

    from tuban.web import WebSettings, create_app

    _need_browser()
    world = sqlite_world
    app = create_app(WebSettings(database_url=world.store.url, secret_key=WebSettings.random_secret(),
                                 upgrade_on_start=False, imagery_dir=imagery_dir, detection_dir=detection_dir),
                     store=world.store)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", world
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _login(page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", f"password-{username}")
    page.click("#login-submit")
    page.wait_for_url(f"{base}/rounds")


def test_review_in_the_browser(server) -> None:
    from playwright.sync_api import sync_playwright

    base, world = server
    ARTIFACTS.mkdir(exist_ok=True)
    pid = world.patches["A-1"]
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 900}, locale="zh-CN")
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            console: list[str] = []
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
            page.on("requestfailed", lambda req: console.append(f"failed: {req.url}"))
            _login(page, base, "a_staff")
            assert "监管期次" in page.content()
            page.screenshot(path=str(ARTIFACTS / "web-rounds.png"))
            page.click("a.open-review")
            page.wait_for_selector("#patch-list li")
            names = page.locator("#patch-list li b").all_inner_texts()
            assert set(names) == {"A-1", "A-2", "A-3", "X-AB", "X-BA"}
            # before any patch is opened the map shows this county's patches, not a fixed place
            page.wait_for_function("() => window.tubanReview.mapReady")
            extent = page.evaluate("() => JSON.parse(document.getElementById('boot').textContent).extent")
            view = page.evaluate("""() => { const m = window.tubanReview.maps[1], b = m.getBounds();
                return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth(), m.getZoom()]; }""")
            assert view[0] <= extent[0], (view, extent)
            assert view[1] <= extent[1], (view, extent)
            assert view[2] >= extent[2], (view, extent)
            assert view[3] >= extent[3], (view, extent)
            assert view[2] - view[0] < 4 * (extent[2] - extent[0]) + 0.01, (view, extent)  # fitted, not zoomed out
            page.locator("body").press("j")  # keyboard navigation opens the first patch
            page.wait_for_selector("#p-title:has-text('A-1')")
            assert page.inner_text("#p-title").startswith("A-1")
            assert "疑似未批先建" in page.inner_text("#p-suspected")
            # the field panel speaks the page's language, from the catalogue
            page.wait_for_selector(f"#field-box[data-loaded='{pid}']")
            assert page.inner_text("#field-box summary") == "外业核查"
            assert "暂无外业记录" in page.inner_text("#field-records")
            # the swipe clips the after-image map
            page.locator("#swipe").fill("20")
            clip = page.eval_on_selector("#map-after", "el => el.style.clipPath")
            assert "20%" in clip
            page.locator("#opacity").fill("70")
            # record the office review decision
            page.select_option("#d-byd", "疑似未批先建")
            page.fill("#d-note", "内业核实：无批复文件")
            page.click("#btn-review")
            page.wait_for_selector("#history li:has-text('patch.office_review')")
            assert "内业已复核" in page.inner_text("#p-state")
            assert "内业核实" in page.inner_text("#history")
            # a stale save: someone else saved the patch since it was opened here; the page shows both
            # versions and the API's error as every page does (tubanApi.describe: status, message, fix)
            token = next(c["value"] for c in page.context.cookies() if c["name"] == "tuban_csrf")
            version = int(page.inner_text("#p-version"))
            other = page.request.patch(f"{base}/api/patches/{pid}", headers={"X-CSRF-Token": token},
                                       data={"based_on_version": version, "fields": {"MEMO": "另一窗口的备注"}})
            assert other.status == 200, other.text()
            page.locator("details:has(#fields-form) > summary").click()
            page.fill("#fields-form input[name='MEMO']", "本窗口的备注")
            page.click("#btn-save")
            page.wait_for_selector("#conflict:not([hidden])")
            err = page.inner_text("#err")
            assert err.startswith(f"409 patch {pid} changed since you opened it"), err
            assert err.endswith("— compare both versions, then save again based on the current one"), err
            assert "另一窗口的备注" in page.inner_text("#conflict-current")
            page.wait_for_timeout(1500)  # let the map draw its tiles
            page.screenshot(path=str(ARTIFACTS / "web-review.png"))
            map_status = page.inner_text("#map-status")
            info = page.evaluate("""() => { const m = window.tubanReview.maps[1]; if (!m) return null;
                const c = m.getCanvas(); return {zoom: m.getZoom(), center: m.getCenter(), loaded: m.loaded(),
                w: c.width, h: c.height, gl: !!m.painter}; }""")
            console.append(f"map: {info}")
            (ARTIFACTS / "web-console.txt").write_text("\n".join(console), encoding="utf-8")
            page.click("#logout")
            page.wait_for_url(f"{base}/login")
            # another county cannot reach the patch, by page or by API
            _login(page, base, "b_staff")
            resp = page.goto(f"{base}/patches/{pid}")
            assert resp is not None
            assert resp.status == 404
            assert "404" in page.inner_text("#problem")
            page.screenshot(path=str(ARTIFACTS / "web-other-county-404.png"))
            api = page.request.get(f"{base}/api/patches/{pid}")
            assert api.status == 404
        finally:
            browser.close()
    assert not errors, errors
    assert map_status == "", f"map did not start: {map_status}"


def test_case_advanced_in_the_browser_and_english_ui(server) -> None:
    from playwright.sync_api import sync_playwright

    from tuban.workflow import reporting
    from tuban.workflow.service import perform

    base, world = server
    pid = world.patches["A-2"]
    perform(world.store, world.actor("a_admin"), reporting.determine, pid, byd="超出防治责任范围",
            based_on_version=world.version("A-2"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 700})
            _login(page, base, "a_admin")
            page.goto(f"{base}/cases")
            form = page.locator("form.advance").first
            form.locator("select[name=to]").select_option("rectifying")
            form.locator("input[name=deadline]").fill("2024-12-31")
            form.locator("input[name=note]").fill("限期整改")
            form.locator("button").click()
            page.wait_for_selector("td.case-state:has-text('整改中')")
            assert "2024年12月31日" in page.inner_text("td.case-deadline")
            page.goto(f"{base}/lang/en?next=/cases")
            assert page.inner_text("td.case-state") == "Rectifying"
            assert page.inner_text("td.case-deadline") == "2024-12-31"
            page.screenshot(path=str(ARTIFACTS / "web-cases-en.png"))
            page.goto(f"{base}/rounds/{world.round_id}/review#patch={pid}")
            page.wait_for_selector(f"#field-box[data-loaded='{pid}']")
            assert page.inner_text("#field-box summary") == "Field verification"
            assert "No field records yet" in page.inner_text("#field-records")
        finally:
            browser.close()
    hist = world.store.session
    with hist() as s:
        from sqlalchemy import select

        from tuban.store.models import AuditEntry

        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.entity == "case")))
    assert actions == ["case.open", "case.rectifying"]


def _map_point(page, lng: float, lat: float) -> tuple[float, float]:
    """Page coordinates of a lng/lat on the after-image map."""
    box = page.locator("#map-after").bounding_box()
    assert box is not None
    px = page.evaluate("([lng, lat]) => { const p = window.tubanReview.maps[1].project([lng, lat]); return [p.x, p.y]; }",
                       [lng, lat])
    return box["x"] + px[0], box["y"] + px[1]


def test_split_by_drawn_line_then_merge_in_the_browser(server) -> None:
    from playwright.sync_api import sync_playwright
    from sqlalchemy import select

    from tuban.store.models import Patch, PatchLineage

    base, world = server
    pid = world.patches["A-1"]
    with world.store.session() as s:
        minx, miny, maxx, maxy = s.get(Patch, pid).geometry.bounds
    mid_y = (miny + maxy) / 2
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 900}, locale="zh-CN")
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            _login(page, base, "a_staff")
            page.goto(f"{base}/rounds/{world.round_id}/review#patch={pid}")
            page.wait_for_selector("#p-title:has-text('A-1')")
            page.locator("#swipe").fill("0")  # the after-image map takes every click
            page.wait_for_function("() => window.tubanReview.mapReady === true")
            page.wait_for_timeout(500)
            # split: draw a line across the patch, west to east through its middle
            page.click("#btn-split-draw")
            for lng in (minx - (maxx - minx) * 0.3, maxx + (maxx - minx) * 0.3):
                x, y = _map_point(page, lng, mid_y)
                page.mouse.click(x, y)
            assert page.evaluate("() => window.tubanDraw.points.length") == 2
            page.screenshot(path=str(ARTIFACTS / "web-split-line.png"))
            page.click("#btn-split-done")
            page.wait_for_selector("#flash:has-text('A-1-1')")
            with world.store.session() as s:
                children = list(s.scalars(select(PatchLineage.child_id).where(PatchLineage.parent_id == pid,
                                                                              PatchLineage.kind == "split")))
                assert s.get(Patch, pid).state == "superseded"
            assert len(children) == 2
            # merge: shift-click both halves on the map, then merge them back into one patch
            page.wait_for_function("""() => window.tubanReview.maps[1].querySourceFeatures("patches")
                .filter(f => String(f.properties.qdnm).startsWith("A-1-")).length >= 2""")
            page.wait_for_timeout(500)
            page.keyboard.down("Shift")
            for frac in (0.25, 0.75):
                x, y = _map_point(page, (minx + maxx) / 2, miny + (maxy - miny) * frac)
                page.mouse.click(x, y)
            page.keyboard.up("Shift")
            assert page.inner_text("#merge-count") == "2"
            page.screenshot(path=str(ARTIFACTS / "web-merge-selection.png"))
            page.click("#btn-merge")
            page.wait_for_selector("#flash:has-text('已合并')")
            page.screenshot(path=str(ARTIFACTS / "web-merged.png"))
        finally:
            browser.close()
    assert not errors, errors
    with world.store.session() as s:
        merged = sorted(s.scalars(select(PatchLineage.child_id).where(PatchLineage.parent_id.in_(children),
                                                                      PatchLineage.kind == "merge")))
        assert len(merged) == 2
        assert merged[0] == merged[1]
        assert s.get(Patch, merged[0]).geometry.area > 0.99 * (maxx - minx) * (maxy - miny)


def _run_one_job(world, imagery_dir: Path, detection_dir: Path) -> dict:
    """What ``tuban worker --once`` does: the oldest queued job, run to its end (as the API shows it)."""
    from tuban.workflow.jobs import Worker

    ended = Worker(world.store, imagery_dir=imagery_dir, detection_dir=detection_dir, lease_s=30).run_once()
    assert ended is not None
    return ended


def test_detection_jobs_in_the_browser(server, imagery_dir: Path, detection_dir: Path) -> None:
    """A province admin queues a detection on the rounds page, in Chinese; the worker's failure and a
    cancellation show up in the table without reloading the page."""
    from tuban.workflow import jobs

    base, world = server
    ARTIFACTS.mkdir(exist_ok=True)
    with _chinese_page(base, "p_admin") as (page, errors):
        assert "后台任务（自动提取与复核影像）" in page.content()
        page.wait_for_selector("#detection-jobs tbody tr")
        assert page.inner_text("#detection-jobs tbody") == "暂无后台任务"
        page.wait_for_function("() => document.querySelectorAll('#job-submit select[name=after] option').length >= 2")
        page.fill("#job-submit input[name=output]", "2025-自动")
        page.select_option("#job-submit select[name=before]", "before.tif")
        page.select_option("#job-submit select[name=after]", "after.tif")
        page.click("#job-submit-button")
        page.wait_for_selector("#detection-jobs tr[data-state=queued]")
        row = page.locator("#detection-jobs tr[data-state=queued]")
        assert "2025-自动.gpkg" in row.inner_text()
        assert "排队中" in row.inner_text()
        # the worker takes it: the placeholder files are no imagery, so the job fails with the reason
        ended = _run_one_job(world, imagery_dir, detection_dir)
        assert ended["state"] == "failed"
        assert "before.tif: not an image GDAL can read" in ended["error"]
        assert str(imagery_dir) not in ended["error"]  # no server folders shown to users
        page.wait_for_selector("#detection-jobs tr[data-state=failed]", timeout=10_000)
        failed = page.locator("#detection-jobs tr[data-state=failed]").inner_text()
        assert "失败" in failed
        assert ended["error"].split(":")[0] in failed
        # a second one, cancelled from its row
        page.fill("#job-submit input[name=output]", "2025-second")
        page.click("#job-submit-button")
        page.wait_for_selector("#detection-jobs tr[data-state=queued] button.cancel-job")
        page.click("#detection-jobs tr[data-state=queued] button.cancel-job")
        page.wait_for_selector("#detection-jobs tr[data-state=cancelled]")
        assert "已取消" in page.locator("#detection-jobs tr[data-state=cancelled]").inner_text()
        # a third one, done while the page is open: its output joins the round form's detection runs
        page.fill("#job-submit input[name=output]", "2025-third")
        page.click("#job-submit-button")
        page.wait_for_selector("#detection-jobs tr[data-state=queued]")
        claim = jobs.claim_job(world.store, "w", lease_s=30)
        assert claim is not None
        part = detection_dir / "third.part"
        part.write_bytes(b"a detection output")
        jobs.finish_job(world.store, claim.id, "w", [(part, detection_dir / "2025-third.gpkg")], {"patches": 7})
        page.wait_for_selector("#detection-runs option[value='2025-third.gpkg']", state="attached", timeout=10_000)
        assert "7 个图斑" in page.locator("#detection-jobs tr[data-state=done]").inner_text()
        page.click("#detection-jobs tr[data-state=done] button.use-run")  # the round form, filled in
        assert page.input_value("#detection-runs") == "2025-third.gpkg"
        assert page.input_value("#round-import input[name=name]") == "2025-third"
        page.locator("#detection-jobs-card").screenshot(path=str(ARTIFACTS / "web-detection-jobs.png"))
        assert not errors, errors


def test_an_imagery_job_in_the_browser(server, imagery_dir: Path, detection_dir: Path) -> None:
    """A province admin makes a true-colour review image of a scene on the rounds page (生成复核影像), in
    Chinese: a refused scene says why, the job's row says what it made, and the image is offered at once."""
    from tuban.workflow import jobs

    base, world = server
    ARTIFACTS.mkdir(exist_ok=True)
    with _chinese_page(base, "p_admin") as (page, errors):
        assert "生成复核影像（真彩色）" in page.content()
        page.wait_for_selector("#imagery-job-submit select[name=scene] option[value='round/after.tif']",
                               state="attached")
        page.fill("#imagery-job-submit input[name=output]", "2025-后时相")
        page.select_option("#imagery-job-submit select[name=scene]", "before.tif")  # a placeholder, no image
        page.click("#imagery-job-button")
        page.wait_for_function("() => document.getElementById('imagery-job-result').textContent.startsWith('422')")
        assert "before.tif" in page.inner_text("#imagery-job-result")
        assert str(imagery_dir) not in page.inner_text("#imagery-job-result")
        page.select_option("#imagery-job-submit select[name=scene]", "round/after.tif")
        page.select_option("#imagery-job-submit select[name=priority]", label="紧急")  # before queued detections
        page.click("#imagery-job-button")
        page.wait_for_selector("#detection-jobs tr[data-kind=imagery][data-state=queued]")
        row = page.locator("#detection-jobs tr[data-kind=imagery]")
        assert "复核影像 · 紧急" in row.inner_text()
        assert jobs.list_jobs(world.store)[0]["priority"] == 9
        assert "true-colour/2025-后时相.tif" in row.inner_text()
        ended = _run_one_job(world, imagery_dir, detection_dir)
        assert ended["state"] == "done", ended["error"]
        page.wait_for_selector("#detection-jobs tr[data-kind=imagery][data-state=done]", timeout=10_000)
        w, h = ended["result"]["width"], ended["result"]["height"]
        assert f"真彩色影像 {w}×{h} 像元" in row.inner_text()
        assert page.locator("#detection-jobs tr[data-kind=imagery] button.use-run").count() == 0
        # the new image is a scene now: offered to both forms without a reload
        for sel in ("#imagery-job-submit select[name=scene]", "#job-submit select[name=before]"):
            assert page.locator(f"{sel} option[value='true-colour/2025-后时相.tif']").count() == 1
        page.locator("#detection-jobs-card").screenshot(path=str(ARTIFACTS / "web-imagery-job.png"))
        assert not errors, errors


@contextmanager
def _chinese_page(base: str, username: str, *, width: int = 1400, height: int = 1000) -> Iterator[tuple[Any, list[str]]]:
    """A zh-CN page of headless Chromium logged in as ``username``, and the page errors it collects."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, locale="zh-CN")
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            _login(page, base, username)
            yield page, errors
        finally:
            browser.close()


def test_round_imagery_set_on_the_dashboard(server) -> None:
    """A province admin picks the round's review imagery among the imagery folder's files, in Chinese."""
    base, world = server
    ARTIFACTS.mkdir(exist_ok=True)
    with _chinese_page(base, "p_admin") as (page, errors):
        page.goto(f"{base}/rounds/{world.round_id}")
        assert "复核影像（前后时相）" in page.content()
        page.wait_for_function("() => document.querySelectorAll('#round-imagery select[name=after] option').length >= 4")
        page.select_option("#round-imagery select[name=before]", "round/before.tif")
        page.select_option("#round-imagery select[name=after]", "round/after.tif")
        page.click("#round-imagery-submit")
        page.wait_for_selector("#round-imagery-result:has-text('已设置')")
        assert "round/before.tif · round/after.tif" in page.inner_text("#round-imagery-now")
        page.locator("#round-imagery-card").screenshot(path=str(ARTIFACTS / "web-round-imagery.png"))
        assert not errors, errors
    with world.store.session() as s:
        from tuban.store.models import Round

        stored = s.get(Round, world.round_id).imagery
    assert stored["before"].endswith("round/before.tif")
    assert stored["after"].endswith("round/after.tif")
