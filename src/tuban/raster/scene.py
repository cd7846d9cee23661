"""Open a scene (景): find its band files and their roles, keep only paths (no open datasets).

Accepted inputs
---------------
- a multi-band GeoTIFF / COG / ENVI / any GDAL-readable raster (GTiff, COG, ENVI, JP2, HFA), and a VRT that
  only mosaics local raster files (``gdalbuildvrt`` of one date's scenes; anything else in a VRT is refused);
- a folder of single-band files named by band (``*_B02.tif`` as in Sentinel-2 and OSCD, ``*_B4.TIF`` Landsat);
- a Sentinel-2 ``.SAFE`` folder (``GRANULE/*/IMG_DATA/**/*_B02*.jp2``; its clouds from L2A's scene
  classification ``*_SCL_20m.jp2``, or else from ``QI_DATA/MSK_CLASSI_B00.jp2``, an L1C's from processing
  baseline 04.00, or else from the vector mask ``QI_DATA/MSK_CLOUDS_B00.gml`` of older L1C products);
- a Landsat 5/7/8/9 Collection-2 folder (``*_SR_B4.TIF`` / ``*_B4.TIF``, ``*_QA_PIXEL.TIF``);
- a STAC item (local JSON) whose assets carry ``eo:bands`` common names or band-token keys;
- any of the products above as downloaded, in a ``.zip`` (Sentinel-2 ``….SAFE.zip``, a zip of band files or
  of one image) or an uncompressed ``.tar`` (Landsat), read in place through GDAL's ``/vsizip/`` and
  ``/vsitar/``: nothing is extracted; zip bombs, members outside the archive's tree and archives of more
  than 20 000 members are refused.

The reflectance scale (DN × scale = reflectance 0–1, which the spectral cloud and shadow tests need) comes
from the sensor profile (Sentinel-2, Landsat), or a STAC item's ``raster:bands``; else from the files' own
band metadata (GDAL's scale/offset, e.g. a GF-2 product delivered as reflectance × 10000 that says so);
the caller's (``--reflectance-scale``) overrides them; without any, only QA bands can mask clouds. The DN
offset (Sentinel-2 from processing baseline 04.00: +1000; Landsat Collection 2 Level-2: 0.2 ÷ 0.0000275)
comes from the profile, the SAFE's MTD XML, a Landsat MTL file, ``raster:bands`` or the files' GDAL offsets,
and ``--dn-offset`` overrides it. A Landsat Level-1 folder's MTL gives its top-of-atmosphere calibration.
"""

from __future__ import annotations

import json
import math
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from tuban.errors import BandError, InputError, InputNotFoundError, UnsafeInputError, UsageError
from tuban.raster.profiles import (
    CLASSI_ROLES,
    FLAG_ROLES,
    ROLES,
    SensorProfile,
    get_profile,
    role_from_wavelength,
)

__all__ = ["BandRef", "Scene", "declared_calibration", "embed", "open_scene", "with_dn_offset", "with_reflectance_scale"]

_RASTER_EXT = (".tif", ".tiff", ".jp2", ".img", ".dat", ".bsq", ".bil", ".bip", ".envi")
_ALLOWED_DRIVERS = {"GTiff", "COG", "JP2OpenJPEG", "ENVI", "HFA", "PNG", "JPEG", "netCDF", "PCIDSK", "VRT"}
_TOKEN = re.compile(r"_(B\d{1,2}A?|QA_PIXEL|SCL)(?:_\d+m)?\.(?:tif|tiff|jp2|img)$", re.IGNORECASE)
#: a band image inside a Sentinel-2 product: GRANULE/<granule>/IMG_DATA/[R10m/…]<name>.jp2
_SAFE_IMAGE = re.compile(r"(^|/)GRANULE/[^/]+/IMG_DATA/(.+/)?[^/]+\.jp2$")
#: STAC common band names that are not tuban roles (Landsat's SWIR bands)
_STAC_NAMES = {"swir16": "swir1", "swir22": "swir2"}
_LANDSAT = re.compile(r"^(L[CTEO]0[4-9])_(?:(L1TP|L1GT|L1GS|L2SP|L2SR)_)?", re.IGNORECASE)


@dataclass(frozen=True)
class BandRef:
    """One band of one file: ``path``, 1-based ``index`` and its ``role``."""

    path: str
    index: int
    role: str


