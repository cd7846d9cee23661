"""Safe extraction of uploaded zip archives (reliability.md #14–17).

Everything is decided from the central directory (``ZipInfo``) *before* a byte is
extracted: entry count, total and per-entry uncompressed size, compression ratio, names
(no ``..``, absolute or drive paths, backslashes, NUL), no symlinks, no nested archives.
Extraction then streams each entry with a hard byte cap as a backstop (the declared
sizes can lie), into a private temporary folder that the caller's context removes.
"""

from __future__ import annotations

import contextlib
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tuban.errors import LimitExceededError, UnsafeInputError

__all__ = ["ZipLimits", "extract_zip"]

_NESTED_ARCHIVE_SUFFIXES = (".zip", ".kmz", ".7z", ".rar", ".tar", ".gz", ".tgz", ".bz2", ".xz")
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """Limits checked before extraction (defaults match the workspace ``[limits]``)."""

    max_total_bytes: int = 1024 * 1024 * 1024
    max_ratio: float = 100.0
    max_entries: int = 1000
    #: entries smaller than this are not ratio-checked (tiny files compress well and are harmless)
    ratio_min_bytes: int = 64 * 1024


def _check_name(name: str) -> PurePosixPath:
    shown = name.replace("\x00", "\\x00")[:200]
    if "\x00" in name:
        raise UnsafeInputError(f"zip entry name {shown!r} contains a NUL byte", hint="re-create the archive")
    if "\\" in name or ":" in name:
        raise UnsafeInputError(
            f"zip entry name {shown!r} contains a backslash or drive colon (a Windows path)",
            hint="re-create the archive with plain relative names",
        )
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute():
        raise UnsafeInputError(f"zip entry {shown!r} has an absolute path", hint="use relative names")
    if any(part == ".." for part in path.parts):
        raise UnsafeInputError(
            f"zip entry {shown!r} points outside the archive ('..')", hint="use relative names"
        )
    return path


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = (info.external_attr >> 16) & 0xFFFF
    return info.create_system == 3 and stat.S_ISLNK(mode)


def check_zip(zf: zipfile.ZipFile, *, limits: ZipLimits, label: str) -> list[zipfile.ZipInfo]:
    """Validate every entry of *zf* from its central directory; return the file entries."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise LimitExceededError(
            f"{label} has {len(infos)} entries, above the limit of {limits.max_entries}",
            hint="zip only the files of one layer",
        )
    total = 0
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        _check_name(info.orig_filename)  # before zipfile cut it at a NUL byte
        path = _check_name(info.filename)
        if _is_symlink(info):
            raise UnsafeInputError(
                f"zip entry {info.filename!r} is a symbolic link", hint="zip the files themselves"
            )
        if info.is_dir():
            continue
        if path.name.lower().endswith(_NESTED_ARCHIVE_SUFFIXES):
            raise UnsafeInputError(
                f"zip entry {info.filename!r} is itself an archive; nested archives are refused",
                hint="unpack it and zip the layer's files directly",
            )
        if info.flag_bits & 0x1:
            raise UnsafeInputError(f"zip entry {info.filename!r} is encrypted", hint="zip without a password")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise LimitExceededError(
                f"{label} would unpack to more than {limits.max_total_bytes} bytes",
                hint="the limit is limits.zip_uncompressed_bytes in tuban.toml",
            )
        if info.file_size >= limits.ratio_min_bytes:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise LimitExceededError(
                    f"zip entry {info.filename!r} has a compression ratio of {ratio:.0f}, "
                    f"above the limit of {limits.max_ratio:.0f} (a zip bomb?)",
                    hint="the limit is limits.zip_ratio in tuban.toml",
                )
        files.append(info)
    return files


def _copy_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Stream one entry to *target*, never writing more than its declared size."""
    written = 0
    cap = min(info.file_size, budget)
    with zf.open(info) as src, open(target, "xb") as dst:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > cap:
                raise LimitExceededError(
                    f"zip entry {info.filename!r} unpacks to more than its declared {info.file_size} bytes",
                    hint="the archive is corrupt or hostile; re-create it",
                )
            dst.write(chunk)
    return written


@contextlib.contextmanager
def extract_zip(path: str | Path, *, limits: ZipLimits | None = None) -> Iterator[Path]:
    """Extract *path* safely into a temporary folder, yielded; the folder is always removed.

    Raises
    ------
    UnsafeInputError
        traversal names, absolute paths, NUL bytes, symlinks, nested archives, encryption.
    LimitExceededError
        too many entries, too many bytes, a compression ratio above the limit.
    """
    limits = limits or ZipLimits()
    label = Path(path).name
    tmp = Path(tempfile.mkdtemp(prefix="tuban-zip-"))
    try:
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise UnsafeInputError(f"{label} is not a readable zip archive: {exc}") from None
        with zf:
            files = check_zip(zf, limits=limits, label=label)
            budget = limits.max_total_bytes
            root = tmp.resolve()
            for info in files:
                target = (tmp / info.filename).resolve()
                if root not in target.parents:
                    raise UnsafeInputError(
                        f"zip entry {info.filename!r} resolves outside the extraction folder"
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    budget -= _copy_capped(zf, info, target, budget)
                except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                    raise UnsafeInputError(
                        f"zip entry {info.filename!r} is corrupt or lies about its size: {exc}",
                        hint="re-create the archive",
                    ) from None
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
