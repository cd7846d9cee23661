"""Text encoding of shapefile attributes (.dbf): ``.cpg`` if present, else UTF-8, else GBK.

Shapefiles in this domain usually have no ``.cpg`` and Chinese text in GBK or UTF-8
(domain.md §3). The rule, never a silent guess:

1. a ``.cpg`` file names the encoding (``UTF-8``, ``GBK``, ``936``, ``ANSI 936`` …);
2. else every text value of the ``.dbf`` is decoded strictly as UTF-8; if all decode,
   the encoding is UTF-8;
3. else they are decoded strictly as GB18030 (a superset of GBK/GB2312); if all
   decode, the encoding is GB18030;
4. else :class:`~tuban.errors.EncodingError`, naming ``--encoding``.
"""

from __future__ import annotations

import codecs
import struct
from pathlib import Path

from tuban.errors import EncodingError

__all__ = ["cpg_encoding", "detect_dbf_encoding", "normalize_encoding"]

#: bytes of record data sampled for detection (the whole .dbf when smaller)
SAMPLE_BYTES = 16 * 1024 * 1024

_ALIASES = {
    "UTF8": "UTF-8",
    "UTF-8": "UTF-8",
    "65001": "UTF-8",
    "GBK": "GB18030",
    "GB2312": "GB18030",
    "GB18030": "GB18030",
    "CP936": "GB18030",
    "936": "GB18030",
    "ANSI936": "GB18030",
    "CP54936": "GB18030",
    "54936": "GB18030",
}


def normalize_encoding(name: str) -> str:
    """Map a ``.cpg`` / user encoding name to one GDAL and Python both know.

    >>> normalize_encoding("ANSI 936"), normalize_encoding("utf8"), normalize_encoding("1252")
    ('GB18030', 'UTF-8', 'CP1252')
    """
    key = name.strip().upper().replace(" ", "").replace("_", "-")
    if key in _ALIASES:
        return _ALIASES[key]
    if key.startswith("ANSI"):
        key = key[4:]
    if key.isdigit():
        key = _ALIASES.get(key, f"CP{key}")
    try:
        codecs.lookup(key)
    except LookupError:
        raise EncodingError(
            f"unknown text encoding {name.strip()[:40]!r}",
            hint="use --encoding UTF-8, GBK or another codec name",
        ) from None
    return key


def cpg_encoding(shp: Path) -> str | None:
    """The encoding named by the ``.cpg`` beside *shp* (any case of the suffix), else ``None``."""
    for candidate in shp.parent.glob("*"):
        if candidate.stem == shp.stem and candidate.suffix.lower() == ".cpg" and candidate.is_file():
            text = candidate.read_bytes()[:64].decode("ascii", errors="replace").strip()
            return normalize_encoding(text) if text else None
    return None


def _dbf_text_values(dbf: Path, *, sample_bytes: int = SAMPLE_BYTES) -> list[bytes]:
    """The raw bytes of every character (``C``) field value in the sampled records."""
    with open(dbf, "rb") as fh:
        head = fh.read(32)
        if len(head) < 32:
            raise EncodingError(f"{dbf.name} is not a dBASE file (too short)")
        n_records, header_len, record_len = struct.unpack("<IHH", head[4:12])
        if header_len < 33 or record_len < 1:
            raise EncodingError(f"{dbf.name} has a corrupt dBASE header")
        descriptors = fh.read(header_len - 32)
        fields: list[tuple[int, int]] = []  # (offset in record, length) of C fields
        offset = 1  # byte 0 of a record is the deletion flag
        for i in range(0, len(descriptors) - 31, 32):
            desc = descriptors[i : i + 32]
            if desc[0] == 0x0D:
                break
            ftype = chr(desc[11])
            flen = desc[16]
            if ftype == "C":
                flen += desc[17] << 8  # some writers use the decimal byte for long text fields
                fields.append((offset, flen))
            offset += flen
        if not fields:
            return []
        fh.seek(header_len)
        n = min(n_records, max(1, sample_bytes // record_len))
        data = fh.read(n * record_len)
    values = []
    for r in range(len(data) // record_len):
        rec = data[r * record_len : (r + 1) * record_len]
        for off, length in fields:
            raw = rec[off : off + length].rstrip(b" \x00")
            if raw and any(b >= 0x80 for b in raw):
                values.append(raw)
    return values


def _decodes(values: list[bytes], encoding: str) -> bool:
    for raw in values:
        try:
            raw.decode(encoding)
        except UnicodeDecodeError as exc:
            # a UTF-8 value cut inside its last character by the field width is still UTF-8
            if encoding == "utf-8" and exc.reason == "unexpected end of data" and exc.start >= len(raw) - 3:
                continue
            return False
    return True


def detect_dbf_encoding(shp: Path) -> str:
    """Encoding of a shapefile's attributes: ``.cpg``, else UTF-8, else GB18030 (see module doc)."""
    named = cpg_encoding(shp)
    if named:
        return named
    dbf = next(
        (
            c
            for c in shp.parent.glob("*")
            if c.stem == shp.stem and c.suffix.lower() == ".dbf" and c.is_file()
        ),
        None,
    )
    if dbf is None:
        return "UTF-8"
    values = _dbf_text_values(dbf)
    if _decodes(values, "utf-8"):
        return "UTF-8"
    if _decodes(values, "gb18030"):
        return "GB18030"
    raise EncodingError(
        f"the text in {dbf.name} is neither UTF-8 nor GBK and there is no .cpg file",
        hint="give the encoding with --encoding NAME (e.g. --encoding CP1252)",
    )