@dataclass(frozen=True)
class Scene:
    """A scene as band references (picklable; opens nothing).

    Attributes
    ----------
    name : str
    bands : dict
        role → :class:`BandRef`.
    sensor : str
        profile name.
    scale : float or None
        DN → reflectance factor, or ``None`` when unknown.
    zero_is_nodata : bool
        DN 0 marks nodata (Sentinel-2, Landsat).
    dn_offset : int
        what the product added to every DN (Sentinel-2 from processing baseline 04.00: 1000): reflectance
        = (DN − dn_offset) × scale. Subtracted where bands are read (``raster.grid.read_block``).
    """

    name: str
    bands: dict[str, BandRef] = field(default_factory=dict)
    sensor: str = "generic"
    scale: float | None = None
    zero_is_nodata: bool = False
    dn_offset: int = 0
    #: small rasters made when the scene was opened, which its bands read: ``(path, GeoTIFF bytes, source)``,
    #: ``path`` a ``/vsimem/`` name (from the content's hash) that exists in every process holding the scene
    #: (:func:`embed` at opening, again when a Dask worker unpickles it), ``source`` the product file it came
    #: from (Sentinel-2's vector cloud mask rasterised: :mod:`tuban.raster.cloudgml`)
    embedded: tuple[tuple[str, bytes, str], ...] = ()

    def __setstate__(self, state: dict[str, Any]) -> None:  # unpickled (a Dask worker): its rasters again
        self.__dict__.update(state)
        for path, data, _ in self.embedded:
            embed(data, path)

    def source(self, path: str) -> str:
        """The product file a band ``path`` reads: itself, or what an embedded raster was made from."""
        return next((src for p, _, src in self.embedded if p == path), path)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r for r in ROLES if r in self.bands)

    def require(self, roles: tuple[str, ...]) -> None:
        """Raise :class:`BandError` naming the missing roles."""
        missing = [r for r in roles if r not in self.bands]
        if missing:
            raise BandError(
                f"scene {self.name!r} lacks band role(s) {missing}; it has {list(self.roles)}",
                hint="name the bands with --bands blue,green,red,nir,swir1,swir2 or pick --sensor / --method rgb",
            )


_EMBEDDED: dict[str, Any] = {}  # /vsimem/ path → the rasterio MemoryFile that holds it, in this process
_EMBEDDED_LOCK = threading.Lock()


def embed(data: bytes, path: str | None = None) -> str:
    """Make the raster file ``data`` readable at a ``/vsimem/`` path named by its content's hash (the same in
    every process; ``path``: that name, as :attr:`Scene.embedded` records it); kept for this process's life."""
    import hashlib

    from rasterio.io import MemoryFile

    path = path or f"/vsimem/tuban-embedded/{hashlib.sha256(data).hexdigest()[:32]}.tif"
    with _EMBEDDED_LOCK:
        if path not in _EMBEDDED:
            mem = MemoryFile(data, dirname="tuban-embedded", filename=PurePosixPath(path).name)
            if mem.name != path:
                raise ValueError(f"embedded raster path {path!r} is not tuban's (/vsimem/tuban-embedded/…)")
            _EMBEDDED[path] = mem
    return path


#: what a VRT may hold: mosaics of local raster files (gdalbuildvrt), nothing that reads raw bytes, runs code,
#: warps, or opens another VRT, a URL or a /vsi path (reliability.md #19)
_VRT_ELEMENTS = {"VRTDataset", "SRS", "GeoTransform", "Metadata", "MDI", "VRTRasterBand", "ColorInterp",
                 "NoDataValue", "HideNoDataValue", "Description", "UnitType", "Offset", "Scale", "SimpleSource",
                 "ComplexSource", "SourceFilename", "SourceBand", "SourceProperties", "SrcRect", "DstRect", "NODATA",
                 "UseMaskBand", "ScaleOffset", "ScaleRatio", "ResampleAlg", "OverviewList", "MaskBand"}
_VRT_MAX_BYTES = 16 << 20
_VRT_SOURCE_EXT = (".tif", ".tiff", ".jp2", ".img")


def _check_vrt(path: Path) -> None:
    """Refuse a VRT unless it only mosaics local raster files (a ``gdalbuildvrt`` of GeoTIFF/JP2 tiles: how a
    province puts the scenes of one date together): elements from :data:`_VRT_ELEMENTS` only, no band
    subclass (raw, derived: code), and every source an existing local .tif/.tiff/.jp2/.img file."""
    import xml.etree.ElementTree as ET

    def refuse(why: str) -> UnsafeInputError:
        return UnsafeInputError(f"{path}: a VRT that {why} is not read",
                                hint="only mosaics of local GeoTIFF/JPEG 2000 files (gdalbuildvrt) are; or pass "
                                     "a GeoTIFF (gdal_translate)")

    if path.stat().st_size > _VRT_MAX_BYTES:
        raise refuse(f"is {path.stat().st_size:,} bytes")
    data = path.read_bytes()
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise refuse("declares entities")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(f"{path}: not readable XML ({exc})") from exc
    for e in root.iter():
        if e.tag not in _VRT_ELEMENTS:
            raise refuse(f"holds <{e.tag}>")
        if e.tag in ("VRTDataset", "VRTRasterBand") and e.get("subClass"):
            raise refuse(f"is a {e.get('subClass')}")
        if e.tag == "SourceFilename":
            name = (e.text or "").strip()
            source = (path.parent / name) if e.get("relativeToVRT") == "1" else Path(name)
            if name.startswith("/vsi") or re.match(r"^[A-Za-z][A-Za-z0-9_]+:", name):  # a URL, a driver prefix
                raise refuse(f"reads {name!r}")
            if source.suffix.lower() not in _VRT_SOURCE_EXT or not source.is_file():
                raise refuse(f"reads {name!r}, not a local .tif/.jp2/.img file")


#: decoded bytes a raster may claim per byte of its file: DEFLATE stays under ~1 000, a mostly empty sparse
#: mosaic under ~10 000; a 182 kB GeoTIFF claiming 10⁶ × 10⁶ pixels claims 11 million (reliability.md #18)
MAX_EXPANSION = 100_000


