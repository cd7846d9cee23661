"""Sensor profiles (传感器配置): band names → band roles, reflectance scale.

A band *role* is one of :data:`ROLES`. A profile maps the band tokens found in file names or band
descriptions (``B02``, ``SR_B4`` …) and band positions in a multi-band file to roles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tuban.errors import UsageError

__all__ = ["CLASSI_ROLES", "FLAG_ROLES", "PROFILES", "ROLES", "SensorProfile", "get_profile", "parse_band_roles", "role_from_wavelength"]

#: the three layers of Sentinel-2's ``QI_DATA/MSK_CLASSI_B00.jp2`` (L1C and L2A from processing baseline 04.00,
#: 60 m, 0/1): opaque clouds, cirrus, snow and ice
CLASSI_ROLES = ("msk_opaque", "msk_cirrus", "msk_snow")
ROLES = ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir1", "swir2",
         "pan", "cirrus", "qa", "scl", *CLASSI_ROLES)
#: roles that are flags, not reflectance: Landsat's ``QA_PIXEL`` bits, Sentinel-2 L2A's scene classification,
#: Sentinel-2's cloud and snow classification layers
FLAG_ROLES = ("qa", "scl", *CLASSI_ROLES)


@dataclass(frozen=True)
class SensorProfile:
    """How one sensor names its bands.

    Attributes
    ----------
    name : str
        profile key (``sentinel2``, ``landsat8`` …).
    tokens : dict
        band token (as in file names, upper case) → role.
    order : tuple
        roles of the bands of a stacked multi-band file, in order.
    scale : float or None
        multiply DN by this to get reflectance 0–1 (``None``: unknown, spectral masks are skipped).
    dn_offset : int
        what the product adds to every DN: reflectance = (DN − dn_offset) × scale.
    """

    name: str
    tokens: dict[str, str] = field(default_factory=dict)
    order: tuple[str, ...] = ()
    scale: float | None = None
    dn_offset: int = 0


_S2 = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
       "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B10": "cirrus", "B11": "swir1", "B12": "swir2",
       "SCL": "scl"}
_L89 = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "nir", "B6": "swir1", "B7": "swir2",
        "B8": "pan", "B9": "cirrus", "QA_PIXEL": "qa"}
_L457 = {"B1": "blue", "B2": "green", "B3": "red", "B4": "nir", "B5": "swir1", "B7": "swir2", "B8": "pan",
         "QA_PIXEL": "qa"}

#: Landsat Collection 2 Level-2 surface reflectance: reflectance = DN × 0.0000275 − 0.2, i.e. (DN − 7272.7) ×
#: 0.0000275. The offset is kept as a whole DN (7273): 0.27 DN off, 7.5e-6 in reflectance, a quarter of the
#: data's own step. Level-1 products differ (their MTL file says how: ``raster.scene``).
LANDSAT_L2_SCALE = 2.75e-5
LANDSAT_L2_DN_OFFSET = round(0.2 / LANDSAT_L2_SCALE)
_SIX = ("blue", "green", "red", "nir", "swir1", "swir2")

PROFILES: dict[str, SensorProfile] = {
    "sentinel2": SensorProfile("sentinel2", _S2, _SIX, 1e-4),
    "landsat8": SensorProfile("landsat8", _L89, _SIX, LANDSAT_L2_SCALE, LANDSAT_L2_DN_OFFSET),
    "landsat9": SensorProfile("landsat9", _L89, _SIX, LANDSAT_L2_SCALE, LANDSAT_L2_DN_OFFSET),
    "landsat5": SensorProfile("landsat5", _L457, _SIX, LANDSAT_L2_SCALE, LANDSAT_L2_DN_OFFSET),
    "landsat7": SensorProfile("landsat7", _L457, _SIX, LANDSAT_L2_SCALE, LANDSAT_L2_DN_OFFSET),
    # GF-1/GF-2/GF-6 PMS multispectral: band 1–4 = blue, green, red, nir (DN, scale unknown)
    "gf": SensorProfile("gf", {"B1": "blue", "B2": "green", "B3": "red", "B4": "nir"},
                        ("blue", "green", "red", "nir"), None),
    "rgb": SensorProfile("rgb", {}, ("red", "green", "blue"), None),
    "generic": SensorProfile("generic", {}, _SIX, None),
}
for _alias, _key in (("s2", "sentinel2"), ("gf1", "gf"), ("gf2", "gf"), ("gf6", "gf"), ("l8", "landsat8"),
                     ("l9", "landsat9"), ("l5", "landsat5"), ("l7", "landsat7")):
    PROFILES[_alias] = PROFILES[_key]

# centre wavelengths (nm) → role, for files that carry wavelength metadata
_WAVELENGTHS = ((400, 460, "blue"), (440, 470, "blue"), (470, 510, "blue"), (510, 590, "green"),
                (620, 690, "red"), (760, 900, "nir"), (1550, 1750, "swir1"), (2080, 2350, "swir2"))


def get_profile(name: str | None) -> SensorProfile:
    """The profile called ``name`` (``None`` → ``generic``)."""
    key = (name or "generic").lower().replace("-", "")
    if key not in PROFILES:
        raise UsageError(f"unknown sensor {name!r}", hint=f"use one of {', '.join(sorted(PROFILES))}")
    return PROFILES[key]


def role_from_wavelength(nm: float) -> str | None:
    """The role of a band centred at ``nm`` nanometres (µm values < 5 are converted)."""
    if nm < 5:
        nm *= 1000.0
    for lo, hi, role in _WAVELENGTHS:
        if lo <= nm <= hi:
            return role
    return None


def parse_band_roles(text: str | None) -> tuple[str, ...] | None:
    """Parse ``--bands blue,green,red,nir`` into a tuple of roles (``_`` or ``skip`` skips a band)."""
    if not text:
        return None
    roles = tuple(t.strip().lower() for t in text.split(","))
    bad = [r for r in roles if r not in ROLES and r not in ("_", "skip")]
    if bad:
        raise UsageError(f"unknown band role(s) {bad} in --bands {text!r}", hint=f"roles are {', '.join(ROLES)}")
    return roles
