"""The vector layout of a scene: hills, town, villages, river, roads and the disturbance sites.

The layout is small (vectors and a few numbers) and built once from the seed; the
rasters are then rendered tile by tile from it (:mod:`tuban.sim.render`). The ground is
cut into square cells; each cell has four quadrants that receive at most one village,
one site, one moved scope (for the "moved site" scenario) or nothing, so features never
overlap and the work grows linearly with the area. Randomness comes from a
:class:`numpy.random.Generator` seeded by ``(seed, cell)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import LineString, Polygon, box

from tuban.sim.spectra import Surface

__all__ = ["KINDS", "SCENARIOS", "Layout", "Site", "build_layout"]

#: disturbance kinds and the official QTYPE each maps to
KINDS: dict[str, str] = {
    "construction": "其他扰动",
    "road": "其他扰动",
    "spoil": "弃土（渣）场",
    "pit": "取土（石）场",
    "completed": "其他扰动",
}
#: registry scenarios (what the project registry says about a site)
SCENARIOS = ("inside", "exceeds", "moved", "schematic", "unapproved", "none", "tiny")
_KIND_CYCLE = ("construction", "spoil", "construction", "pit", "construction", "construction", "completed")
_CHANGE_CYCLE = ("new", "expanded", "unchanged", "new", "shrunk")


@dataclass
class Site:
    """One disturbance (or completed) site with its truth and registry intent."""

    index: int
    kind: str
    scenario: str
    change: str  # new | expanded | shrunk | unchanged | completed
    after: Polygon | None  # disturbed extent now (None when completed)
    before: Polygon | None  # extent in the previous round (None when new)
    parts_after: list[tuple[Polygon, int]] = field(default_factory=list)
    parts_before: list[tuple[Polygon, int]] = field(default_factory=list)
    scope: Polygon | None = None
    completed_surface: int = int(Surface.HARDENED)


@dataclass
class Layout:
    """Everything the renderer needs, in the scene's projected CRS (metres)."""

    seed: int
    bounds: tuple[float, float, float, float]
    resolution: float
    angle_deg: float  # rotation of the field system
    hill_edge: float  # hills north of y = hill_edge (plus noise)
    urban: Polygon | None
    villages: list[Polygon]
    ponds: list[tuple[Polygon, bool]]  # (pond, dries out by the second date)
    river: LineString | None
    river_width: tuple[float, float]  # before, after
    roads: list[tuple[LineString, float]]
    sites: list[Site]
    extra_scopes: list[Polygon]  # approved projects that have not started (未开工)
    clouds: list[tuple[float, float, float]]  # x, y, radius (second date)
    cloud_shift: tuple[float, float]
    misregistration: tuple[float, float]  # metres, second date
    #: the baseline date (same season, a year before the first date): its clouds, shift,
    #: river width and which ponds are dry then (seasonal ponds dry most Junes)
    baseline_clouds: list[tuple[float, float, float]] = field(default_factory=list)
    baseline_misregistration: tuple[float, float] = (0.0, 0.0)
    baseline_river_width: float = 0.0
    baseline_dry_ponds: tuple[bool, ...] = ()

    def __getstate__(self) -> dict:
        # rendering caches (STRtrees) stay in their process
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_shapes_")}

    @property
    def origin(self) -> tuple[float, float]:
        return self.bounds[0], self.bounds[3]


def _rect(cx: float, cy: float, w: float, h: float, angle: float) -> Polygon:
    return affinity.rotate(box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), angle, origin=(cx, cy))


def _blob(rng: np.random.Generator, cx: float, cy: float, r: float) -> Polygon:
    pts = shapely.points(cx + rng.normal(0, r * 0.45, 6), cy + rng.normal(0, r * 0.45, 6))
    geom = shapely.union_all(shapely.buffer(pts, r * rng.uniform(0.35, 0.6, 6), quad_segs=6))
    geom = geom.buffer(r * 0.15).buffer(-r * 0.1)
    if geom.geom_type == "MultiPolygon":
        geom = max(geom.geoms, key=lambda g: g.area)
    return shapely.set_precision(geom.simplify(2.0), 0.01)


def _village(rng: np.random.Generator, cx: float, cy: float, r: float, angle: float) -> Polygon:
    parts = [_rect(cx + rng.normal(0, r * 0.3), cy + rng.normal(0, r * 0.3), r * rng.uniform(0.6, 1.2),
                   r * rng.uniform(0.5, 1.0), angle) for _ in range(4)]
    geom = shapely.union_all(parts)
    if geom.geom_type == "MultiPolygon":
        geom = max(geom.geoms, key=lambda g: g.area)
    return shapely.set_precision(geom, 0.01)