@contextmanager
def quiet_open(path: str | Path) -> Iterator[Any]:
    """``rasterio.open`` for the metadata of a scene's file: a file GDAL cannot open, or one claiming far more
    pixels than its size can hold, raises tuban's error naming it; no warning for files without a
    georeference (a PNG), which the grid refuses with an error that says what to do (``raster.grid``)."""
    import numpy as np
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            src = rasterio.open(path)
        except RasterioIOError as exc:
            failure = str(exc)
        else:
            failure = ""
    if failure:  # raised outside the except clause: GDAL's exceptions do not pickle (raster.grid.read_block)
        raise InputError(f"{path}: not an image GDAL can read ({failure})",
                         hint="check that the file is complete (download it again) and is a GeoTIFF, JPEG 2000 or "
                              "another raster format")
    with src:
        if src.driver not in _ALLOWED_DRIVERS:
            raise UnsafeInputError(f"{path}: raster driver {src.driver} is not allowed",
                                   hint=f"convert to GeoTIFF; allowed: {sorted(_ALLOWED_DRIVERS - {'VRT'})}")
        if src.driver == "VRT":
            _check_vrt(Path(path))
        size = Path(path).stat().st_size if Path(path).is_file() and src.driver != "VRT" else None
        claimed = src.width * src.height * src.count * max(np.dtype(t).itemsize for t in src.dtypes)
        if size is not None and claimed > MAX_EXPANSION * max(size, 1):
            raise UnsafeInputError(f"{path}: claims {src.width} × {src.height} × {src.count} pixels "
                                   f"({claimed / 1e9:,.0f} GB) in a file of {size:,} bytes",
                                   hint="a damaged or crafted file: tuban does not read it")
        yield src


def _from_tokens(files: dict[str, str], profile: SensorProfile, name: str, *, zero_nodata: bool) -> Scene:
    bands = {}
    for token, path in files.items():
        role = profile.tokens.get(token.upper())
        if role and role not in bands:
            bands[role] = BandRef(path, 1, role)
    if not bands:
        raise BandError(f"no band of {name!r} matches the {profile.name} band names {sorted(files)}",
                        hint="pass --sensor sentinel2|landsat8|… or --bands")
    return _profiled(name, bands, profile, zero_nodata)


def _profiled(name: str, bands: dict[str, BandRef], profile: SensorProfile, zero_nodata: bool) -> Scene:
    """A scene with the profile's reflectance scale and DN offset."""
    return Scene(name, bands, profile.name, profile.scale, zero_nodata, profile.dn_offset)


#: archives read in place (GDAL's /vsizip/, /vsitar/): a Sentinel-2 product as downloaded (``….SAFE.zip``), a
#: Landsat one (``….tar``), a zip of band files; nothing is extracted
_ARCHIVES = {".zip": "/vsizip/", ".tar": "/vsitar/"}
_ARCHIVE_MAX_MEMBERS = 20_000
#: a member may hold at most this many bytes per compressed byte (image files barely compress further)
_ARCHIVE_MAX_RATIO = 1_000


@dataclass(frozen=True)
class _Files:
    """The files of a product: a folder's, or an archive's read in place. ``names``: their paths inside it
    (POSIX), sorted."""

    root: Path
    names: tuple[str, ...]
    vsi: str = ""  # "" for a folder, else the archive's GDAL prefix

    @classmethod
    def folder(cls, root: Path) -> _Files:
        return cls(root, tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())))

    @classmethod
    def archive(cls, path: Path) -> _Files:
        """The members of a .zip or .tar (regular files; none with ``..`` or an absolute path), refusing an
        archive of more than :data:`_ARCHIVE_MAX_MEMBERS` members or with a member that expands more than
        :data:`_ARCHIVE_MAX_RATIO` times (a zip bomb)."""
        import tarfile
        import zipfile

        members: list[str] = []
        try:
            if path.suffix.lower() == ".zip":
                with zipfile.ZipFile(path) as zf:
                    infos = [i for i in zf.infolist() if not i.is_dir()]
                    for i in infos:
                        if i.file_size > _ARCHIVE_MAX_RATIO * max(i.compress_size, 1) and i.file_size > 1 << 20:
                            raise UnsafeInputError(f"{path}: member {i.filename} expands {i.compress_size:,} → "
                                                   f"{i.file_size:,} bytes", hint="a zip bomb is not read")
                    members = [i.filename for i in infos]
            else:
                with tarfile.open(path, "r:") as tf:  # uncompressed tar: GDAL seeks in it
                    members = [m.name for m in tf.getmembers() if m.isfile()]
        except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
            raise InputError(f"{path}: not a readable archive ({exc})", hint="download it again") from exc
        if len(members) > _ARCHIVE_MAX_MEMBERS:
            raise UnsafeInputError(f"{path}: {len(members):,} members, more than a product has",
                                   hint=f"at most {_ARCHIVE_MAX_MEMBERS:,}")
        safe = [m for m in members if not m.startswith("/") and ".." not in m.split("/")]
        # absolute: band paths go to Dask workers, whose working folder may differ
        return cls(path.resolve(), tuple(sorted(safe)), _ARCHIVES[path.suffix.lower()])

    @property
    def name(self) -> str:
        """The product's name: the folder's, or the archive's without ``.zip`` / ``.tar``."""
        return self.root.stem if self.vsi else self.root.name

    def path(self, name: str) -> str:
        """What GDAL opens for member ``name``."""
        return f"{self.vsi}{self.root}/{name}" if self.vsi else str(self.root / name)

    def read(self, name: str, max_bytes: int) -> bytes:
        """Member ``name``'s bytes; :class:`UnsafeInputError` above ``max_bytes``."""
        import tarfile
        import zipfile

        def within(size: int) -> None:
            if size > max_bytes:
                raise UnsafeInputError(f"{self.root}/{name}: {size:,} bytes, more than a metadata file holds")

        if self.vsi == "/vsizip/":
            with zipfile.ZipFile(self.root) as zf:
                within(zf.getinfo(name).file_size)
                return zf.read(name)
        if self.vsi == "/vsitar/":
            with tarfile.open(self.root, "r:") as tf:
                member = tf.getmember(name)
                within(member.size)
                f = tf.extractfile(member)
                return f.read() if f is not None else b""
        within((self.root / name).stat().st_size)
        return (self.root / name).read_bytes()


