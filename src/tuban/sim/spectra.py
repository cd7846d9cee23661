"""Surface classes, endmember spectra and the two simulated sensors.

Each surface class is a fixed mixture of endmembers (green vegetation, loess soil,
water, concrete …); each endmember has a reflectance per Sentinel-2 band (approximate
surface reflectance of the North China plain in spring/summer). The GF-2-like sensor
samples the same endmembers at its blue/green/red/NIR bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["DIFFUSE", "HAZE", "PATH_RADIANCE", "SENSORS", "BandSpec", "Sensor", "Surface", "band_values",
           "class_spectra"]


class Surface(IntEnum):
    """Surface classes of the land-cover map (one per pixel and date)."""

    CROP_GREEN = 1  # winter wheat / vegetables in leaf
    CROP_YOUNG = 2  # seedlings (young maize)
    CROP_STUBBLE = 3  # harvested wheat
    CROP_PLOUGHED = 4  # ploughed bare field (耕地裸露: not construction)
    GRASS = 5
    ORCHARD = 6
    FOREST = 7
    SHRUB_ROCK = 8  # hill slopes: shrubs over limestone
    VILLAGE_ROOF = 9
    VILLAGE_YARD = 10
    TREE = 11  # village and road-side trees (poplar lines)
    URBAN_ROOF = 12
    URBAN_DARK_ROOF = 13
    ROAD = 14  # asphalt
    FARM_ROAD = 15  # dirt track
    WATER = 16
    POND = 17
    SAND = 18  # river bank and exposed bed
    MUD = 19
    SITE_SOIL = 20  # graded construction soil
    SITE_BUILDING = 21  # concrete frames of new buildings
    SITE_BLUE_ROOF = 22  # temporary steel sheds (彩钢房)
    SITE_NET = 23  # green dust-cover netting (苫盖)
    SPOIL = 24  # spoil heap (弃渣)
    PIT = 25  # borrow pit floor (取土)
    HARDENED = 26  # completed: concrete yard
    REVEG = 27  # completed: revegetated slope
    GREENHOUSE = 28


N_SURFACES = max(Surface) + 1

#: bands of the Sentinel-2-like sensor: name, centre wavelength (nm), resolution (m), role
S2_BANDS: tuple[tuple[str, int, int, str], ...] = (
    ("B01", 443, 60, "coastal"),
    ("B02", 490, 10, "blue"),
    ("B03", 560, 10, "green"),
    ("B04", 665, 10, "red"),
    ("B05", 705, 20, "rededge1"),
    ("B06", 740, 20, "rededge2"),
    ("B07", 783, 20, "rededge3"),
    ("B08", 842, 10, "nir"),
    ("B8A", 865, 20, "nir08"),
    ("B09", 945, 60, "watervapour"),
    ("B10", 1375, 60, "cirrus"),
    ("B11", 1610, 20, "swir1"),
    ("B12", 2190, 20, "swir2"),
)

#: endmember reflectances on the 13 S2 bands (B01 … B12 in S2_BANDS order)
_ENDMEMBERS: dict[str, tuple[float, ...]] = {
    "veg": (0.030, 0.035, 0.075, 0.040, 0.110, 0.300, 0.380, 0.420, 0.430, 0.130, 0.005, 0.200, 0.100),
    "dry": (0.070, 0.080, 0.110, 0.140, 0.170, 0.200, 0.220, 0.240, 0.250, 0.080, 0.005, 0.320, 0.250),
    "soil": (0.080, 0.095, 0.135, 0.175, 0.205, 0.225, 0.240, 0.255, 0.265, 0.090, 0.006, 0.330, 0.290),
    "moist": (0.055, 0.065, 0.085, 0.105, 0.125, 0.140, 0.150, 0.160, 0.170, 0.060, 0.004, 0.230, 0.190),
    "graded": (0.120, 0.140, 0.185, 0.225, 0.250, 0.265, 0.280, 0.290, 0.300, 0.100, 0.006, 0.380, 0.340),
    "water": (0.060, 0.060, 0.065, 0.040, 0.030, 0.020, 0.018, 0.015, 0.012, 0.005, 0.002, 0.008, 0.005),
    "turbid": (0.070, 0.080, 0.105, 0.085, 0.075, 0.050, 0.042, 0.035, 0.030, 0.010, 0.002, 0.010, 0.008),
    "asphalt": (0.070, 0.072, 0.080, 0.090, 0.098, 0.102, 0.108, 0.112, 0.115, 0.040, 0.003, 0.130, 0.120),
    "concrete": (0.170, 0.190, 0.215, 0.230, 0.240, 0.250, 0.258, 0.262, 0.268, 0.090, 0.006, 0.285, 0.250),
    "redroof": (0.070, 0.080, 0.090, 0.150, 0.190, 0.210, 0.220, 0.230, 0.240, 0.080, 0.005, 0.300, 0.250),
    "blueroof": (0.150, 0.190, 0.170, 0.110, 0.115, 0.125, 0.135, 0.145, 0.150, 0.050, 0.004, 0.120, 0.100),
    "net": (0.050, 0.060, 0.100, 0.070, 0.090, 0.120, 0.130, 0.140, 0.142, 0.050, 0.003, 0.150, 0.110),
    "forest": (0.025, 0.028, 0.050, 0.030, 0.080, 0.220, 0.280, 0.310, 0.320, 0.100, 0.004, 0.150, 0.070),
    "sand": (0.100, 0.120, 0.160, 0.190, 0.220, 0.240, 0.250, 0.260, 0.270, 0.090, 0.006, 0.320, 0.270),
    "rock": (0.110, 0.125, 0.150, 0.170, 0.185, 0.195, 0.205, 0.215, 0.220, 0.075, 0.005, 0.280, 0.240),
    "plastic": (0.200, 0.230, 0.250, 0.250, 0.255, 0.265, 0.275, 0.285, 0.290, 0.100, 0.006, 0.260, 0.200),
    "cloud": (0.450, 0.450, 0.460, 0.470, 0.480, 0.480, 0.480, 0.490, 0.490, 0.250, 0.080, 0.350, 0.220),
}
_EM_NAMES = tuple(_ENDMEMBERS)

#: top-of-atmosphere additions (Level-1C-like): path radiance (Rayleigh + aerosol) per S2 band,
#: added to the surface reflectance on every date
PATH_RADIANCE: tuple[float, ...] = (0.070, 0.050, 0.035, 0.022, 0.016, 0.012, 0.010, 0.008, 0.007, 0.004, 0.0,
                                    0.002, 0.001)
#: share of the surface illumination that is diffuse skylight, per S2 band: what is left in a
#: cloud shadow (blue keeps a third, NIR and SWIR about a tenth; B10 sees the upper atmosphere only)
DIFFUSE: tuple[float, ...] = (0.45, 0.38, 0.30, 0.25, 0.20, 0.17, 0.15, 0.13, 0.13, 0.13, 1.0, 0.10, 0.10)
#: haze (thin aerosol layer): additive reflectance per S2 band at full haze density
HAZE: tuple[float, ...] = (0.07, 0.06, 0.045, 0.03, 0.025, 0.02, 0.017, 0.015, 0.014, 0.01, 0.0, 0.006, 0.004)

#: surface → endmember fractions
_RECIPES: dict[Surface, dict[str, float]] = {
    Surface.CROP_GREEN: {"veg": 0.85, "soil": 0.15},
    Surface.CROP_YOUNG: {"veg": 0.35, "moist": 0.65},
    Surface.CROP_STUBBLE: {"dry": 0.75, "soil": 0.25},
    Surface.CROP_PLOUGHED: {"moist": 0.9, "dry": 0.1},
    Surface.GRASS: {"veg": 0.55, "dry": 0.3, "soil": 0.15},
    Surface.ORCHARD: {"veg": 0.6, "soil": 0.4},
    Surface.FOREST: {"forest": 0.85, "soil": 0.15},
    Surface.SHRUB_ROCK: {"forest": 0.35, "rock": 0.45, "dry": 0.2},
    Surface.VILLAGE_ROOF: {"redroof": 0.55, "concrete": 0.45},
    Surface.VILLAGE_YARD: {"concrete": 0.5, "soil": 0.3, "veg": 0.2},
    Surface.TREE: {"forest": 0.9, "soil": 0.1},
    Surface.URBAN_ROOF: {"concrete": 0.9, "asphalt": 0.1},
    Surface.URBAN_DARK_ROOF: {"asphalt": 0.7, "concrete": 0.3},
    Surface.ROAD: {"asphalt": 1.0},
    Surface.FARM_ROAD: {"soil": 0.7, "dry": 0.3},
    Surface.WATER: {"water": 0.6, "turbid": 0.4},
    Surface.POND: {"water": 0.8, "veg": 0.05, "turbid": 0.15},
    Surface.SAND: {"sand": 1.0},
    Surface.MUD: {"moist": 0.5, "water": 0.5},
    Surface.SITE_SOIL: {"graded": 0.9, "soil": 0.1},
    Surface.SITE_BUILDING: {"concrete": 1.0},
    Surface.SITE_BLUE_ROOF: {"blueroof": 1.0},
    Surface.SITE_NET: {"net": 0.85, "graded": 0.15},
    Surface.SPOIL: {"graded": 0.6, "soil": 0.3, "rock": 0.1},
    Surface.PIT: {"moist": 0.7, "soil": 0.3},
    Surface.HARDENED: {"concrete": 0.85, "asphalt": 0.15},
    Surface.REVEG: {"veg": 0.5, "dry": 0.2, "soil": 0.3},
    Surface.GREENHOUSE: {"plastic": 0.8, "veg": 0.2},
}

#: relative brightness texture amplitude per surface (multiplies low-frequency noise)
TEXTURE_AMP: dict[Surface, float] = {
    Surface.FOREST: 0.35, Surface.SHRUB_ROCK: 0.3, Surface.SPOIL: 0.25, Surface.PIT: 0.2,
    Surface.SITE_SOIL: 0.12, Surface.CROP_PLOUGHED: 0.12, Surface.CROP_STUBBLE: 0.1,
    Surface.WATER: 0.08, Surface.POND: 0.1, Surface.VILLAGE_ROOF: 0.15, Surface.URBAN_ROOF: 0.12,
}
#: per-surface vegetation-fraction jitter (moves pixels along the veg–soil line)
VEG_JITTER: dict[Surface, float] = {
    Surface.CROP_GREEN: 0.18, Surface.CROP_YOUNG: 0.2, Surface.GRASS: 0.25, Surface.ORCHARD: 0.25,
    Surface.REVEG: 0.25, Surface.SHRUB_ROCK: 0.3, Surface.VILLAGE_YARD: 0.3, Surface.FOREST: 0.1,
}


@dataclass(frozen=True)
class BandSpec:
    name: str
    wavelength_nm: int
    resolution_factor: int  # 1 = the sensor's finest grid, 2 = 20 m for S2 …
    role: str


@dataclass(frozen=True)
class Sensor:
    """A simulated sensor: its bands, default pixel size and noise level."""

    name: str
    bands: tuple[BandSpec, ...]
    default_resolution: float
    noise_sigma: float  # reflectance units
    s2_index: tuple[int, ...]  # which endmember band column feeds each band
    layout: str  # "band-files" (one COG per band) or "stack" (one multi-band COG)

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    def roles(self) -> dict[str, str]:
        return {b.role: b.name for b in self.bands}


SENSORS: dict[str, Sensor] = {
    "s2": Sensor(
        name="s2",
        bands=tuple(BandSpec(n, w, r // 10, role) for n, w, r, role in S2_BANDS),
        default_resolution=10.0,
        noise_sigma=0.004,
        s2_index=tuple(range(13)),
        layout="band-files",
    ),
    "gf2": Sensor(
        name="gf2",
        bands=(
            BandSpec("blue", 485, 1, "blue"),
            BandSpec("green", 555, 1, "green"),
            BandSpec("red", 660, 1, "red"),
            BandSpec("nir", 830, 1, "nir"),
        ),
        default_resolution=2.0,
        noise_sigma=0.006,
        s2_index=(1, 2, 3, 7),
        layout="stack",
    ),
}


def class_spectra(sensor: Sensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-surface mean reflectance ``(N_SURFACES, n_bands)`` and the veg − soil direction ``(n_bands,)``."""
    em = np.array([_ENDMEMBERS[n] for n in _EM_NAMES], dtype=np.float32)[:, list(sensor.s2_index)]
    table = np.zeros((N_SURFACES, em.shape[1]), dtype=np.float32)
    for surface, recipe in _RECIPES.items():
        for name, frac in recipe.items():
            table[int(surface)] += np.float32(frac) * em[_EM_NAMES.index(name)]
    veg_dir = em[_EM_NAMES.index("veg")] - em[_EM_NAMES.index("soil")]
    return table, veg_dir


def endmember(name: str, sensor: Sensor) -> np.ndarray:
    """One endmember's reflectance on the sensor's bands."""
    return np.array(_ENDMEMBERS[name], dtype=np.float32)[list(sensor.s2_index)]


def band_values(values: tuple[float, ...], sensor: Sensor) -> np.ndarray:
    """A per-S2-band table (13 values) sampled at the sensor's bands."""
    return np.array(values, dtype=np.float32)[list(sensor.s2_index)]


def lookup(mapping: dict[Surface, float], default: float = 0.05) -> np.ndarray:
    """A per-surface float table from a sparse mapping."""
    out = np.full(N_SURFACES, default, dtype=np.float32)
    for k, v in mapping.items():
        out[int(k)] = v
    return out
