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
               classi: np.ndarray | None = None) -> Path:
    """A Sentinel-2 L1C product of processing baseline 05.09 as its ``.SAFE`` folder: the bands of ``arr``
    (reflectance) as lossless JPEG 2000 (B11/B12 at 20 m, the rest at 10 m), DN = reflectance × 10000 + 1000
    as its MTD XML says; with ``classi`` (3, h/6, w/6 of 0/1: opaque clouds, cirrus, snow and ice) its
    ``QI_DATA/MSK_CLASSI_B00.jp2`` at 60 m."""
    safe = folder / f"S2A_MSIL1C_{stamp}_N0509_R075_T50QKK_{stamp}.SAFE"
    granule = safe / "GRANULE" / f"L1C_T50QKK_A041000_{stamp}"
    safe.mkdir(parents=True)
    (safe / "MTD_MSIL1C.xml").write_text('<?xml version="1.0"?><n1:Level-1C_User_Product xmlns:n1="x">'
                                         + "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>'
                                                   for i in range(13)) + "</n1:Level-1C_User_Product>")
    for i, token in enumerate(S2):
        band, res = arr[i : i + 1], 10.0
        if token in ("B11", "B12"):  # h and w even here
            band, res = band.reshape(1, band.shape[1] // 2, 2, band.shape[2] // 2, 2).mean(axis=(2, 4)), 20.0
        dn = np.clip(np.rint(band * 10000 + 1000), 0, 65535).astype(np.uint16)
        write_jp2(granule / "IMG_DATA" / f"T50QKK_{stamp}_{token}.jp2", dn, res)
    if classi is not None:
        write_jp2(granule / "QI_DATA" / "MSK_CLASSI_B00.jp2", classi.astype(np.uint8), 60.0)
    return safe


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