def _band_folder(src: _Files, sensor: str | None) -> Scene:
    files: dict[str, str] = {}
    landsat = level = None
    for rel in src.names:
        base = rel.rsplit("/", 1)[-1]
        m = _TOKEN.search(base)
        if m:
            token = m.group(1).upper()
            files.setdefault(token, src.path(rel))
            lm = _LANDSAT.match(base)
            if lm:
                landsat, level = lm.group(1).upper(), (lm.group(2) or "").upper() or level
    if not files:
        raise InputError(f"{src.root}: no band files named like *_B02.tif / *_B4.TIF",
                         hint="pass a multi-band file, a band folder, a .SAFE folder or a STAC item JSON")
    if sensor is None:
        if landsat:
            sensor = {"LC08": "landsat8", "LC09": "landsat9", "LE07": "landsat7", "LT05": "landsat5",
                      "LT04": "landsat5", "LO08": "landsat8", "LO09": "landsat9"}.get(landsat, "landsat8")
        elif any(t in files for t in ("B02", "B03", "B04", "B08", "B8A", "B11")):
            sensor = "sentinel2"
        else:
            sensor = "gf"
    profile = get_profile(sensor)
    scene = _from_tokens(files, profile, src.name, zero_nodata=profile.scale is not None)
    if landsat and profile.name.startswith("landsat"):
        return _landsat_calibration(src, scene, level)
    return _with_declared(scene)


def _landsat_calibration(src: _Files, scene: Scene, level: str | None) -> Scene:
    """A Landsat Collection 2 folder's reflectance scale and DN offset, from its MTL file (``*_MTL.txt`` or
    ``.xml``) when there is one, else from the processing level in the file names.

    Level-2 surface reflectance (``L2SP``/``L2SR``): DN × 0.0000275 − 0.2 (the profile's). Level-1 (``L1TP``
    …): top-of-atmosphere reflectance (DN × M + A) ÷ sin(sun elevation), so the scale is M ÷ sin(elevation)
    and the offset −A ÷ M DN (5000 for OLI); without the MTL, or where the bands have different coefficients
    (TM/ETM+ Level-1), the DN stay DN: no scale, no offset, clouds from ``QA_PIXEL``."""
    l2 = level is None or level.startswith("L2")
    mtl = _landsat_mtl(src)
    if mtl is None:
        return scene if l2 else replace(scene, scale=None, dn_offset=0)
    path, groups = mtl
    group = groups.get("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" if l2 else "LEVEL1_RADIOMETRIC_RESCALING", {})
    pairs: set[tuple[str, str] | None] = set()
    for role, ref in scene.bands.items():
        m = _TOKEN.search(Path(ref.path).name)
        if role in FLAG_ROLES or m is None:
            continue
        n = m.group(1).upper().lstrip("B")
        m_text, a_text = group.get(f"REFLECTANCE_MULT_BAND_{n}"), group.get(f"REFLECTANCE_ADD_BAND_{n}")
        pairs.add(None if m_text is None or a_text is None else (m_text, a_text))
    try:
        values = {(float(p[0]), float(p[1])) for p in pairs if p is not None}
        sun = float(groups.get("IMAGE_ATTRIBUTES", {}).get("SUN_ELEVATION", "nan"))
    except ValueError as exc:
        raise InputError(f"{path}: not a readable Landsat MTL file ({exc})",
                         hint="remove it to use the product's standard coefficients, or pass --reflectance-scale "
                              "and --dn-offset") from exc
    if None in pairs or len(values) != 1:  # per-band coefficients: tuban takes one scale for all bands
        return replace(scene, scale=None, dn_offset=0)
    mult, add = values.pop()
    dn = _as_dn(-add / mult) if mult > 0 else None
    scale: float | None = mult if l2 else (mult / math.sin(math.radians(sun)) if 0 < sun <= 90 else None)
    if dn is None or scale is None or not 0 < scale <= 1:
        return replace(scene, scale=None, dn_offset=0)
    return replace(scene, scale=scale, dn_offset=dn)


_MTL_MAX_BYTES = 1 << 20  # Landsat MTL files are ~10–20 kB


