"""Files written whole or not at all (整写或不写): the new content goes to a temporary name beside the target,
which is renamed over the target only once it is complete.

Used wherever tuban replaces a file a user or another process may read: blobs, upload state, workspace
configuration, exported vector files, detection output. A failed or killed write leaves the target as it
was and, short of a kill, no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["fsync_dir", "replacing"]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(target: str | os.PathLike[str], *, durable: bool = False) -> Iterator[Path]:
    """A temporary path in ``target``'s folder (same suffix, hidden name) to write ``target``'s new content
    to. When the block ends without an error the file is renamed over ``target`` (``os.replace``: atomic on
    POSIX); when it raises, the temporary file is removed and ``target`` is untouched.

    ``durable``: the file's data are fsync'd before the rename and the folder after it, so that after a crash
    the target holds the old or the new content, never part of it.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with replacing(p) as tmp:
    ...     _ = tmp.write_text("new")
    >>> p.read_text(), sorted(x.name for x in p.parent.iterdir())
    ('new', ['a.txt'])
    """
    target = Path(target)
    tmp = target.parent / f".{target.stem}.tmp-{uuid.uuid4().hex}{target.suffix}"
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(target.parent)
