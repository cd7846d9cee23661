"""A content-addressed blob store (photos, documents): files named by their sha256.

Layout: ``root/ab/cdef…`` (the first two hex digits are a folder). A write goes to a
temporary file in the target folder, is fsync'd, then ``os.replace``'d into place and the
folder fsync'd: a crash leaves either the whole blob or none, never a partial file under
its final name. Writing the same content twice is harmless (idempotent), so a retried
upload changes nothing.

>>> import tempfile
>>> store = BlobStore(tempfile.mkdtemp())
>>> sha = store.put_bytes(b"hello")
>>> sha[:12], store.exists(sha), store.open(sha).read()
('2cf24dba5fb0', True, b'hello')
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import BinaryIO

from tuban.errors import ConflictError, InputNotFoundError, NotFoundError, UsageError
from tuban.files import fsync_dir, replacing

__all__ = ["BlobStore"]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


class BlobStore:
    """Files by sha256 under *root*."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        """Where blob *sha* lives (whether or not it exists). Refuses anything but 64 hex digits."""
        if not isinstance(sha, str) or not _SHA_RE.match(sha):
            raise UsageError(f"not a sha256 hex digest: {sha!r}", hint="use 64 lowercase hex digits")
        return self.root / sha[:2] / sha[2:]

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def open(self, sha: str) -> BinaryIO:
        """Open blob *sha* for reading; :class:`NotFoundError` if absent."""
        path = self.path(sha)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"no blob {sha}") from None

    def put_bytes(self, data: bytes) -> str:
        """Store *data*; return its sha256 hex digest."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.exists(sha):
            self._write(sha, [data])
        return sha

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store the file at *path* (streamed); return its sha256 hex digest."""
        src = Path(path)
        if not src.is_file():
            raise InputNotFoundError(f"no such file: {src}")
        digest = hashlib.sha256()
        with src.open("rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
        sha = digest.hexdigest()
        if not self.exists(sha):
            with src.open("rb") as fh:
                self._write(sha, iter(lambda: fh.read(_CHUNK), b""), expect=sha)
        return sha

    def _write(self, sha: str, chunks: object, *, expect: str | None = None) -> None:
        target = self.path(sha)
        folder = target.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            fsync_dir(folder.parent)
        with replacing(target, durable=True) as tmp, tmp.open("wb") as out:
            digest = hashlib.sha256()
            for chunk in chunks:  # type: ignore[attr-defined]
                digest.update(chunk)
                out.write(chunk)
            if expect is not None and digest.hexdigest() != expect:
                raise ConflictError(
                    f"file changed while being stored (expected sha256 {expect})", hint="retry"
                )
