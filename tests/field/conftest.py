"""Fixtures of the field tests: a round with a field window, patches in counties A and B, personas."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

COUNTY_A = "410811"
COUNTY_B = "410822"
LON, LAT = 113.2400, 35.2200
SIZE = 0.001  # ≈ 90 m × 110 m


@dataclass
class FieldWorld:
    store: Any
    users: dict[str, int]
    round_id: int
    patches: dict[str, int]

    def actor(self, username: str) -> Any:
        from tuban.workflow.rounds import actor_for

        return actor_for(self.store, self.users[username])

    def patch(self, qdnm: str) -> Any:
        from tuban.store.models import Patch

        with self.store.session() as s:
            return s.get(Patch, self.patches[qdnm])


def build_field_world(store: Any, users: dict[str, int]) -> FieldWorld:
    import geopandas as gpd
    import shapely
    from sqlalchemy import select, update

    from tuban.store.models import Patch, Round, Task

    specs = [("A-1", COUNTY_A, 0.000, "焦作市山阳区新城街道东"), ("A-2", COUNTY_A, 0.003, "山阳区定和街道"),
             ("B-1", COUNTY_B, 0.020, "博爱县清化镇")]
    gdf = gpd.GeoDataFrame(
        {"QDNM": [s[0] for s in specs], "XZQDM": [s[1] for s in specs], "ADDRESS": [s[3] for s in specs],
         "QTYPE": ["其他扰动"] * 3, "QDCS": ["施工"] * 3, "QAREA": [1.0] * 3},
        geometry=[shapely.box(LON + s[2], LAT, LON + s[2] + SIZE, LAT + SIZE * 0.8) for s in specs],
        crs="EPSG:4490")
    store.import_patches(gdf, round_name="2024-1", actor="p_admin")
    with store.transaction(actor="test") as tx:
        rid = tx.session.scalar(select(Round.id).where(Round.name == "2024-1"))
        tx.session.execute(update(Round).where(Round.id == rid).values(
            field_start=dt.date(2024, 8, 10), field_end=dt.date(2024, 10, 31)))
        ids = dict(tx.session.execute(select(Patch.qdnm, Patch.id).where(Patch.round_id == rid)).all())
        for county in (COUNTY_A, COUNTY_B):  # issued to both counties: the review page shows the round
            tx.session.add(Task(round_id=rid, division_code=county, status="issued", issued_by="p_admin"))
    inspector = store.add_user("a_field", "password-a_field", roles=[("field_inspector", COUNTY_A)], actor="test")
    return FieldWorld(store=store, users={**users, "a_field": inspector}, round_id=rid, patches=ids)


@pytest.fixture
def fworld(store: Any, personas: dict[str, int]) -> FieldWorld:
    return build_field_world(store, personas)


@pytest.fixture
def uploads(fworld: FieldWorld, tmp_path: Path) -> Any:
    from tuban.blobs import BlobStore
    from tuban.field.uploads import UploadManager

    return UploadManager(fworld.store, BlobStore(tmp_path / "blobs"), tmp_path / "uploads")


def make_app(store: Any, tmp_path: Path) -> Any:
    """The review web app with the field router (included once, whether or not create_app does it)."""
    from tuban.fieldapp.router import router
    from tuban.fieldapp.services import configure_field
    from tuban.web import WebSettings, create_app

    settings = WebSettings(database_url=store.url, secret_key=WebSettings.random_secret(), upgrade_on_start=False)
    app = create_app(settings, store=store)
    if not any(getattr(r, "path", "") == "/api/field/records" for r in app.routes):
        app.include_router(router)
    configure_field(app, blob_dir=tmp_path / "blobs", upload_dir=tmp_path / "uploads")
    return app


class ApiClient:
    """A TestClient logged in as one user, sending the CSRF header on unsafe methods."""

    def __init__(self, app: Any, username: str | None) -> None:
        from fastapi.testclient import TestClient

        self.http = TestClient(app, follow_redirects=False)
        self.http.get("/login")
        if username is not None:
            r = self.request("POST", "/api/session", json={"username": username, "password": f"password-{username}"})
            assert r.status_code == 200, r.text

    def request(self, method: str, url: str, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if method not in ("GET", "HEAD"):
            headers["X-CSRF-Token"] = self.http.cookies.get("tuban_csrf") or ""
        return self.http.request(method, url, headers=headers, **kw)

    def upload(self, meta: dict[str, Any], data: bytes, *, chunk: int = 64 * 1024) -> Any:
        r = self.request("POST", "/api/field/uploads", json=meta)
        assert r.status_code == 201, r.text
        state = r.json()
        while not state["complete"]:
            off = state["offset"]
            r = self.request("PATCH", f"/api/field/uploads/{state['upload_id']}", content=data[off:off + chunk],
                             headers={"Upload-Offset": str(off), "Content-Type": "application/offset+octet-stream"})
            assert r.status_code == 200, r.text
            state = r.json()
        self.drain()
        return state

    def drain(self) -> None:
        """Wait for the photo processing that follows the acknowledgement (EXIF, hash, display copy, checks)."""
        from tuban.fieldapp.services import field_services

        field_services(self.http.app).processor.drain()


@pytest.fixture
def field_app(fworld: FieldWorld, tmp_path: Path) -> Any:
    return make_app(fworld.store, tmp_path)


@pytest.fixture
def api(field_app: Any) -> Any:
    clients: list[ApiClient] = []

    def make(username: str | None) -> ApiClient:
        c = ApiClient(field_app, username)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.http.close()


def add_imagery(world: FieldWorld, folder: Path) -> dict[str, str]:
    """Small before/after GeoTIFFs (EPSG:4490, ≈ 1 m pixels) around the county-A patches, set on the round."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from sqlalchemy import update

    from tuban.store.models import Round

    folder.mkdir(parents=True, exist_ok=True)
    res = 1e-5
    west, north = LON - 0.004, LAT + 0.0045
    width, height = 1100, 900  # to LON + 0.007, LAT - 0.0045
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(7)
    paths = {}
    for which, tint in (("before", (60, 110, 50)), ("after", (150, 120, 90))):
        bands = []
        for b, base in enumerate(tint):
            field = base + 40 * np.sin(xx / (37 + 11 * b)) * np.cos(yy / (29 + 7 * b))
            bands.append(np.clip(field + rng.integers(0, 25, size=field.shape), 0, 255).astype("uint8"))
        arr = np.stack(bands)
        if which == "after":  # the disturbance: bare soil over patch A-1
            c0, r0 = int((LON - west) / res), int((north - LAT - SIZE * 0.8) / res)
            arr[:, r0:r0 + int(SIZE * 0.8 / res), c0:c0 + int(SIZE / res)] = np.array([205, 180, 140])[:, None, None]
        path = folder / f"{which}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                           crs="EPSG:4490", transform=from_origin(west, north, res, res), tiled=True,
                           blockxsize=256, blockysize=256) as dst:
            dst.write(arr)
            dst.build_overviews([2, 4, 8])
        paths[which] = str(path)
    with world.store.transaction(actor="test") as tx:
        tx.session.execute(update(Round).where(Round.id == world.round_id).values(imagery=paths))
    return paths
