from __future__ import annotations

from pathlib import Path

import pytest

from tuban.errors import ConfigError, WorkspaceNotFoundError
from tuban.workspace import init_workspace, open_workspace


def test_init_creates_config_and_blob_folder(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    assert ws.config_path.is_file()
    assert ws.blob_dir.is_dir()
    assert ws.database_url == f"sqlite:///{ws.sqlite_path}"
    # idempotent: a second init keeps the config as it is
    ws.config_path.write_text(ws.config_path.read_text() + '\n[extra]\nx = 1\n', encoding="utf-8")
    again = init_workspace(tmp_path / "ws")
    assert again.config["extra"] == {"x": 1}


def test_env_selects_workspace_and_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_workspace(tmp_path)
    monkeypatch.setenv("TUBAN_WORKSPACE", str(tmp_path))
    assert open_workspace(None).root == tmp_path.resolve()
    monkeypatch.setenv("TUBAN_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:1/x")
    assert open_workspace(None).database_url.startswith("postgresql+psycopg://")


def test_missing_workspace_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFoundError, match="tuban init"):
        open_workspace(tmp_path / "nowhere")


def test_broken_config_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "tuban.toml").write_text("this is = = not toml", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        open_workspace(tmp_path)
