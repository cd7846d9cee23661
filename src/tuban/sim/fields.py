"""A plain field pattern on two dates: the change-free (or one-site) pair the threshold tests and bench use.

Fields of five covers (64 × 128 px), identical on both dates, with independent 4 % sensor noise per date,
written as 4-band uint16 GeoTIFFs at 10 m (band descriptions blue, green, red, nir); with ``site``, one
40 × 40 px field turned to bare soil on the second date. Deterministic by ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["COVERS", "field_pair"]

#: DN of blue, green, red, nir for the five covers (the fourth is bare soil)
COVERS = np.array([[400, 700, 400, 3500], [600, 900, 800, 2800], [900, 1100, 1200, 2500],
                   [1300, 1600, 1900, 2600], [500, 800, 600, 3000]], np.float32)


def field_pair(folder: Path, size: int, *, seed: int = 0, site: bool = False, tiled: bool = False
               ) -> tuple[Path, Path]:
    """Write ``before.tif`` and ``after.tif`` (``size``² px) into ``folder``; ``tiled``: 512² blocks (as
    delivered imagery; the statistics then sample whole blocks), else strips."""
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    cover = ((yy // 64) * 7 + (xx // 128) * 3) % 5
    paths = []
    for name in ("before", "after"):
        arr = COVERS[cover].transpose(2, 0, 1) * (1 + 0.04 * rng.standard_normal((4, size, size)))
        if site and name == "after":
            arr[:, 200:240, 300:340] = COVERS[3][:, None, None] * 1.3
        prof = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint16",
                "crs": "EPSG:32650", "transform": Affine(10, 0, 500000, 0, -10, 4000000)}
        if tiled:
            prof.update(tiled=True, blockxsize=512, blockysize=512)
        path = folder / f"{name}.tif"
        with rasterio.open(path, "w", **prof) as dst:
            for i, role in enumerate(("blue", "green", "red", "nir")):
                dst.set_band_description(i + 1, role)
            dst.write(np.clip(arr, 1, 65000).astype("uint16"))
        paths.append(path)
    return paths[0], paths[1]
