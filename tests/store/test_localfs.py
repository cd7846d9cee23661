"""An SQLite store on a network filesystem is refused at start-up (reliability #48)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuban.errors import ConfigError
from tuban.store.engine import make_engine
from tuban.store.localfs import check_local_filesystem, filesystem_type

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 0:45 / /srv/share rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
41 40 0:46 / /srv/share/local\\040disk rw,relatime - ext4 /dev/vdb rw
42 27 0:47 / /mnt/smb rw,relatime - cifs //host/share rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/home/a/tuban.sqlite", "ext4"),
        ("/srv/share/round/tuban.sqlite", "nfs4"),
        ("/srv/share/local disk/tuban.sqlite", "ext4"),  # a local mount inside the NFS one
        ("/mnt/smb/x/y/tuban.sqlite", "cifs"),
        ("/srv/shared/tuban.sqlite", "ext4"),  # a name prefix is not a mount prefix
    ],
)
def test_filesystem_type_takes_the_longest_mount_point(path: str, expected: str) -> None:
    assert filesystem_type(path, mountinfo=MOUNTINFO) == expected


@pytest.mark.parametrize("path", ["/srv/share/round/tuban.sqlite", "/mnt/smb/tuban.sqlite"])
def test_network_filesystems_are_refused_naming_the_type_and_the_fix(path: str) -> None:
    with pytest.raises(ConfigError, match=r"network filesystem \((nfs4|cifs)\).*") as info:
        check_local_filesystem(path, mountinfo=MOUNTINFO)
    assert "PostgreSQL" in (info.value.hint or "")


def test_local_disk_is_accepted(tmp_path: Path) -> None:
    check_local_filesystem("/home/a/tuban.sqlite", mountinfo=MOUNTINFO)
    # and the real machine: the test folder is local, so an engine opens there
    engine = make_engine(f"sqlite:///{tmp_path / 'tuban.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_make_engine_refuses_a_store_on_a_network_mount(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tuban.store import localfs

    fake = f"27 1 253:1 / / rw - ext4 /dev/vda rw\n50 27 0:50 / {tmp_path} rw - nfs server:/x rw\n"
    monkeypatch.setattr(localfs, "_MOUNTINFO", tmp_path / "mountinfo")
    (tmp_path / "mountinfo").write_text(fake)
    with pytest.raises(ConfigError, match=r"network filesystem \(nfs\)"):
        make_engine(f"sqlite:///{tmp_path / 'store' / 'tuban.sqlite'}")
    assert not (tmp_path / "store").exists()