def _landsat_mtl(src: _Files) -> tuple[str, dict[str, dict[str, str]]] | None:
    """The groups of the product's Landsat MTL file (``GROUP = X`` … ``KEY = VALUE`` text, or its XML form) as
    group → key → value, with where it is, or None without one."""
    import xml.etree.ElementTree as ET

    found = [n for n in src.names if re.search(r"_MTL\.(txt|xml)$", n, re.IGNORECASE)]
    if not found:
        return None
    name = min(found, key=lambda n: not n.lower().endswith(".txt"))  # the text form when both are there
    where = f"{src.root}/{name}"
    data = src.read(name, _MTL_MAX_BYTES)
    groups: dict[str, dict[str, str]] = {}
    if name.lower().endswith(".xml"):
        try:
            root = ET.fromstring(data)  # no external entities; expat refuses entity expansion bombs
        except ET.ParseError as exc:
            raise InputError(f"{where}: not readable XML ({exc})",
                             hint="remove it to use the product's standard coefficients") from exc
        for group in root:
            groups[str(group.tag)] = {str(e.tag): (e.text or "").strip() for e in group}
        return where, groups
    stack: list[str] = []
    for line in data.decode("ascii", errors="replace").splitlines():
        key, sep, value = (t.strip() for t in line.partition("="))
        if not sep:
            continue
        if key == "GROUP":
            stack.append(value)
        elif key == "END_GROUP":
            stack = stack[:-1]
        elif stack:
            groups.setdefault(stack[-1], {})[key] = value.strip('"')
    return where, groups


def _safe(src: _Files, sensor: str | None) -> Scene:
    granules = sorted({m.group(1) for n in src.names if (m := re.search(r"(?:^|/)GRANULE/([^/]+)/IMG_DATA/", n))})
    if len(granules) > 1:  # products before December 2016 held every tile of a strip; one grid per scene here
        raise InputError(f"{src.root}: a .SAFE product of {len(granules)} granules ({', '.join(granules[:3])}"
                         f"{', …' if len(granules) > 3 else ''}), as products before December 2016 were",
                         hint="pass one granule's folder (….SAFE/GRANULE/<granule>) as the scene, or a VRT mosaic "
                              "of the granules' band files (gdalbuildvrt)")
    files: dict[str, tuple[int, str]] = {}
    for rel in src.names:
        if not _SAFE_IMAGE.search(rel):
            continue
        m = re.search(r"_(B\d{2}|B8A|SCL)(?:_(\d+)m)?\.jp2$", rel)
        if not m:
            continue
        res = int(m.group(2) or 0)
        token = m.group(1).upper()
        if token not in files or res < files[token][0]:  # finest resolution of each band
            files[token] = (res, src.path(rel))
    if not files:
        raise InputError(f"{src.root}: a .SAFE product without GRANULE/*/IMG_DATA/*_Bxx.jp2 files")
    scene = _from_tokens({k: v[1] for k, v in files.items()}, get_profile(sensor or "sentinel2"), src.name,
                         zero_nodata=True)
    scene = replace(scene, bands={**scene.bands, **_safe_classi(src, scene)}, dn_offset=_safe_dn_offset(src))
    return _safe_clouds_gml(src, scene)


#: Sentinel-2's cloud and snow classification raster (processing baseline 04.00 on, L1C and L2A)
_SAFE_CLASSI = re.compile(r"(^|/)GRANULE/[^/]+/QI_DATA/MSK_CLASSI_B00\.jp2$")


def _safe_classi(src: _Files, scene: Scene) -> dict[str, BandRef]:
    """The ``MSK_CLASSI_B00.jp2`` layers of a product without a scene classification (L1C), as the flag roles
    :data:`CLASSI_ROLES` (band 1 opaque clouds, 2 cirrus, 3 snow and ice): the sensor's own cloud flags, which
    then take the place of the spectral test. None where the product has an SCL (L2A: it flags shadows too)
    or no such file (L1C before processing baseline 04.00: its clouds are vector GML, :func:`_safe_clouds_gml`)."""
    found = [n for n in src.names if _SAFE_CLASSI.search(n)]
    if "scl" in scene.bands or len(found) != 1:  # one granule per product since 2016
        return {}
    path = src.path(found[0])
    with quiet_open(path) as ds:
        count = ds.count
    return {role: BandRef(path, i + 1, role) for i, role in enumerate(CLASSI_ROLES[:count])}


#: Sentinel-2's vector cloud mask: L1C before processing baseline 04.00 (and L2A beside its SCL); named
#: ``MSK_CLOUDS_B00.gml`` from 2016 on, ``S2A_OPER_MSK_CLOUDS_…_B00_MSIL1C.gml`` before
_SAFE_CLOUDS_GML = re.compile(r"(^|/)GRANULE/[^/]+/QI_DATA/(?:MSK_CLOUDS_B00|S2[A-D]_OPER_MSK_CLOUDS_\w*_B00_MSIL1C)"
                              r"\.gml$")
#: the largest cloud mask read (a cloudy granule's is a few MB)
_GML_MAX_BYTES = 64 << 20


