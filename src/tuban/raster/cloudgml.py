"""Sentinel-2's vector cloud mask (``QI_DATA/MSK_CLOUDS_B00.gml``): the product's own cloud flags for L1C
products from before processing baseline 04.00 (25 January 2022), which carry no ``MSK_CLASSI_B00.jp2``.

The file lists ``eop:MaskFeature`` polygons (GML 3.2) of type ``OPAQUE`` or ``CIRRUS``, drawn along the
edges of 60 m pixels, in the granule's UTM CRS; a product without clouds lists none. They are rasterised
here once, when the scene is opened, into a two-layer 60 m raster (opaque clouds, cirrus: the first two
:data:`~tuban.raster.profiles.CLASSI_ROLES`, as ``MSK_CLASSI`` has them), which the scene then carries and
reads like any flag band (:attr:`tuban.raster.scene.Scene.embedded`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from tuban.errors import InputError

__all__ = ["MASK_TYPES", "parse_msk_clouds", "rasterize"]

_EOP = "http://www.opengis.net/eop/2.0"
_GML = "http://www.opengis.net/gml/3.2"
_NS = {"eop": _EOP, "gml": _GML}
#: the mask types read, in layer order (their roles: ``msk_opaque``, ``msk_cirrus``)
MASK_TYPES = ("OPAQUE", "CIRRUS")
#: the pixel size of the mask (the polygons follow the edges of 60 m pixels)
MASK_RES = 60.0


def parse_msk_clouds(data: bytes, where: str) -> tuple[dict[str, list[Any]], int | None]:
    """The polygons of each of :data:`MASK_TYPES` (shapely, repaired) and the EPSG code of their CRS (from
    the file's ``srsName``, ``None`` when it names none). ``where`` names the file in errors."""
    import shapely

    def bad(why: str) -> InputError:
        return InputError(f"{where}: not a readable Sentinel-2 cloud mask ({why})",
                          hint="download the product again, or remove the file to use the spectral cloud test")

    try:
        root = ET.fromstring(data)  # no external entities; expat refuses entity expansion bombs
    except ET.ParseError as exc:
        raise bad(str(exc)) from None
    if root.tag != f"{{{_EOP}}}Mask":
        raise bad(f"its root element is {root.tag}, not eop:Mask")
    epsg = None
    for el in root.iter():
        m = re.search(r"EPSG:[\d.]*:(\d+)$", el.get("srsName", ""))
        if m:
            epsg = int(m.group(1))
            break
    out: dict[str, list[Any]] = {t: [] for t in MASK_TYPES}

    def ring(pos: ET.Element | None) -> np.ndarray:
        if pos is None or not (pos.text or "").strip():
            raise bad("a polygon without coordinates")
        dims = int(pos.get("srsDimension", "2") or 2)
        try:
            xy = np.array(pos.text.split(), float)  # type: ignore[union-attr]
        except ValueError:
            raise bad("coordinates that are not numbers") from None
        if dims < 2 or xy.size % dims or xy.size // dims < 4 or not np.isfinite(xy).all():
            raise bad(f"a ring of {xy.size} values in {dims} dimensions")
        return xy.reshape(-1, dims)[:, :2]

    for feat in root.iter(f"{{{_EOP}}}MaskFeature"):
        kind = (feat.findtext("eop:maskType", default="", namespaces=_NS) or "").strip().upper()
        if kind not in out:
            continue
        for poly in feat.iter(f"{{{_GML}}}Polygon"):
            shell = ring(poly.find("gml:exterior/gml:LinearRing/gml:posList", _NS))
            holes = [ring(h) for h in poly.findall("gml:interior/gml:LinearRing/gml:posList", _NS)]
            out[kind].append(shapely.make_valid(shapely.Polygon(shell, holes)))
    return out, epsg


def rasterize(shapes: dict[str, list[Any]], shapes_crs: str | None, crs: str, bounds: tuple[float, float, float, float]
              ) -> bytes:
    """A GeoTIFF (bytes, DEFLATE) of the mask over ``bounds`` in ``crs`` (a granule's extent): one uint8 layer
    of 0/1 per mask type at :data:`MASK_RES` (a pixel is flagged when its centre is inside a polygon: the
    polygons follow the pixel edges). ``shapes_crs``: the polygons' CRS, when it differs from ``crs``."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.features import rasterize as burn
    from rasterio.io import MemoryFile
    from rasterio.warp import transform_geom

    left, bottom, right, top = bounds
    w, h = max(1, round((right - left) / MASK_RES)), max(1, round((top - bottom) / MASK_RES))
    transform = Affine(MASK_RES, 0.0, left, 0.0, -MASK_RES, top)
    layers = np.zeros((len(MASK_TYPES), h, w), np.uint8)
    for i, kind in enumerate(MASK_TYPES):
        geoms = [g for g in shapes.get(kind, []) if not g.is_empty]
        if shapes_crs is not None and geoms and CRS.from_user_input(shapes_crs) != CRS.from_user_input(crs):
            geoms = [transform_geom(shapes_crs, crs, g.__geo_interface__) for g in geoms]
        if geoms:
            burn([(g, 1) for g in geoms], out=layers[i], transform=transform, dtype="uint8")
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=w, height=h, count=len(MASK_TYPES), dtype="uint8", crs=crs,
                      transform=transform, compress="deflate") as dst:
            dst.write(layers)
        return bytes(mem.read())
