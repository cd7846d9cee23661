"""Fixtures of the web tests: a small round in counties A and B, imagery COGs, app and clients.

Data: province 41, county A = 410811 (山阳区), county B = 410822 (博爱县). Patches A-1…A-3
in A, B-1, B-2 in B, X-AB spanning A and B with lead A, X-BA spanning with lead B.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from collections.abc import Iterator as _Iter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

COUNTY_A = "410811"
COUNTY_B = "410822"
LON, LAT = 113.20, 35.20


def _square(x: float, y: float, d: float = 0.002) -> Any:
    import shapely

    return shapely.box(x, y, x + d, y + d)


def write_cog(path: Path, *, bounds: tuple[float, float, float, float], seed: int, dtype: str = "uint8") -> Path:
    """A tiny 3-band COG (EPSG:4490) covering *bounds*."""
    import numpy as np
    from affine import Affine
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy

    rng = np.random.default_rng(seed)
    size = 256
    data = rng.integers(30, 200, size=(3, size, size)).astype(dtype)
    data[:, 100:150, 100:150] = 250 if seed % 2 else 20  # a "disturbance" that changes between dates
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": dtype,
               "crs": "EPSG:4490",
               "transform": Affine((bounds[2] - bounds[0]) / size, 0, bounds[0], 0, -(bounds[3] - bounds[1]) / size, bounds[3]), "tiled": True,
               "blockxsize": 256, "blockysize": 256}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        with mem.open() as src:
            rio_copy(src, str(path), driver="COG")
    return path


@dataclass
class World:
    store: Any
    users: dict[str, int]
    round_id: int
    patches: dict[str, int]  # QDNM → id
    project_id: int
    imagery: dict[str, Path]

    def actor(self, username: str) -> Any:
        from tuban.workflow.rounds import actor_for

        return actor_for(self.store, self.users[username])

    def version(self, qdnm: str) -> int:
        from tuban.store.models import Patch

        with self.store.session() as s:
            return s.get(Patch, self.patches[qdnm]).version


def build_world(store: Any, users: dict[str, int], imagery: dict[str, Path]) -> World:
    import datetime as dt

    import geopandas as gpd
    from sqlalchemy import select

    from tuban.store.models import Decision, Patch, Project, Round
    from tuban.workflow import rounds
    from tuban.workflow.rounds import actor_for
    from tuban.workflow.service import perform

    specs = [
        ("A-1", COUNTY_A, 0.000, "疑似未批先建", "焦作市山阳区新城街道东"),
        ("A-2", COUNTY_A, 0.004, "疑似超出防治责任范围", "山阳区定和街道"),
        ("A-3", COUNTY_A, 0.008, "合规", "山阳区百间房"),
        ("B-1", COUNTY_B, 0.020, "疑似未批先建", "博爱县清化镇"),
        ("B-2", COUNTY_B, 0.024, "疑似建设地点变更", "博爱县许良镇"),
        ("X-AB", f"{COUNTY_A},{COUNTY_B}", 0.012, "疑似未批先建", "两县交界（山阳区为主）"),
        ("X-BA", f"{COUNTY_B},{COUNTY_A}", 0.016, "疑似未批先建", "两县交界（博爱县为主）"),
    ]
    gdf = gpd.GeoDataFrame(
        {"QDNM": [s[0] for s in specs], "XZQDM": [s[1] for s in specs], "BYD": [s[3] for s in specs],
         "ADDRESS": [s[4] for s in specs], "QAREA": [1.5, 0.8, 2.0, 3.1, 0.4, 1.1, 0.9]},
        geometry=[_square(LON + s[2], LAT) for s in specs], crs="EPSG:4490")
    store.import_patches(gdf, round_name="2024-1", actor="p_admin")
    proj = gpd.GeoDataFrame(
        {"SWC_P_ID": ["P-001"], "PRO_NAME": ["焦作市新城安置房项目"], "RP_NUM": ["焦水保〔2023〕12号"],
         "VEC_TYPE": ["防治责任范围"]},
        geometry=[_square(LON + 0.0035, LAT - 0.0005, 0.003)], crs="EPSG:4490")
    store.import_projects(proj, actor="p_admin")
    before, after = imagery["before"], imagery["after"]
    with store.session() as s:
        round_id = s.scalar(select(Round.id).where(Round.name == "2024-1"))
        ids = dict(s.execute(select(Patch.qdnm, Patch.id).where(Patch.round_id == round_id)).all())
        project_id = s.scalar(select(Project.id))
    p_admin = actor_for(store, users["p_admin"])
    perform(store, p_admin, rounds.set_imagery, round_id, before=str(before), after=str(after))
    perform(store, p_admin, rounds.issue_round, round_id, due_date=dt.date(2024, 10, 31))
    with store.transaction(actor="analysis") as tx:
        for qdnm, _, _, byd, _ in specs:
            tx.session.add(Decision(patch_id=ids[qdnm], kind="suspected", byd=byd, rule_id="R4",
                                    numbers={"overlap_ha": 0.0, "outside_ha": 1.5},
                                    explanation_zh="无批复防治责任范围与图斑相交", explanation_en="no approved scope intersects",
                                    actor="analysis"))
    return World(store=store, users=users, round_id=round_id, patches=ids, project_id=project_id,
                 imagery={"before": before, "after": after})


@pytest.fixture(scope="session")
def imagery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A before/after pair of tiny COGs shared by the session (read-only)."""
    root = tmp_path_factory.mktemp("imagery")
    bounds = (LON - 0.01, LAT - 0.01, LON + 0.04, LAT + 0.02)
    return {"before": write_cog(root / "before.tif", bounds=bounds, seed=2),
            "after": write_cog(root / "after.tif", bounds=bounds, seed=3)}