def _construction_parts(rng: np.random.Generator, site: Polygon, angle: float, *, busy: float) -> list:
    """Partial buildings, sheds and dust nets inside a construction site (vector parts)."""
    parts: list[tuple[Polygon, int]] = []
    minx, miny, maxx, maxy = site.bounds
    cx, cy = site.centroid.x, site.centroid.y
    inner = site.buffer(-12)
    if inner.is_empty:
        return parts
    # rows of slab blocks (residential towers under construction)
    for gx in np.arange(minx + 20, maxx - 20, 45):
        for gy in np.arange(miny + 20, maxy - 20, 60):
            if rng.random() < busy:
                b = _rect(gx, gy, 16, 38, angle)
                if inner.contains(b):
                    parts.append((b, int(Surface.SITE_BUILDING)))
    for _ in range(rng.integers(1, 3)):
        s = _rect(cx + rng.uniform(-0.3, 0.3) * (maxx - minx), cy + rng.uniform(-0.3, 0.3) * (maxy - miny),
                  rng.uniform(12, 30), rng.uniform(8, 14), angle)
        if inner.contains(s):
            parts.append((s, int(Surface.SITE_BLUE_ROOF)))
    if rng.random() < 0.5:
        net = inner.intersection(_rect(cx + (maxx - minx) * 0.25, cy, (maxx - minx) * 0.4, (maxy - miny) * 0.6, angle))
        if not net.is_empty and net.geom_type == "Polygon":
            parts.append((net, int(Surface.SITE_NET)))
    return parts


class _Placer:
    """Per-scene placement state: global obstacles and counters."""

    def __init__(self, obstacles: list) -> None:
        self.tree = shapely.STRtree(obstacles) if obstacles else None
        self.obstacles = obstacles
        self.n_sites = 0

    def free(self, geom: Polygon, margin: float = 30.0) -> bool:
        if self.tree is None:
            return True
        return len(self.tree.query(geom.buffer(margin), predicate="intersects")) == 0


def _site_geometry(rng: np.random.Generator, kind: str, scenario: str, cx: float, cy: float, q: float,
                   angle: float) -> Polygon:
    if scenario == "tiny":
        side = math.sqrt(rng.uniform(1500, 4200))
        return _rect(cx, cy, side * 1.2, side / 1.2, angle)
    if kind in ("spoil", "pit"):
        return _blob(rng, cx, cy, min(q * 0.3, rng.uniform(70, 130)))
    w = min(q * 0.75, rng.uniform(110, 300))
    h = min(q * 0.75, rng.uniform(90, 230))
    return shapely.set_precision(_rect(cx, cy, w, h, angle + rng.uniform(-4, 4)), 0.01)


def _change_geometries(rng: np.random.Generator, change: str, geom: Polygon) -> tuple[Polygon | None, Polygon | None]:
    """(after, before) extents for a change type."""
    c = geom.centroid
    if change == "new":
        return geom, None
    if change == "unchanged":
        f = math.sqrt(rng.uniform(0.97, 1.03))
        return geom, shapely.set_precision(affinity.scale(geom, f, f, origin=(c.x, c.y)), 0.01)
    if change == "expanded":
        f = rng.uniform(0.55, 0.75)
        before = affinity.scale(geom, math.sqrt(f), math.sqrt(f), origin=(c.x, c.y))
        return geom, shapely.set_precision(before, 0.01)
    if change == "shrunk":
        f = rng.uniform(0.55, 0.75)
        after = affinity.scale(geom, math.sqrt(f), math.sqrt(f), origin=(c.x, c.y))
        return shapely.set_precision(after, 0.01), geom
    if change == "completed":
        return None, geom
    raise ValueError(f"unknown change {change!r}")