def _safe_clouds_gml(src: _Files, scene: Scene) -> Scene:
    """``scene`` with the flag roles ``msk_opaque`` and ``msk_cirrus`` from its vector cloud mask
    (:mod:`tuban.raster.cloudgml`), rasterised over the granule at 60 m and embedded in the scene
    (:attr:`Scene.embedded`), when it has no other cloud flags (no SCL, no ``MSK_CLASSI``) and one such
    file (one granule); else ``scene`` unchanged."""
    from tuban.raster import cloudgml

    found = [n for n in src.names if _SAFE_CLOUDS_GML.search(n)]
    if "scl" in scene.bands or CLASSI_ROLES[0] in scene.bands or len(found) != 1:
        return scene
    where = f"{src.root}/{found[0]}"
    shapes, epsg = cloudgml.parse_msk_clouds(src.read(found[0], _GML_MAX_BYTES), where)
    role = next((r for r in ("blue", "green", "red", "nir") if r in scene.bands), None)
    if role is None:
        return scene  # no 10 m band gives the granule's extent (a profile that names none)
    with quiet_open(scene.bands[role].path) as ds:
        if ds.crs is None:
            return scene  # the grid refuses such a scene with its own error
        crs, bounds = ds.crs.to_wkt(), tuple(ds.bounds)
    data = cloudgml.rasterize(shapes, f"EPSG:{epsg}" if epsg else None, crs, bounds)
    path = embed(data)
    roles = CLASSI_ROLES[: len(cloudgml.MASK_TYPES)]
    return replace(scene, bands={**scene.bands, **{r: BandRef(path, i + 1, r) for i, r in enumerate(roles)}},
                   embedded=(*scene.embedded, (path, data, where)))


def _as_dn(v: float) -> int | None:
    """An offset of ``v`` DN (a reflectance offset divided by the scale) as the nearest whole DN in 0…65534, or
    None outside. Rounding moves reflectance by at most half the data's own step (half a DN × scale); Landsat
    Collection 2's −0.2 at 0.0000275 is 7272.7 DN."""
    return round(v) if math.isfinite(v) and -0.5 < v < 65534.5 else None


#: the product metadata files of a .SAFE folder, and the largest one read (they are ~50–100 kB)
_SAFE_MTD = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")
_MTD_MAX_BYTES = 8 << 20


