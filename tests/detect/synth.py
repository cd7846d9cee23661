"""Synthetic two-date scenes written with rasterio (small, deterministic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

VEG = (0.04, 0.07, 0.04, 0.35, 0.18, 0.09)
SOIL = (0.13, 0.16, 0.19, 0.26, 0.33, 0.28)
ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")
S2 = ("B02", "B03", "B04", "B08", "B11", "B12")
# changed rectangles (row0, row1, col0, col1): one crosses the 128-px seams
RECTS = ((20, 45, 30, 70), (110, 150, 100, 160), (200, 212, 220, 236), (60, 66, 200, 206))


def _field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    from scipy import ndimage as ndi

    f = ndi.gaussian_filter(rng.normal(size=shape), 6)
    return (f - f.mean()) / (f.std() + 1e-9)


def scene_arrays(shape: tuple[int, int] = (256, 288), seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Before and after reflectance stacks (6, h, w) and the true change mask."""
    rng = np.random.default_rng(seed)
    base = np.stack([np.full(shape, v) for v in VEG]).astype(np.float32)
    tex = _field(rng, shape)
    base *= (1 + 0.15 * tex)[None]
    truth = np.zeros(shape, bool)
    for r0, r1, c0, c1 in RECTS:
        truth[r0:r1, c0:c1] = True
    near = np.zeros(shape, bool)
    for r0, r1, c0, c1 in RECTS:
        near[max(0, r0 - 4) : r1 + 4, max(0, c0 - 4) : c1 + 4] = True
    urban = (_field(rng, shape) > 1.2) & ~near  # already-bare areas that stay bare
    for i, v in enumerate(SOIL):
        base[i][urban] = v * 0.9
    before = base * (1 + 0.03 * rng.normal(size=base.shape)).astype(np.float32)
    after = base * (1 + 0.03 * rng.normal(size=base.shape)).astype(np.float32)
    for i, v in enumerate(SOIL):
        after[i][truth] = v * (1 + 0.03 * rng.normal(size=int(truth.sum())))
    return before, after, truth


def write_stack(path: Path, arr: np.ndarray, *, crs: str = "EPSG:32650", res: float = 10.0,
                origin: tuple[float, float] = (500000.0, 3800000.0), nodata: int | None = None,
                descriptions: tuple[str, ...] | None = ROLES, scale: float = 1e-4, add: float = 0.0,
                block: int | None = None) -> Path:
    """``arr`` (reflectance) as uint16 DN with reflectance = DN × ``scale`` + ``add``; ``block``: tiled in
    blocks of that size (else in strips)."""
    import rasterio
    from affine import Affine

    dn = np.clip((arr - add) * (1 / scale), 0, 65535).astype(np.uint16)
    tiles = {"tiled": True, "blockxsize": block, "blockysize": block} if block else {}
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype="uint16", crs=crs, transform=Affine(res, 0.0, origin[0], 0.0, -res, origin[1]), nodata=nodata,
                       **tiles) as dst:
        dst.write(dn)
        if descriptions:
            for i, d in enumerate(descriptions[: arr.shape[0]]):
                dst.set_band_description(i + 1, d)
    return path


