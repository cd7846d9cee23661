"""Benchmark: the review web app on a round of 100 k patches (SQLite, or PostGIS).

Measured through the in-process ASGI client (FastAPI TestClient), as a county reviewer:

* the patch list page (first page, a search, a filtered + sorted page);
* the map's patch layer (GeoJSON) for a county-sized view and a town-sized view, with the
  zoom the page sends for them on a 1000-px-wide map (county: overview outlines);
* imagery tiles rendered from a COG (tiles/s on one core: the process is pinned to one CPU).

Each measurement is the median over several runs of the p95 of many requests. Baselines
measured in this process: the same queries run directly on the store (``list_patches`` /
``features_in_bbox`` called without HTTP), and rio-tiler's ``Reader.tile`` + ``render``
called directly; the ratios show what HTTP, auth and permission checks add.

    .venv/bin/python bench/bench_web.py                     # SQLite, 100 000 patches
    .venv/bin/python bench/bench_web.py --patches 20000     # quicker
    .venv/bin/python bench/bench_web.py --backend postgis   # needs $TUBAN_TEST_POSTGRES_URL
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import bench_database_url

warnings.filterwarnings("ignore", "Use `@` matmul", PendingDeprecationWarning)  # rasterio + affine 3

LON0, LAT0 = 112.0, 34.0
COUNTY_SIZE = 0.3  # degrees (~30 km)
N_COUNTIES = 20


def county_code(i: int) -> str:
    return f"41{8 + i // 10:02d}{11 + i % 10:02d}"


def make_url(backend: str, tmp: Path) -> str:
    return bench_database_url(backend, tmp)


def populate(store: Any, n: int) -> int:
    """*n* patches over 20 counties (16-vertex polygons), inserted in batches; returns the round id."""
    import numpy as np
    import shapely
    from sqlalchemy import insert, select

    from tuban.store.models import Patch, Round, display_geojson, overview_geojson

    per = n // N_COUNTIES
    side = int(np.ceil(np.sqrt(per)))
    step = COUNTY_SIZE / side
    rng = np.random.default_rng(0)
    byds = ["疑似未批先建", "疑似超出防治责任范围", "合规", "疑似建设地点变更"]
    with store.transaction(actor="bench") as tx:
        rnd = Round(name="2024-bench", imagery={})
        tx.session.add(rnd)
        tx.session.flush()
        round_id = rnd.id
    for c in range(N_COUNTIES):
        code = county_code(c)
        x0 = LON0 + (c % 5) * COUNTY_SIZE
        y0 = LAT0 + (c // 5) * COUNTY_SIZE
        idx = np.arange(per)
        xs = x0 + (idx % side) * step + step / 2
        ys = y0 + (idx // side) * step + step / 2
        radius = step * rng.uniform(0.15, 0.4, per)
        geoms = shapely.buffer(shapely.points(xs, ys), radius, quad_segs=4)
        bounds = shapely.bounds(geoms)
        # the ORM fills the display outline on SQLite (PostGIS: a trigger); a bulk insert does it here
        display = display_geojson(geoms) if store.dialect == "sqlite" else [None] * per
        overview = overview_geojson(geoms) if store.dialect == "sqlite" else [None] * per
        rows = [
            {"round_id": round_id, "qdnm": f"{code}-{i:05d}", "xzqdm": code, "lead_division_code": code,
             "byd": byds[i % 4], "qarea": float(radius[i] ** 2 * 1e6), "address": f"第{c}县 第{i}号 地块",
             "state": "issued", "version": 1, "geometry": geoms[i], "minx": float(bounds[i, 0]),
             "miny": float(bounds[i, 1]), "maxx": float(bounds[i, 2]), "maxy": float(bounds[i, 3]),
             "display_geojson": display[i], "overview_geojson": overview[i]}
            for i in range(per)
        ]
        with store.transaction(actor="bench") as tx:
            tx.session.execute(insert(Patch), rows)
    store.refresh_statistics()  # as Store.import_patches and the round intake do after a bulk load
    with store.session() as s:
        return int(s.scalar(select(Round.id).where(Round.name == "2024-bench")))


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] if len(samples) >= 20 else max(samples)


def measure(fn: Callable[[], Any], *, requests: int, runs: int) -> tuple[float, float]:
    """(median of per-run p50, median of per-run p95) in milliseconds."""
    fn()  # warm
    p50s, p95s = [], []
    for _ in range(runs):
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        p50s.append(statistics.median(times))
        p95s.append(p95(times))
    return statistics.median(p50s), statistics.median(p95s)


def write_cog(path: Path, size: int) -> Path:
    import numpy as np
    from affine import Affine
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy

    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, size=(3, size, size), dtype="uint8")
    res = COUNTY_SIZE / size
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "crs": "EPSG:4490",
               "transform": Affine(res, 0, LON0, 0, -res, LAT0 + COUNTY_SIZE), "tiled": True}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        with mem.open() as src:
            rio_copy(src, str(path), driver="COG")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgis"], default="sqlite")
    ap.add_argument("--patches", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tiles", type=int, default=200)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from tuban.store import open_store
    from tuban.web import WebSettings, create_app
    from tuban.workflow import queries, rounds
    from tuban.workflow.service import perform

    tmp = Path(tempfile.mkdtemp(prefix="tuban-bench-web-"))
    url = make_url(args.backend, tmp)
    store = open_store(url)
    store.upgrade()
    t0 = time.perf_counter()
    round_id = populate(store, args.patches)
    load_s = time.perf_counter() - t0
    code = county_code(0)
    uid_p = store.add_user("p_admin", "bench-password", roles=[("province_admin", None)], actor="bench")
    store.add_user("reviewer", "bench-password", roles=[("county_reviewer", code)], actor="bench")
    cog = write_cog(tmp / "after.tif", 4096)
    p_admin = rounds.actor_for(store, uid_p)
    perform(store, p_admin, rounds.set_imagery, round_id, before=str(cog), after=str(cog))
    perform(store, p_admin, rounds.issue_round, round_id, due_date=__import__("datetime").date(2024, 10, 31))

    app = create_app(WebSettings(database_url=url, secret_key=WebSettings.random_secret(), upgrade_on_start=False),
                     store=store)
    client = TestClient(app)
    from tuban.web.serve import freeze_startup_objects

    freeze_startup_objects()  # as `tuban serve` does once the app is built
    client.get("/login")
    csrf = client.cookies.get("tuban_csrf")
    r = client.post("/api/session", json={"username": "reviewer", "password": "bench-password"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    reviewer = rounds.actor_for(store, store.verify_user("reviewer", "bench-password"))

    county_bbox = (LON0, LAT0, LON0 + COUNTY_SIZE, LAT0 + COUNTY_SIZE)
    town_bbox = (LON0 + 0.1, LAT0 + 0.1, LON0 + 0.175, LAT0 + 0.175)
    bbox_q = lambda b: ",".join(f"{v:.6f}" for v in b)  # noqa: E731

    def get(path: str) -> Callable[[], Any]:
        def call() -> Any:
            resp = client.get(path)
            assert resp.status_code == 200, (path, resp.status_code, resp.text[:200])
            return resp

        return call

    def direct(fn: Callable[..., Any], *a: Any, **kw: Any) -> Callable[[], Any]:
        def call() -> Any:
            with store.session() as s:
                return fn(s, reviewer, round_id, *a, **kw)

        return call

    def zoom_of(b: tuple[float, ...], width_px: int = 1000) -> float:
        """The zoom the review page sends for *b* shown *width_px* wide (WebMercator, 256-px tiles)."""
        import math

        return round(math.log2(width_px * 360 / (256 * (b[2] - b[0]))), 2)

    z_county, z_town = zoom_of(county_bbox), zoom_of(town_bbox)
    layer = f"/api/rounds/{round_id}/features?bbox="
    n_county = len(client.get(f"{layer}{bbox_q(county_bbox)}").json()["features"])
    n_town = len(client.get(f"{layer}{bbox_q(town_bbox)}").json()["features"])
    kb_full = len(client.get(f"{layer}{bbox_q(county_bbox)}").content) / 1024
    kb_county = len(client.get(f"{layer}{bbox_q(county_bbox)}&zoom={z_county}").content) / 1024
    cases = [
        ("list: first page (50)", get(f"/api/rounds/{round_id}/patches?limit=50"),
         direct(queries.list_patches, limit=50)),
        ("list: search '第0县 第12'", get(f"/api/rounds/{round_id}/patches?q=第0县 第12&limit=50"),
         direct(queries.list_patches, q="第0县 第12", limit=50)),
        ("list: BYD filter, sort by area desc, page 20", get(
            f"/api/rounds/{round_id}/patches?byd=疑似未批先建&sort=qarea&order=desc&offset=1000&limit=50"),
         direct(queries.list_patches, byd="疑似未批先建", sort="qarea", descending=True, offset=1000, limit=50)),
        (f"map layer: county view z{z_county} ({n_county} patches)",
         get(f"{layer}{bbox_q(county_bbox)}&zoom={z_county}"),
         direct(queries.features_in_bbox_json, county_bbox, limit=5000, zoom=z_county)),
        (f"map layer: town view z{z_town} ({n_town} patches)",
         get(f"{layer}{bbox_q(town_bbox)}&zoom={z_town}"),
         direct(queries.features_in_bbox_json, town_bbox, limit=5000, zoom=z_town)),
        ("map layer: county view, full outlines (no zoom)", get(f"{layer}{bbox_q(county_bbox)}"),
         direct(queries.features_in_bbox_json, county_bbox, limit=5000)),
    ]
    print(f"backend={args.backend} patches={args.patches:,} load={load_s:.1f}s user=county reviewer ({code}, "
          f"{args.patches // N_COUNTIES:,} patches visible); county layer {kb_county:,.0f} KiB "
          f"(full outlines {kb_full:,.0f} KiB)")
    print(f"{'request':48s} {'p50 ms':>8s} {'p95 ms':>8s} {'cpu ms':>7s} {'direct p95':>11s} {'ratio':>6s}")
    for name, http_call, direct_call in cases:
        c0 = time.process_time()
        h50, h95 = measure(http_call, requests=args.requests, runs=args.runs)
        cpu = (time.process_time() - c0) * 1000 / (args.requests * args.runs + 1)
        _, d95 = measure(direct_call, requests=args.requests, runs=args.runs)
        print(f"{name:48s} {h50:8.1f} {h95:8.1f} {cpu:7.1f} {d95:11.1f} {h95 / d95:6.2f}")

    # tiles: zoom 14 tiles inside the COG on ONE core, rendered by the app's renderer (the map's
    # JPEG/PNG tiles and the PNG-only route) and by rio-tiler directly (open, read, PNG)
    import morecantile
    from rio_tiler.io import Reader

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = list(tms.tiles(LON0 + 0.01, LAT0 + 0.01, LON0 + COUNTY_SIZE - 0.01, LAT0 + COUNTY_SIZE - 0.01, [14]))
    tiles = (tiles * (args.tiles // max(len(tiles), 1) + 1))[: args.tiles]
    renderer = app.state.tiles

    def rate(fn: Callable[[Any], Any], todo: list[Any]) -> tuple[float, float]:
        fn(todo[0])
        c0, t0 = time.process_time(), time.perf_counter()
        for t in todo:
            fn(t)
        return len(todo) / (time.perf_counter() - t0), len(todo) / (time.process_time() - c0)

    def direct_tile(t: Any) -> None:
        with Reader(str(cog)) as src:
            src.tile(t.x, t.y, t.z).render(img_format="PNG")

    def http_tile(t: Any) -> None:
        assert client.get(f"/rounds/{round_id}/tiles/after/{t.z}/{t.x}/{t.y}").status_code == 200

    ours, ours_cpu = rate(lambda t: renderer.render_tile(str(cog), t.z, t.x, t.y), tiles)
    png, png_cpu = rate(lambda t: renderer.render(str(cog), t.z, t.x, t.y), tiles)
    http, _ = rate(http_tile, tiles[:50])
    base, _ = rate(direct_tile, tiles[:50])
    print(f"tiles (z14, 256 px, one core), tiles/s wall (cpu): map tiles JPEG/PNG {ours:.0f} ({ours_cpu:.0f}), "
          f"PNG route {png:.0f} ({png_cpu:.0f}), map tiles via HTTP {http:.0f}, rio-tiler direct PNG {base:.0f}; "
          f"ratio map tiles/direct {ours / base:.2f}")
    client.close()
    store.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    if args.backend == "postgis":
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url as mk
        from sqlalchemy.pool import NullPool

        eng = create_engine(os.environ["TUBAN_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with eng.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{mk(url).database}"'))
        eng.dispose()


if __name__ == "__main__":
    main()
