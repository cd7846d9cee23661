"""Refuse an SQLite store on a network filesystem (reliability #48).

SQLite's locking and WAL shared memory rely on POSIX locks and ``mmap`` behaving as on a
local disk; NFS, SMB/CIFS and FUSE network mounts break them, and the symptom is a corrupt
database weeks later. The filesystem type comes from ``/proc/self/mountinfo`` (Linux): the
mount with the longest mount point that contains the file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from tuban.errors import ConfigError

__all__ = ["NETWORK_FILESYSTEMS", "check_local_filesystem", "filesystem_type"]

NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "ceph", "glusterfs", "lustre", "gpfs",
    "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone", "fuse.glusterfs", "fuse.cephfs", "davfs",
    "fuse.davfs2",
})

_MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \\ooo octal
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(path: str | os.PathLike[str], *, mountinfo: str | None = None) -> str | None:
    """The filesystem type holding *path* (or its nearest existing folder); None if unknown."""
    if mountinfo is None:
        try:
            mountinfo = _MOUNTINFO.read_text()
        except OSError:
            return None  # not Linux: nothing to check against
    target, missing = Path(path).absolute(), []
    while not target.exists() and target != target.parent:  # the file may not exist yet
        missing.append(target.name)
        target = target.parent
    resolved = str(target.resolve().joinpath(*reversed(missing)))
    best, best_type = "", None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or not rest:
            continue
        mount_point = _unescape(fields[4])
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, rest[0]
    return best_type


def check_local_filesystem(path: str | os.PathLike[str], *, mountinfo: str | None = None) -> None:
    """Raise :class:`ConfigError` when *path* lies on a network filesystem."""
    fstype = filesystem_type(path, mountinfo=mountinfo)
    if fstype is not None and fstype.lower() in NETWORK_FILESYSTEMS:
        raise ConfigError(
            f"the SQLite store {os.fspath(path)!r} is on a network filesystem ({fstype}); SQLite's locks "
            "and WAL are not safe there and the database can be corrupted",
            hint="put the workspace on a local disk, or use the PostgreSQL backend for a shared store",
        )
