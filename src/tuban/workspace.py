"""Workspaces: a folder holding ``tuban.toml``, the SQLite store and a blob folder.

Layout::

    DIR/
      tuban.toml          settings (database url, limits, rules file …)
      tuban.sqlite        the embedded store (SQLite, WAL)
      blobs/ab/cdef…      content-addressed files (sha256) for photos and documents
      imagery/            scenes detection jobs may read (files, band folders, SAFE folders, STAC items)
      detections/         detection outputs (NAME.gpkg) a round can be created from

The workspace is chosen by ``--workspace DIR``, else ``$TUBAN_WORKSPACE``, else the
current directory. ``$TUBAN_DATABASE_URL`` (or ``database.url`` in the config) switches
the store to PostgreSQL/PostGIS.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from tuban.errors import ConfigError, WorkspaceNotFoundError
from tuban.files import replacing

__all__ = ["CONFIG_NAME", "DETECTION_DIR", "IMAGERY_DIR", "Workspace", "init_workspace", "open_workspace", "resolve_workspace_dir"]

CONFIG_NAME = "tuban.toml"
SQLITE_NAME = "tuban.sqlite"
BLOB_DIR = "blobs"
#: the folder of scenes a detection job (``tuban worker``) may read: a job names entries inside it, never a path
IMAGERY_DIR = "imagery"
#: the folder whose ``*.gpkg`` detection outputs the web app offers as new rounds (and detection jobs write to)
DETECTION_DIR = "detections"

DEFAULT_CONFIG: dict[str, Any] = {
    "workspace": {"name": "tuban", "crs": "EPSG:4490"},
    "database": {"url": ""},
    "limits": {
        "upload_bytes": 64 * 1024 * 1024,
        "zip_uncompressed_bytes": 1024 * 1024 * 1024,
        "zip_ratio": 100,
        "vertices_per_geometry": 1_000_000,
        "features_per_import": 2_000_000,
    },
}


@dataclass(frozen=True)
class Workspace:
    """An opened workspace: its folder and its parsed config."""

    root: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def sqlite_path(self) -> Path:
        return self.root / SQLITE_NAME

    @property
    def blob_dir(self) -> Path:
        return self.root / BLOB_DIR

    @property
    def imagery_dir(self) -> Path:
        return self.root / IMAGERY_DIR

    @property
    def detection_dir(self) -> Path:
        return self.root / DETECTION_DIR

    @property
    def database_url(self) -> str:
        """The store URL: ``$TUBAN_DATABASE_URL``, else the config, else the SQLite file."""
        env = os.environ.get("TUBAN_DATABASE_URL", "").strip()
        if env:
            return env
        url = str(self.config.get("database", {}).get("url", "") or "").strip()
        if url:
            return url
        return f"sqlite:///{self.sqlite_path}"

    def limit(self, name: str) -> int:
        value = self.config.get("limits", {}).get(name, DEFAULT_CONFIG["limits"].get(name))
        if value is None:
            raise ConfigError(f"unknown limit {name!r}")
        return int(value)


def resolve_workspace_dir(path: str | os.PathLike[str] | None) -> Path:
    """``path``, else ``$TUBAN_WORKSPACE``, else the current directory."""
    if path:
        return Path(path).expanduser().resolve()
    env = os.environ.get("TUBAN_WORKSPACE", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return Path.cwd().resolve()


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def init_workspace(path: str | os.PathLike[str], *, name: str | None = None) -> Workspace:
    """Create (or reuse) a workspace folder with its config and blob folder.

    An existing ``tuban.toml`` is kept as it is: init is idempotent.
    """
    root = Path(path).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / BLOB_DIR).mkdir(exist_ok=True)
    cfg_path = root / CONFIG_NAME
    if not cfg_path.exists():
        cfg = _merge(DEFAULT_CONFIG, {"workspace": {"name": name or root.name}})
        with replacing(cfg_path) as tmp:
            tmp.write_text(tomli_w.dumps(cfg), encoding="utf-8")
    return open_workspace(root)


def open_workspace(path: str | os.PathLike[str] | None = None) -> Workspace:
    """Open an existing workspace, or raise :class:`WorkspaceNotFoundError`."""
    root = resolve_workspace_dir(path)
    cfg_path = root / CONFIG_NAME
    if not cfg_path.is_file():
        raise WorkspaceNotFoundError(
            f"no tuban workspace at {root} ({CONFIG_NAME} not found)",
            hint=f"run `tuban init {root}` or pass --workspace DIR / set TUBAN_WORKSPACE",
        )
    try:
        cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg_path} is not valid TOML: {exc}", hint="fix or delete the file") from exc
    return Workspace(root=root, config=_merge(DEFAULT_CONFIG, cfg))
