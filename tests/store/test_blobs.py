"""The content-addressed blob store: idempotent, atomic, refuses bad names."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tuban.blobs import BlobStore
from tuban.errors import InputNotFoundError, NotFoundError, UsageError


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_open_exists_idempotent(blob_store: BlobStore) -> None:
    data = "现场照片".encode() * 1000
    sha = blob_store.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert blob_store.path(sha) == blob_store.root / sha[:2] / sha[2:]
    assert blob_store.exists(sha)
    with blob_store.open(sha) as fh:
        assert fh.read() == data
    assert blob_store.put_bytes(data) == sha
    assert len(_files(blob_store.root)) == 1


def test_put_file_streams(blob_store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    sha = blob_store.put_file(src)
    assert blob_store.path(sha).read_bytes() == src.read_bytes()
    with pytest.raises(InputNotFoundError):
        blob_store.put_file(tmp_path / "missing.jpg")


def test_failed_replace_leaves_nothing(blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="Input/output"):
        blob_store.put_bytes(b"evidence")
    monkeypatch.undo()
    sha = hashlib.sha256(b"evidence").hexdigest()
    assert not blob_store.exists(sha)
    assert _files(blob_store.root) == []  # no temp file left behind
    assert blob_store.put_bytes(b"evidence") == sha  # a retry succeeds


def test_failed_fsync_acknowledges_nothing(blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output"):
        blob_store.put_bytes(b"evidence 2")
    monkeypatch.undo()
    assert _files(blob_store.root) == []


@pytest.mark.parametrize("sha", ["../../etc/passwd", "ab", "A" * 64, "g" * 64, "0" * 63 + "/"])
def test_bad_names_refused(blob_store: BlobStore, sha: str) -> None:
    with pytest.raises(UsageError, match="sha256"):
        blob_store.path(sha)


def test_missing_blob(blob_store: BlobStore) -> None:
    with pytest.raises(NotFoundError):
        blob_store.open("0" * 64)
