"""``tuban db upgrade|current`` and ``tuban user add`` (SQLite workspace)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tuban.cli import main


def test_db_and_user_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TUBAN_DATABASE_URL", raising=False)
    ws = tmp_path / "ws"
    assert main(["init", str(ws)]) == 0
    assert main(["db", "current", "-w", str(ws)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["db", "upgrade", "-w", str(ws)]) == 0
    assert "database at revision 0005_job_priority" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    assert (
        main(
            [
                "user",
                "add",
                "li",
                "--role",
                "county_reviewer:410811",
                "--role",
                "viewer:410811",
                "--password-stdin",
                "-w",
                str(ws),
            ]
        )
        == 0
    )
    assert "user li created" in capsys.readouterr().out
    rc = main(["user", "add", "li", "--role", "viewer", "--password", "another-password", "-w", str(ws)])
    assert rc == 6
    assert "already exists" in capsys.readouterr().err
    rc = main(["user", "add", "wang", "--role", "boss", "--password", "another-password", "-w", str(ws)])
    assert rc == 2
    assert "unknown role 'boss'" in capsys.readouterr().err

    from tuban.store import open_store

    with open_store(f"sqlite:///{ws / 'tuban.sqlite'}") as store:
        uid = store.verify_user("li", "s3cret-password")
        assert uid is not None
        perms = store.permissions(uid)
    assert perms.allows("patch.review", "410811")
    assert perms.allows("patch.read", "410999") is False


def test_db_current_without_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "-w", str(tmp_path / "nowhere")]) == 3
    assert "tuban init" in capsys.readouterr().err
