"""What the field routes need, held on the app (no module state): blob store, uploads, policy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from tuban.errors import ConfigError

__all__ = ["FieldServices", "configure_field", "field_services"]


@dataclass(frozen=True, slots=True)
class FieldServices:
    store: Any
    blobs: Any
    uploads: Any
    policy: Any
    offline: Any = None
    probe: Any = None
    processor: Any = None


def _default_blob_dir(database_url: str) -> Path:
    env = os.environ.get("TUBAN_BLOB_DIR", "").strip()
    if env:
        return Path(env)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database).resolve().parent / "blobs"
    raise ConfigError("no blob folder for field photos with a PostgreSQL store",
                      hint="set TUBAN_BLOB_DIR to a folder on a local disk")


def configure_field(app: Any, *, blob_dir: str | os.PathLike[str] | None = None,
                    upload_dir: str | os.PathLike[str] | None = None, policy: Any = None,
                    offline: Any = None) -> FieldServices:
    """Attach the field services to *app* (``app.state.field``)."""
    from tuban.blobs import BlobStore
    from tuban.field.policy import load_policy
    from tuban.field.processing import PhotoProcessor
    from tuban.field.tiles import OfflineSettings
    from tuban.field.uploads import UploadManager
    from tuban.fieldapp.offline import ImageryProbe

    store = app.state.store
    root = Path(blob_dir) if blob_dir is not None else _default_blob_dir(store.url)
    updir = Path(upload_dir) if upload_dir is not None else root.parent / "uploads"
    pol = policy if policy is not None else load_policy(os.environ.get("TUBAN_PHOTO_POLICY") or None)
    blobs = BlobStore(root)
    processor = PhotoProcessor(store, blobs, pol).start()  # photos left pending by a crash are redone now
    uploads = UploadManager(store, blobs, updir, policy=pol, processor=processor)
    services = FieldServices(store=store, blobs=blobs, uploads=uploads, policy=pol, processor=processor,
                             offline=offline if offline is not None else OfflineSettings.from_env(),
                             probe=ImageryProbe())
    app.state.field = services
    return services


def field_services(app: Any) -> FieldServices:
    """The app's field services, configured from the defaults on first use."""
    services = getattr(app.state, "field", None)
    if services is None:
        services = configure_field(app)
    return services