@pytest.fixture
def world(store: Any, personas: dict[str, int], imagery: dict[str, Path]) -> World:
    return build_world(store, personas, imagery)


@pytest.fixture
def detection_dir(tmp_path: Path) -> Path:
    """The app's folder of detection outputs (empty)."""
    folder = tmp_path / "detections"
    folder.mkdir()
    return folder


@pytest.fixture
def imagery_dir(tmp_path: Path, imagery: dict[str, Path]) -> Path:
    """The app's imagery folder: two placeholder files (a detection job's submission only checks that the scenes
    it names exist; tests/web/test_detection_job_api.py adds real ones) and the world's two COGs in ``round/``."""
    import shutil

    folder = tmp_path / "imagery"
    (folder / "round").mkdir(parents=True)
    for name in ("before.tif", "after.tif"):
        (folder / name).write_bytes(b"II*\0")
        shutil.copyfile(imagery[name.removesuffix(".tif")], folder / "round" / name)
    return folder


@pytest.fixture
def app(world: World, detection_dir: Path, imagery_dir: Path) -> Any:
    from tuban.web import WebSettings, create_app

    settings = WebSettings(database_url=world.store.url, secret_key=WebSettings.random_secret(),
                           upgrade_on_start=False, detection_dir=detection_dir, imagery_dir=imagery_dir)
    return create_app(settings, store=world.store)


class Client:
    """A TestClient logged in as one persona, sending the CSRF header on unsafe methods."""

    def __init__(self, app: Any, username: str | None) -> None:
        from fastapi.testclient import TestClient

        self.http = TestClient(app, follow_redirects=False)
        self.http.get("/login")
        if username is not None:
            r = self.post("/api/session", json={"username": username, "password": f"password-{username}"})
            assert r.status_code == 200, r.text

    def _csrf(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.http.cookies.get("tuban_csrf") or ""}

    def get(self, url: str, **kw: Any) -> Any:
        return self.http.get(url, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.http.post(url, headers={**self._csrf(), **kw.pop("headers", {})}, **kw)

    def patch(self, url: str, **kw: Any) -> Any:
        return self.http.patch(url, headers={**self._csrf(), **kw.pop("headers", {})}, **kw)

    def put(self, url: str, **kw: Any) -> Any:
        return self.http.put(url, headers={**self._csrf(), **kw.pop("headers", {})}, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.http.delete(url, headers={**self._csrf(), **kw.pop("headers", {})}, **kw)

    def request(self, method: str, url: str, **kw: Any) -> Any:
        if method in ("GET", "HEAD"):
            return self.http.request(method, url, **kw)
        return self.http.request(method, url, headers={**self._csrf(), **kw.pop("headers", {})}, **kw)


@pytest.fixture
def client_for(app: Any) -> Iterator[Callable[[str | None], Client]]:
    made: list[Client] = []

    def make(username: str | None) -> Client:
        c = Client(app, username)
        made.append(c)
        return c

    yield make
    for c in made:
        c.http.close()


# -- route walking (FastAPI nests included routers) ------------------------------------------

PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")


def walk_routes(routes: Any, prefix: str = "") -> _Iter[tuple[str, str, Any]]:
    """``(method, path, endpoint)`` of every HTTP route."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from walk_routes(original.routes, prefix + route.include_context.prefix)
            continue
        methods = getattr(route, "methods", None)
        if not methods or not hasattr(route, "endpoint"):
            continue
        for method in sorted(methods - {"HEAD"}):
            yield method, prefix + route.path, route.endpoint


def path_params(path: str) -> list[str]:
    return PARAM.findall(path)


@pytest.fixture
def routes(app: Any) -> list[tuple[str, str, Any]]:
    """``(method, path, endpoint)`` of every HTTP route of the app."""
    return list(walk_routes(app.routes))


@pytest.fixture
def sqlite_world(sqlite_store: Any, imagery: dict[str, Path]) -> World:
    """The same world on SQLite only (for the browser test)."""
    people = {"p_admin": [("province_admin", None)], "a_admin": [("county_admin", COUNTY_A)],
              "a_staff": [("county_reviewer", COUNTY_A)], "b_staff": [("county_reviewer", COUNTY_B)],
              "viewer": [("viewer", COUNTY_A)]}
    users = {n: sqlite_store.add_user(n, f"password-{n}", roles=r, actor="test") for n, r in people.items()}
    return build_world(sqlite_store, users, imagery)
