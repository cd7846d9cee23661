"""``tuban.files.replacing``: the target is the old or the new content, never part of it."""

from __future__ import annotations

import os

import pytest

from tuban.files import replacing


def test_the_new_content_replaces_the_target_and_no_temporary_file_stays(tmp_path) -> None:
    target = tmp_path / "a.gpkg"
    target.write_text("old")
    with replacing(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.suffix == ".gpkg"
        assert tmp.name.startswith(".")
        tmp.write_text("new")
        assert target.read_text() == "old"  # not yet
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.gpkg"]


def test_a_failing_write_leaves_the_target_as_it_was(tmp_path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    def write() -> None:
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer failed midway")

    with pytest.raises(RuntimeError):
        write()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_durable_fsyncs_the_file_before_the_rename(tmp_path, monkeypatch) -> None:
    target = tmp_path / "b.json"
    calls: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space"), replacing(target, durable=True) as tmp:
        tmp.write_text("{}")
    assert calls
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(os, "fsync", real)
    with replacing(target, durable=True) as tmp:
        tmp.write_text("{}")
    assert target.read_text() == "{}"