def write_band_folder(folder: Path, arr: np.ndarray, *, res: float = 10.0, prefix: str = "T50QKK_20180323",
                      origin: tuple[float, float] = (500000.0, 3800000.0)) -> Path:
    """One file per band named ``*_B02.tif``; SWIR bands at half resolution like Sentinel-2."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, token in enumerate(S2):
        band = arr[i : i + 1]
        r = res
        if token in ("B11", "B12"):
            h, w = -(-band.shape[1] // 2), -(-band.shape[2] // 2)  # ceil, like Sentinel-2
            band = np.pad(band, ((0, 0), (0, h * 2 - band.shape[1]), (0, w * 2 - band.shape[2])), mode="edge")
            band = band.reshape(1, h, 2, w, 2).mean(axis=(2, 4))
            r = res * 2
        write_stack(folder / f"{prefix}_{token}.tif", band, res=r, origin=origin, descriptions=None)
    return folder


def write_jp2(path: Path, data: np.ndarray, res: float, origin: tuple[float, float] = (500000.0, 3800000.0)
              ) -> None:
    """``data`` (bands, h, w) as a lossless JPEG 2000 file in UTM 50N."""
    import rasterio
    from affine import Affine

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs="EPSG:32650", QUALITY=100, REVERSIBLE="YES",
                       transform=Affine(res, 0.0, origin[0], 0.0, -res, origin[1])) as dst:
        dst.write(data)


def write_safe(folder: Path, arr: np.ndarray, *, stamp: str = "20230601T030551",
               classi: np.ndarray | None = None, baseline: str = "05.09",
               clouds_gml: dict[str, list[tuple[int, ...]]] | None = None,
               gml_name: str = "MSK_CLOUDS_B00.gml") -> Path:
    """A Sentinel-2 L1C product of processing ``baseline`` as its ``.SAFE`` folder: the bands of ``arr``
    (reflectance) as lossless JPEG 2000 (B11/B12 at 20 m, the rest at 10 m), DN = reflectance × 10000, + 1000
    from baseline 04.00 as its MTD XML then says; with ``classi`` (3, h/6, w/6 of 0/1: opaque clouds, cirrus,
    snow and ice) its ``QI_DATA/MSK_CLASSI_B00.jp2`` at 60 m; with ``clouds_gml`` (mask type → boxes of 60 m
    cells, rows r0:r1 and columns c0:c1 as in ``classi``) the vector mask of older products, ``QI_DATA/``
    ``gml_name`` (GML 3.2, as ESA writes it; ``{}``: a mask without clouds)."""
    new = baseline >= "04.00"
    safe = folder / f"S2A_MSIL1C_{stamp}_N{baseline.replace('.', '')}_R075_T50QKK_{stamp}.SAFE"
    granule = safe / "GRANULE" / f"L1C_T50QKK_A041000_{stamp}"
    safe.mkdir(parents=True)
    (safe / "MTD_MSIL1C.xml").write_text('<?xml version="1.0"?><n1:Level-1C_User_Product xmlns:n1="x">'
                                         + "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>'
                                                   for i in range(13) if new) + "</n1:Level-1C_User_Product>")
    for i, token in enumerate(S2):
        band, res = arr[i : i + 1], 10.0
        if token in ("B11", "B12"):  # h and w even here
            band, res = band.reshape(1, band.shape[1] // 2, 2, band.shape[2] // 2, 2).mean(axis=(2, 4)), 20.0
        dn = np.clip(np.rint(band * 10000 + (1000 if new else 0)), 0, 65535).astype(np.uint16)
        write_jp2(granule / "IMG_DATA" / f"T50QKK_{stamp}_{token}.jp2", dn, res)
    if classi is not None:
        write_jp2(granule / "QI_DATA" / "MSK_CLASSI_B00.jp2", classi.astype(np.uint8), 60.0)
    if clouds_gml is not None:
        (granule / "QI_DATA").mkdir(parents=True, exist_ok=True)
        (granule / "QI_DATA" / gml_name).write_text(_msk_clouds_gml(clouds_gml, arr.shape[1:]))
    return safe


def _msk_clouds_gml(boxes: dict[str, list[tuple[int, ...]]], shape: tuple[int, ...],
                    origin: tuple[float, float] = (500000.0, 3800000.0)) -> str:
    """A ``MSK_CLOUDS_B00.gml`` as ESA writes it: each box of 60 m cells (rows r0:r1, columns c0:c1, and
    optionally four more: a hole's rows and columns) one ``eop:MaskFeature`` polygon along the cell edges."""
    x0, y0 = origin
    h, w = shape

    def ring(r0: float, r1: float, c0: float, c1: float) -> str:
        xs, ys = (x0 + 60 * c0, x0 + 60 * c1), (y0 - 60 * r0, y0 - 60 * r1)
        pts = [(xs[0], ys[0]), (xs[1], ys[0]), (xs[1], ys[1]), (xs[0], ys[1]), (xs[0], ys[0])]
        return " ".join(f"{x:.0f} {y:.0f}" for x, y in pts)

    members = []
    for kind, rects in boxes.items():
        for k, rect in enumerate(rects):
            hole = ""
            if len(rect) == 8:
                hole = (f'<gml:interior><gml:LinearRing><gml:posList srsDimension="2">{ring(*rect[4:])}'
                        "</gml:posList></gml:LinearRing></gml:interior>")
            members.append(
                f'<eop:MaskFeature gml:id="{kind}.{k}"><eop:maskType codeSpace="urn:gs2:S2PDGS:maskType">{kind}'
                f'</eop:maskType><eop:extentOf><gml:Polygon gml:id="{kind}.{k}_Polygon"><gml:exterior><gml:LinearRing>'
                f'<gml:posList srsDimension="2">{ring(*rect[:4])}</gml:posList></gml:LinearRing></gml:exterior>'
                f"{hole}</gml:Polygon></eop:extentOf></eop:MaskFeature>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:gml="http://www.opengis.net/gml/3.2" '
            'gml:id="S2A_OPER_MSK_CLOUDS_SGS__20160929T154211_A006640_T50QKK_B00_MSIL1C"><gml:boundedBy>'
            '<gml:Envelope srsName="urn:ogc:def:crs:EPSG:8.7:32650">'
            f"<gml:lowerCorner>{x0:.0f} {y0 - 10 * h:.0f}</gml:lowerCorner>"
            f"<gml:upperCorner>{x0 + 10 * w:.0f} {y0:.0f}</gml:upperCorner></gml:Envelope></gml:boundedBy>"
            + (f"<eop:maskMembers>{''.join(members)}</eop:maskMembers>" if members else "") + "</eop:Mask>")


def write_damaged_pair(folder: Path) -> tuple[Path, Path]:
    """A 256² stack as a good GeoTIFF and as a DEFLATE one whose middle third of compressed blocks is
    overwritten: it opens (the header is intact) and fails while decoding."""
    import rasterio

    arr, _, _ = scene_arrays(shape=(256, 256))
    whole = write_stack(folder / "whole.tif", arr, block=64)
    with rasterio.open(whole) as src:
        profile, pixels = {**src.profile, "compress": "deflate"}, src.read()
    with rasterio.open(folder / "deflate.tif", "w", **profile) as dst:
        dst.write(pixels)
    data = bytearray((folder / "deflate.tif").read_bytes())
    n = len(data)
    data[n // 3 : n // 2] = b"\xff" * (n // 2 - n // 3)
    damaged = folder / "damaged.tif"
    damaged.write_bytes(bytes(data))
    return whole, damaged
