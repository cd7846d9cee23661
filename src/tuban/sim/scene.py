"""``make_scene``: a synthetic two-date scene with its truth and registry, written to a folder.

Folder layout::

    DIR/scene.json                 metadata (sensor, grid, dates, bands, seed, traps)
    DIR/before/SIM_20230603_B02.tif …  or  DIR/before.tif     the previous round's image (S2: one COG per band;
                                   GF-2: 4-band COG), the same season a year before the current one
    DIR/after/…                    the current round's image
    DIR/baseline/… or DIR/baseline.tif   the same season one more year earlier (a second reference: what a
                                   province uses to tell the harvest from construction)
    DIR/landcover_{before,after,baseline}.tif   surface classes (tuban.sim.spectra.Surface)
    DIR/truth.geojson              disturbance patches of the current round, with BYD/QDTYPE/EAREA
    DIR/scopes.geojson             project registry (SWC_P_ID, PRO_NAME, CS_UNIT, RP_NUM, RP_TIME, VEC_TYPE …)
    DIR/previous.geojson           the previous round's patches
    DIR/traps.geojson              clouds, shadows, water-level change (not disturbances)
    DIR/expected.csv               expected BYD, rule, EAREA, QDTYPE, PRID per patch

Same seed and options → byte-identical files.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from affine import Affine

from tuban.errors import UsageError
from tuban.sim.layout import build_layout
from tuban.sim.registry import build_tables
from tuban.sim.render import DateRenderer
from tuban.sim.spectra import SENSORS, Surface
from tuban.sim.writer import write_date

__all__ = ["SIZES", "Scene", "load_scene", "make_scene"]

#: named sizes in pixels (square)
SIZES: dict[str, int] = {"tiny": 256, "small": 1024, "medium": 2048, "large": 10000, "huge": 40000}
DATES = ("2023-06-03", "2024-06-08", "2022-06-06")  # before, after, baseline: the same season of three years
ROUNDS = ("2023-1", "2024-1")


@dataclass
class Scene:
    """A generated scene: paths to the imagery and the tables with its truth."""

    root: Path
    sensor: str
    crs: str
    transform: Affine
    width: int
    height: int
    resolution: float
    seed: int
    before: Path
    after: Path
    truth: gpd.GeoDataFrame
    scopes: gpd.GeoDataFrame
    previous: gpd.GeoDataFrame
    traps: gpd.GeoDataFrame
    expected: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)
    baseline: Path | None = None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    def band_path(self, date: str, band: str) -> Path:
        """The file holding ``band`` of ``date`` ("before"/"after"/"baseline"); GF-2 stacks share one file."""
        base = {"before": self.before, "after": self.after, "baseline": self.baseline}[date]
        if base is None:
            raise KeyError(f"the scene at {self.root} has no {date} date")
        if not base.is_dir():
            return base
        found = sorted(base.glob(f"*_{band}.tif"))
        if not found:
            raise KeyError(f"no band {band!r} in {base}")
        return found[0]

    def active_truth(self) -> gpd.GeoDataFrame:
        """The patches disturbed now (what a detector should find)."""
        return self.truth[self.truth["active"].to_numpy()]


def _grid(origin: Any, crs: str | None, size: int, resolution: float) -> tuple[str, Affine]:
    if origin is None:
        epsg = crs or "EPSG:4547"
        x0, y0 = 500000.0, 3900000.0
        return epsg, Affine(resolution, 0, x0, 0, -resolution, y0 + size * resolution)
    if isinstance(origin, shapely.Geometry):
        pt = origin.representative_point()
        lon, lat = pt.x, pt.y
    else:
        lon, lat = float(origin[0]), float(origin[1])
    from pyproj import Transformer

    if crs is None:
        try:
            from tuban.crs import gk_zone_epsg

            crs = f"EPSG:{gk_zone_epsg(lon)}"
        except ImportError:  # pragma: no cover - tuban.crs ships with tuban
            crs = f"EPSG:{4534 + round((lon - 75.0) / 3.0)}"
    x, y = Transformer.from_crs("EPSG:4490", crs, always_xy=True).transform(lon, lat)
    half = size * resolution / 2
    x0 = math.floor((x - half) / resolution) * resolution
    y1 = math.floor((y + half) / resolution) * resolution
    return crs, Affine(resolution, 0, x0, 0, -resolution, y1)


def make_scene(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    size: str | int = "tiny",
    sensor: str = "s2",
    resolution: float | None = None,
    origin: tuple[float, float] | shapely.Geometry | None = None,
    crs: str | None = None,
    place: str = "示例",
    site_density: float | None = None,
    landcover: bool = True,
    baseline: bool = True,
    workers: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
) -> Scene:
    """Generate a two-date scene under ``out_dir`` and return it.

    Parameters
    ----------
    out_dir
        Folder to write (created; existing scene files are overwritten).
    seed
        Everything derives from it: same seed and options → byte-identical files.
    size
        ``"tiny"`` (256 px), ``"small"`` (1024), ``"medium"`` (2048), ``"large"`` (10 000),
        ``"huge"`` (40 000) or a pixel count; square scenes.
    sensor
        ``"s2"`` (13 bands at 10/20/60 m, one COG per band) or ``"gf2"`` (blue, green, red,
        nir in one COG; 0.8–4 m).
    origin
        Scene centre as CGCS2000 (lon, lat), or a polygon whose representative point is used.
        None: a fixed place in GK zone 38 (EPSG:4547).
    crs
        Projected CRS of the rasters and tables; default the CGCS2000 3° Gauss–Krüger zone
        of the origin.
    place
        Prefix of the fictional project and company names (e.g. ``"焦作"``).
    baseline
        Also render the baseline date: the same season a year before the first date (all
        three dates are early June of three years, as yearly rounds use same-season
        imagery), with its own harvest progress, water level, clouds and registration; it
        shows the sites of the previous round.
    workers
        Render tiles in that many processes; the files are the same bytes for any value.
    """
    if sensor not in SENSORS:
        raise UsageError(f"unknown sensor {sensor!r}", hint=f"use one of {sorted(SENSORS)}")
    spec = SENSORS[sensor]
    if isinstance(size, str):
        if size not in SIZES:
            raise UsageError(f"unknown size {size!r}", hint=f"use one of {list(SIZES)} or a pixel count")
        n = SIZES[size]
    else:
        n = int(size)
    if not 32 <= n <= 100_000:
        raise UsageError(f"scene size {n} px is outside 32…100000")
    res = float(resolution or spec.default_resolution)
    if sensor == "gf2" and not 0.5 <= res <= 4.0:
        raise UsageError(f"GF-2-like resolution {res} m is outside 0.5–4 m")
    crs_name, transform = _grid(origin, crs, n, res)
    bounds = (transform.c, transform.f - n * res, transform.c + n * res, transform.f)
    density = site_density if site_density is not None else (1.0 if n * res < 4000 else 0.55)
    layout = build_layout(seed, bounds, resolution=res, site_density=density)
    tables = build_tables(layout, crs=crs_name, place=place, rounds=ROUNDS)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    names = ("before", "after", "baseline") if baseline else ("before", "after")
    for k, name in enumerate(names):
        target = root / name if spec.layout == "band-files" else root / f"{name}.tif"
        renderer = DateRenderer(layout, spec, date=name, date_index=k)
        cb = (lambda d, t, _n=name: progress(_n, d, t)) if progress else None
        write_date(renderer, target, transform=transform, width=n, height=n, crs=crs_name,
                   landcover=root / f"landcover_{name}.tif" if landcover else None, progress=cb,
                   prefix=f"SIM_{DATES[k].replace('-', '')}", workers=workers)
        paths[name] = target
    for key in ("truth", "scopes", "previous", "traps"):
        _write_vector(tables[key], root / f"{key}.geojson")
    tables["expected"].to_csv(root / "expected.csv", index=False, lineterminator="\n")
    meta = {
        "format": "tuban-sim-scene/1", "seed": seed, "sensor": sensor, "crs": crs_name,
        "transform": list(transform)[:6], "width": n, "height": n, "resolution": res,
        "dates": dict(zip(names, DATES, strict=False)), "rounds": {"previous": ROUNDS[0], "current": ROUNDS[1]},
        "bands": [{"name": b.name, "role": b.role, "wavelength_nm": b.wavelength_nm,
                   "resolution_m": res * b.resolution_factor} for b in spec.bands],
        "layout": spec.layout, "scale_factor": 1e-4, "nodata": 0,
        "before": paths["before"].name, "after": paths["after"].name,
        "baseline": paths["baseline"].name if baseline else None,
        "misregistration_m": [round(v, 4) for v in layout.misregistration],
        "surfaces": {s.name: int(s) for s in Surface},
        "traps": ["wheat harvest / ploughing", "crop rotation", "water-level change", "haze (before, baseline)",
                  "clouds and shadows (after, baseline)", "sub-pixel misregistration (after, baseline)"],
        "atmosphere": "top-of-atmosphere reflectance ×10000 (Level-1C-like): path radiance, haze, clouds, "
                      "shadows keeping the diffuse skylight",
        "place": place,
    }
    (root / "scene.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return load_scene(root)


def _write_vector(gdf: gpd.GeoDataFrame, path: Path) -> None:
    if path.exists():
        path.unlink()
    gdf.to_file(path, driver="GeoJSON", engine="pyogrio", layer_options={"RFC7946": "NO", "WRITE_BBOX": "NO",
                                                                         "COORDINATE_PRECISION": "3"})


def load_scene(root: str | os.PathLike[str]) -> Scene:
    """Open a scene folder written by :func:`make_scene`."""
    root = Path(root)
    meta_path = root / "scene.json"
    if not meta_path.is_file():
        from tuban.errors import InputNotFoundError

        raise InputNotFoundError(f"no scene at {root} (scene.json missing)", hint="make one with tuban.sim.make_scene")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))

    def vec(name: str) -> gpd.GeoDataFrame:
        gdf = gpd.read_file(root / f"{name}.geojson", engine="pyogrio")
        return gdf.set_crs(meta["crs"], allow_override=True)

    truth = vec("truth")
    if "active" in truth:
        truth["active"] = truth["active"].astype(bool)
    expected = pd.read_csv(root / "expected.csv", dtype={"QDNM": str, "PRID": str})
    return Scene(
        root=root, sensor=meta["sensor"], crs=meta["crs"], transform=Affine(*meta["transform"]),
        width=meta["width"], height=meta["height"], resolution=meta["resolution"], seed=meta["seed"],
        before=root / meta["before"], after=root / meta["after"], truth=truth, scopes=vec("scopes"),
        previous=vec("previous"), traps=vec("traps"), expected=expected, metadata=meta,
        baseline=root / meta["baseline"] if meta.get("baseline") else None,
    )