def _scope_for(rng: np.random.Generator, scenario: str, geom: Polygon, moved_to: Polygon | None) -> Polygon | None:
    if scenario in ("inside", "unapproved"):
        return shapely.set_precision(geom.buffer(rng.uniform(15, 45), join_style="mitre"), 0.01)
    if scenario == "exceeds":
        minx, miny, maxx, maxy = geom.bounds
        cut = minx + rng.uniform(0.6, 0.8) * (maxx - minx)
        scope = geom.buffer(20, join_style="mitre").intersection(box(minx - 100, miny - 100, cut, maxy + 100))
        return shapely.set_precision(scope, 0.01)
    if scenario == "schematic":
        return shapely.set_precision(geom.centroid.buffer(math.sqrt(geom.area) * 0.9, quad_segs=3), 0.01)
    if scenario == "moved":
        return moved_to
    return None


def build_layout(
    seed: int, bounds: tuple[float, float, float, float], *, resolution: float, site_density: float = 0.6
) -> Layout:
    """Build the vector layout of a scene covering ``bounds`` (metres, projected CRS)."""
    xmin, ymin, xmax, ymax = bounds
    width, height = xmax - xmin, ymax - ymin
    area_km2 = width * height / 1e6
    rng = np.random.default_rng([seed, 0])
    angle = float(rng.uniform(-8, 8))
    hill_edge = ymax - height * rng.uniform(0.12, 0.2)

    urban = None
    if min(width, height) >= 4500:
        uw, uh = width * rng.uniform(0.25, 0.35), height * rng.uniform(0.22, 0.3)
        ux = xmax - uw * 0.5 - width * rng.uniform(0.02, 0.1)
        uy = ymin + uh * 0.5 + height * rng.uniform(0.05, 0.15)
        urban = shapely.set_precision(_rect(ux, uy, uw, uh, angle).buffer(-60).buffer(60), 0.01)

    river = None
    river_width = (0.0, 0.0)
    if height >= 1500:
        n = 200
        xs = np.linspace(xmin - 200, xmax + 200, n)
        y0 = ymin + height * rng.uniform(0.3, 0.45)
        lam = rng.uniform(1500, 3500)
        ys = y0 + rng.uniform(60, 160) * np.sin(2 * np.pi * xs / lam + rng.uniform(0, 6.3))
        ys += rng.uniform(20, 60) * np.sin(2 * np.pi * xs / (lam / 2.7) + rng.uniform(0, 6.3))
        river = LineString(np.column_stack([xs, ys]))
        w1 = float(rng.uniform(50, 110))
        river_width = (w1, w1 * rng.uniform(0.45, 0.65))

    # main roads along the (rotated) field grid
    roads: list[tuple[LineString, float]] = []
    diag = math.hypot(width, height)
    cx0, cy0 = (xmin + xmax) / 2, (ymin + ymax) / 2
    n_roads = max(1, round(math.sqrt(area_km2) / 3.0))
    for k in range(n_roads * 2):
        vertical = k % 2 == 0
        off = rng.uniform(-0.4, 0.4) * (width if vertical else height)
        if vertical:
            line = LineString([(cx0 + off, cy0 - diag), (cx0 + off, cy0 + diag)])
        else:
            line = LineString([(cx0 - diag, cy0 + off), (cx0 + diag, cy0 + off)])
        roads.append((affinity.rotate(line, angle, origin=(cx0, cy0)), float(rng.choice([12.0, 16.0, 24.0]))))

    # road corridors (long, thin sites)
    frame = box(*bounds)
    corridors: list[Polygon] = []
    n_corr = max(1, round(area_km2 / 25))
    for k in range(n_corr * 8):  # a few tries each: a corridor must miss the river, hills and town
        if len(corridors) >= n_corr:
            break
        r = np.random.default_rng([seed, 1, k])
        length = min(width, height) * r.uniform(0.3, 0.5)
        sx = xmin + width * r.uniform(0.1, 0.55)
        sy = ymin + height * r.uniform(0.1, 0.7)
        a = math.radians(angle + r.choice([0.0, 90.0]) + r.uniform(-25, 25))
        pts = [(sx + t * length * math.cos(a), sy + t * length * math.sin(a) + 40 * math.sin(6 * t))
               for t in np.linspace(0, 1, 12)]
        cand = shapely.set_precision(LineString(pts).buffer(r.uniform(15, 25), cap_style="flat"), 0.01)
        blocked = [river.buffer(river_width[0] / 2 + 60)] if river is not None else []
        blocked.append(box(xmin - 1, hill_edge - 150, xmax + 1, ymax + 1))
        if urban is not None:
            blocked.append(urban.buffer(40))
        if not any(cand.intersects(b) for b in blocked) and box(*bounds).buffer(-30).contains(cand):
            corridors.append(cand)

    obstacles: list = []
    if river is not None:
        obstacles.append(river.buffer(river_width[0] / 2 + 60))
    if urban is not None:
        obstacles.append(urban.buffer(40))
    obstacles.append(box(xmin - 1, hill_edge - 150, xmax + 1, ymax + 1))
    placer = _Placer(list(obstacles))

    sites: list[Site] = []
    villages: list[Polygon] = []
    ponds: list[tuple[Polygon, bool]] = []
    extra_scopes: list[Polygon] = []

    def add_site(kind: str, scenario: str, geom: Polygon, r: np.random.Generator,
                 moved_to: Polygon | None = None) -> Site:
        n = placer.n_sites
        kind = "construction" if kind == "tiny" else kind
        change = "completed" if kind == "completed" else _CHANGE_CYCLE[n % len(_CHANGE_CYCLE)]
        if scenario == "tiny":
            change = "new"
        if scenario == "moved" and moved_to is None:
            scenario = "inside"
        after, before = _change_geometries(r, change, geom)
        site = Site(index=n, kind=kind, scenario=scenario, change=change, after=after, before=before)
        site.scope = _scope_for(r, scenario, geom, moved_to)
        if kind == "completed":
            site.completed_surface = int(r.choice([Surface.HARDENED, Surface.REVEG]))
        if kind == "construction" and after is not None:
            site.parts_after = _construction_parts(r, after, angle, busy=r.uniform(0.3, 0.6))
        if kind in ("construction", "completed") and before is not None:
            site.parts_before = _construction_parts(r, before, angle, busy=r.uniform(0.0, 0.25))
        placer.n_sites += 1
        sites.append(site)
        return site

    # corridors first: they span cells, the cells then avoid them
    for k, corridor in enumerate(corridors):
        corridor = corridor.intersection(frame.buffer(-30))
        if corridor.is_empty or corridor.geom_type != "Polygon" or not placer.free(corridor, 5):
            continue
        add_site("road", _pick_scenario(placer.n_sites, "road"), corridor, np.random.default_rng([seed, 2, k]))
        placer.obstacles.append(corridor.buffer(60))
    placer.obstacles += [LineString(line).buffer(w / 2 + 15) for line, w in roads]
    placer.tree = shapely.STRtree(placer.obstacles)

    cell = 600.0 if min(width, height) < 4000 else max(800.0, math.sqrt(width * height / 20000.0))
    q = cell / 2
    nx, ny = int(width // cell), int(height // cell)
    pad_x, pad_y = (width - nx * cell) / 2, (height - ny * cell) / 2
    for j in range(ny):
        for i in range(nx):
            r = np.random.default_rng([seed, 3, j, i])
            x0, y0 = xmin + pad_x + i * cell, ymax - pad_y - (j + 1) * cell
            quads = [(x0 + q * (a + 0.5), y0 + q * (b + 0.5)) for b in (1, 0) for a in (0, 1)]
            order = r.permutation(4)
            used: set[int] = set()
            if r.random() < site_density:
                qi = int(order[0])
                qx, qy = quads[qi]
                kind = _KIND_CYCLE[placer.n_sites % len(_KIND_CYCLE)]
                scenario = _pick_scenario(placer.n_sites, kind)
                if scenario == "tiny":
                    kind = "tiny"
                moved_to = None
                if scenario == "moved":
                    qj = qi ^ 1  # the horizontal neighbour quadrant
                    sign = 1.0 if quads[qj][0] > qx else -1.0
                    geom = _site_geometry(r, kind, scenario, qx - sign * 0.25 * q, qy, q * 0.55, angle)
                    w = geom.bounds[2] - geom.bounds[0]
                    cand = shapely.set_precision(affinity.translate(geom, sign * (w + r.uniform(150, 260)), 0), 0.01)
                    if placer.free(cand) and box(x0, y0, x0 + cell, y0 + cell).contains(cand):
                        moved_to = cand
                        used.add(qj)
                else:
                    toward = (x0 + q - qx) * 0.3, (y0 + q - qy) * 0.3
                    geom = _site_geometry(r, kind, scenario, qx + toward[0], qy + toward[1], q, angle)
                if placer.free(geom):
                    add_site(kind, scenario, geom, r, moved_to)
                    used.add(qi)
            for qi in (int(o) for o in order):
                if qi in used:
                    continue
                qx, qy = quads[qi]
                roll = r.random()
                if roll < 0.45:
                    v = _village(r, qx + r.uniform(-0.1, 0.1) * q, qy + r.uniform(-0.1, 0.1) * q, q * 0.55, angle)
                    if placer.free(v, 10):
                        villages.append(v)
                        if r.random() < 0.5:
                            p = _blob(r, qx + q * 0.38, qy - q * 0.38, r.uniform(18, 35))
                            if placer.free(p, 5) and not p.intersects(v):
                                ponds.append((p, bool(r.random() < 0.4)))
                elif roll < 0.53:
                    p = _blob(r, qx, qy, r.uniform(25, 60))
                    if placer.free(p, 5):
                        ponds.append((p, bool(r.random() < 0.4)))
                elif roll < 0.56 and area_km2 > 20:
                    s = _rect(qx, qy, r.uniform(120, 220), r.uniform(100, 180), angle)
                    if placer.free(s):
                        extra_scopes.append(shapely.set_precision(s, 0.01))

    # clouds on the second date, they and their shadows kept off the active sites. Sentinel-2
    # passes at 10:30 local time: the sun stands in the south-east, shadows fall north-west of
    # their cloud, displaced by cloud height × tan(sun zenith) (1–2 km × ~0.35 in June)
    cloud_shift = (-float(rng.uniform(250, 500)), float(rng.uniform(200, 450)))
    clouds = _place_clouds(seed, 4, bounds, max(1, round(area_km2 / 15)), (0.05, 0.1), cloud_shift,
                           [s.after for s in sites if s.after is not None])
    mis = rng.uniform(0.2, 0.45, 2) * resolution * rng.choice([-1, 1], 2)
    # baseline date: its own generator, so adding it changes nothing of the two main dates
    rb = np.random.default_rng([seed, 5])
    b_mis = rb.uniform(0.1, 0.4, 2) * resolution * rb.choice([-1, 1], 2)
    b_clouds = _place_clouds(seed, 6, bounds, max(1, round(area_km2 / 30)), (0.03, 0.06), cloud_shift,
                             [s.before for s in sites if s.before is not None])
    # June water is low in most years: near the second date's level, never above the first's
    b_width = float(min(river_width[0], river_width[1] * rb.uniform(0.9, 1.3)))
    b_dry = tuple(bool(dries and rb.random() < 0.6) for _, dries in ponds)
    return Layout(
        seed=seed, bounds=bounds, resolution=resolution, angle_deg=angle, hill_edge=float(hill_edge),
        urban=urban, villages=villages, ponds=ponds, river=river, river_width=river_width, roads=roads,
        sites=sites, extra_scopes=extra_scopes, clouds=clouds,
        cloud_shift=cloud_shift,
        misregistration=(float(mis[0]), float(mis[1])),
        baseline_clouds=b_clouds, baseline_misregistration=(float(b_mis[0]), float(b_mis[1])),
        baseline_river_width=b_width, baseline_dry_ponds=b_dry,
    )


def _place_clouds(seed: int, salt: int, bounds: tuple[float, float, float, float], n: int,
                  radius: tuple[float, float], shift: tuple[float, float], keep_off: list) -> list:
    """Up to ``n`` clouds (x, y, radius) whose blob and shadow miss the ``keep_off`` polygons."""
    xmin, ymin, xmax, ymax = bounds
    width, height = xmax - xmin, ymax - ymin
    tree = shapely.STRtree(keep_off) if keep_off else None
    out: list[tuple[float, float, float]] = []
    for k in range(n):
        r = np.random.default_rng([seed, salt, k])
        for _ in range(20):
            x, y = xmin + width * r.uniform(0.1, 0.9), ymin + height * r.uniform(0.1, 0.9)
            rad = min(width, height) * r.uniform(*radius)
            discs = [shapely.Point(x, y).buffer(rad * 1.4 + 80),
                     shapely.Point(x + shift[0], y + shift[1]).buffer(rad * 1.4 + 80)]
            if tree is None or not any(len(tree.query(d, predicate="intersects")) for d in discs):
                out.append((x, y, rad))
                break
    return out


def _pick_scenario(n: int, kind: str) -> str:
    cycle = ("inside", "exceeds", "moved", "none", "tiny", "schematic", "inside", "unapproved", "exceeds", "none")
    scenario = cycle[n % len(cycle)]
    if kind == "completed" or (kind == "road" and scenario in ("tiny", "moved")):
        return "inside"
    return scenario