def _safe_dn_offset(src: _Files) -> int:
    """What a Sentinel-2 product added to its DN: the negated ``BOA_ADD_OFFSET`` (L2A) or
    ``RADIO_ADD_OFFSET`` (L1C) of its MTD XML, one value for every band (−1000 from processing baseline
    04.00, none before); without an MTD file, 1000 when the product's name gives a baseline ≥ 04.00
    (``_N0400_`` …), else 0."""
    import xml.etree.ElementTree as ET

    for mtd_name in _SAFE_MTD:
        found = [n for n in src.names if n == mtd_name or re.fullmatch(rf"[^/]+\.SAFE/{mtd_name}", n)]
        if not found:
            continue
        mtd = f"{src.root}/{found[0]}"
        try:
            root = ET.fromstring(src.read(found[0], _MTD_MAX_BYTES))  # expat refuses entity expansion bombs
        except ET.ParseError as exc:
            raise InputError(f"{mtd}: not readable XML ({exc})",
                             hint="pass --dn-offset (1000 for processing baseline 04.00 and later)") from exc
        texts = {(e.text or "").strip() for e in root.iter()
                 if str(e.tag).rsplit("}", 1)[-1] in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")}
        try:
            values = {_as_dn(-float(t)) for t in texts}
        except ValueError:
            values = {None}
        if None in values or len(values) > 1:
            raise InputError(f"{mtd}: DN offsets {sorted(texts)} are not one number of DN for every band",
                             hint="tuban takes one offset for all bands: pass --dn-offset")
        return (values.pop() or 0) if values else 0
    m = re.search(r"_N(\d{2})(\d{2})_", src.name)
    return 1000 if m and (int(m.group(1)), int(m.group(2))) >= (4, 0) else 0


def _stac(path: Path, sensor: str | None) -> Scene:
    try:
        item = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable STAC item JSON ({exc})") from exc
    if item.get("type") != "Feature" or not isinstance(item.get("assets"), dict):
        raise InputError(f"{path}: not a STAC item (needs type=Feature and assets)")
    plat = str(item.get("properties", {}).get("platform", "")).lower()
    landsat = re.match(r"landsat[-_ ]?0?([45789])", plat)  # Landsat 4 carried the TM of Landsat 5
    name = "sentinel2" if "sentinel-2" in plat else (
        f"landsat{landsat.group(1).replace('4', '5')}" if landsat else None)
    profile = get_profile(sensor or name) if sensor or name else None
    bands: dict[str, BandRef] = {}
    for key, asset in item["assets"].items():
        href = str(asset.get("href", ""))
        if re.match(r"^[a-z][a-z0-9+.-]*://", href, re.IGNORECASE):
            raise UnsafeInputError(f"{path}: asset {key!r} is remote ({href}); only local files are read",
                                   hint="download the assets and point href at the local files")
        local = (path.parent / href).resolve()
        role = None
        for eb in asset.get("eo:bands") or asset.get("bands") or []:  # STAC 1.0 eo:bands, 1.1 bands
            cn = str(eb.get("common_name") or eb.get("eo:common_name") or "").lower()
            role = _STAC_NAMES.get(cn, cn)
            wavelength = eb.get("center_wavelength") or eb.get("eo:center_wavelength")
            if role not in ROLES and wavelength:
                role = role_from_wavelength(float(wavelength))
        if role not in ROLES:
            k = key.lower()
            role = k if k in ROLES else (profile.tokens.get(key.upper()) if profile else None)
            if role is None:
                role = get_profile("sentinel2").tokens.get(key.upper())
        if role in ROLES and role not in bands:
            bands[role] = BandRef(str(local), 1, role)
    if not bands:
        raise BandError(f"{path}: no asset with a recognised band (eo:bands common_name or B02-style key)")
    for ref in bands.values():
        if not Path(ref.path).exists():
            raise InputNotFoundError(f"{path}: asset file {ref.path} does not exist")
    if "nir" not in bands and "nir08" in bands:  # Landsat's one NIR band is STAC's nir08 (0.85–0.88 µm)
        bands["nir"] = replace(bands.pop("nir08"), role="nir")
    prof = profile or get_profile("generic")
    scene = _profiled(str(item.get("id", path.stem)), bands, prof, prof.scale is not None)
    return _stac_calibration(path, item, scene, {ref.path for ref in bands.values()})


def _stac_calibration(path: Path, item: dict, scene: Scene, used: set[str]) -> Scene:
    """The scale and DN offset the item's ``raster:bands`` (STAC 1.1: ``bands`` or the asset's ``raster:scale``
    / ``raster:offset``) give its band assets (reflectance = DN × scale + offset: Sentinel-2 L2A from
    processing baseline 04.00 has 0.0001 and −0.1, Landsat Collection 2 Level-2 0.0000275 and −0.2), when
    they are one pair for every band used; the scene as it is when they say nothing."""
    pairs: set[tuple[float, float]] = set()
    for asset in item["assets"].values():
        if str((path.parent / str(asset.get("href", ""))).resolve()) not in used:
            continue
        for rb in (asset.get("raster:bands") or asset.get("bands") or [asset])[:1]:  # STAC 1.0 / 1.1
            scale, offset = (rb.get(k, rb.get(f"raster:{k}")) if isinstance(rb, dict) else None
                             for k in ("scale", "offset"))
            if scale is not None or offset is not None:
                pairs.add((float(1.0 if scale is None else scale), float(offset or 0.0)))
    if not pairs:
        return _with_declared(scene)
    if len(pairs) > 1:
        raise InputError(f"{path}: the band assets have different raster:bands scales/offsets {sorted(pairs)}",
                         hint="tuban takes one scale and offset for all bands")
    scale, offset = pairs.pop()
    if not 0 < scale <= 1:
        return scene  # not a reflectance scale (radiance, or none): the profile's stands
    dn = _as_dn(-offset / scale)
    if dn is None:
        raise InputError(f"{path}: raster:bands offset {offset} at scale {scale} is not an offset of 0…65534 DN",
                         hint="pass --reflectance-scale and --dn-offset")
    return replace(scene, scale=scale, dn_offset=dn)


def _multiband(path: str | Path, sensor: str | None, roles: tuple[str, ...] | None) -> Scene:
    path = str(path)  # as GDAL opens it: a /vsizip/… path keeps its double slash
    label = PurePosixPath(path)
    with quiet_open(path) as src:  # the driver allowlist, and a VRT's sources
        count = src.count
        descs = [str(d or "").strip().lower() for d in src.descriptions]
        tags = [src.tags(i + 1) for i in range(count)]
    profile = get_profile(sensor) if sensor else None
    found: list[str | None] = [None] * count
    if roles:
        if len(roles) > count:
            raise BandError(f"--bands names {len(roles)} bands but {label.name} has {count}")
        found = [r if r in ROLES else None for r in roles] + [None] * (count - len(roles))
    else:
        for i in range(count):
            d = descs[i]
            if d in ROLES:
                found[i] = d
            elif d.upper() in get_profile("sentinel2").tokens and (profile is None or profile.name == "sentinel2"):
                found[i] = get_profile("sentinel2").tokens[d.upper()]
            else:
                wl = tags[i].get("wavelength") or tags[i].get("WAVELENGTH") or tags[i].get("CENTRAL_WAVELENGTH")
                if wl:
                    try:
                        found[i] = role_from_wavelength(float(str(wl).split()[0]))
                    except ValueError:
                        found[i] = None
        if not any(found):
            order = profile.order if profile else (
                ("red", "green", "blue") if count == 3 else get_profile("generic").order[:count]
                if count in (4, 6) else ())
            if count == 4 and profile is None:
                order = ("blue", "green", "red", "nir")
            if not order:
                raise BandError(f"{label.name}: cannot tell the roles of its {count} bands",
                                hint="pass --bands blue,green,red,nir,… in file order")
            found = list(order[:count]) + [None] * max(0, count - len(order))
    bands = {}
    for i, role in enumerate(found):
        if role and role not in bands:
            bands[role] = BandRef(path, i + 1, role)
    prof = profile or get_profile("rgb" if count == 3 else "generic")
    return _with_declared(_profiled(label.stem, bands, prof, prof.scale is not None))


def open_scene(path: str | Path, *, sensor: str | None = None, bands: tuple[str, ...] | None = None,
               reflectance_scale: float | None = None, dn_offset: float | None = None) -> Scene:
    """Find the bands of the scene at ``path`` (file, band folder, ``.SAFE``, Landsat folder, STAC JSON, or
    one of those in a ``.zip`` / ``.tar``).

    Parameters
    ----------
    path
        the scene.
    sensor
        a profile name from :data:`tuban.raster.profiles.PROFILES`; guessed when ``None``.
    bands
        roles of the bands of a multi-band file, in order (``--bands``).
    reflectance_scale
        DN × this = reflectance 0–1 (1 for float reflectance), overriding the profile's and the files'
        (:func:`with_reflectance_scale`).
    dn_offset
        what the product added to every DN (1000 for Sentinel-2 from processing baseline 04.00), overriding
        what the product says (:func:`with_dn_offset`).

    Returns
    -------
    Scene
    """
    scene = _open(path, sensor, bands)
    if dn_offset is not None:  # the caller's word is last
        scene = with_dn_offset(scene, dn_offset)
    if reflectance_scale is not None:
        scene = with_reflectance_scale(scene, reflectance_scale)
    return scene


def with_dn_offset(scene: Scene, offset: float) -> Scene:
    """``scene`` with the DN its product added (``offset`` ≥ 0, subtracted where its bands are read; kept to the
    nearest whole DN)."""
    dn = _as_dn(float(offset))
    if dn is None:
        raise UsageError(f"DN offset {offset} is outside 0…65534",
                         hint="1000 for Sentinel-2 products of processing baseline 04.00 and later, 7272.7 for "
                              "Landsat Collection 2 Level-2")
    return replace(scene, dn_offset=dn)


def with_reflectance_scale(scene: Scene, scale: float) -> Scene:
    """``scene`` with its DN → reflectance factor set to ``scale`` (0 < scale ≤ 1)."""
    if not 0 < scale <= 1:
        raise UsageError(f"reflectance scale {scale} is outside (0, 1]",
                         hint="DN × scale must give reflectance 0–1: 0.0001 for reflectance × 10000, 1 for float "
                              "reflectance")
    return replace(scene, scale=float(scale))


def _with_declared(scene: Scene) -> Scene:
    """``scene`` with the scale and DN offset its files declare (:func:`declared_calibration`), for scenes
    whose product metadata said nothing of them (plain files and band folders; a STAC item without
    ``raster:bands``): the declared scale where the profile has none or the same one."""
    declared = declared_calibration(scene)
    if declared is None or (scene.scale is not None and not math.isclose(declared[0], scene.scale)):
        return scene
    return replace(scene, scale=declared[0], dn_offset=declared[1])


def declared_calibration(scene: Scene) -> tuple[float, int] | None:
    """``(scale, dn_offset)`` the scene's files declare with GDAL's band scale and offset (reflectance = DN ×
    scale + offset, unit empty or reflectance), when every band but QA declares the same pair, the scale is a
    reflectance one (0 < scale < 1) and the offset at most 0 (Sentinel-2 from processing baseline 04.00,
    exported with its metadata: 0.0001, −0.1; the offset kept to the nearest DN); None otherwise (no metadata,
    radiance, mixed)."""
    found: set[tuple[float, float]] = set()
    meta: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[str | None, ...]]] = {}
    for ref in scene.bands.values():
        if ref.role in FLAG_ROLES:
            continue
        if ref.path not in meta:
            with quiet_open(ref.path) as src:
                meta[ref.path] = (tuple(src.scales), tuple(src.offsets), tuple(src.units))
        scales, offsets, units = meta[ref.path]
        i = ref.index - 1
        unit = (units[i] or "").strip().lower()
        if (unit and "reflect" not in unit) or not (math.isfinite(scales[i]) and math.isfinite(offsets[i])):
            return None
        found.add((float(scales[i]), float(offsets[i])))
    if len(found) != 1:
        return None
    scale, offset = found.pop()
    dn = _as_dn(-offset / scale) if 0 < scale < 1 else None
    return None if dn is None else (scale, dn)


def _open(path: str | Path, sensor: str | None, bands: tuple[str, ...] | None) -> Scene:
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"scene {str(p)!r} does not exist")
    if p.is_dir():
        if p.suffix.upper() == ".SAFE" or (p / "GRANULE").is_dir():
            return _safe(_Files.folder(p), sensor)
        return _band_folder(_Files.folder(p), sensor)
    if p.suffix.lower() in _ARCHIVES:
        src = _Files.archive(p)
        if any(_SAFE_IMAGE.search(n) for n in src.names):
            return _safe(src, sensor)
        if any(_TOKEN.search(n) for n in src.names):
            return _band_folder(src, sensor)
        rasters = [n for n in src.names if n.lower().endswith(_RASTER_EXT)]
        if len(rasters) != 1:
            raise InputError(f"{p}: an archive of {len(rasters)} raster files, none named by band",
                             hint="a Sentinel-2 .SAFE.zip, a Landsat .tar, a zip of *_B02.tif files, or one image")
        return _multiband(src.path(rasters[0]), sensor, bands)
    if p.suffix.lower() == ".json":
        return _stac(p, sensor)
    return _multiband(p, sensor, bands)
