"""Atomic file writes: every file wgan writes is either the old one or the complete new one.

The bytes go to a temporary file in the target's folder (``.NAME.XXXXXX.tmp``), which is flushed and
fsynced, then renamed over the target (rename is atomic on POSIX), and the folder is fsynced: a
crash, a full disk or ``kill -9`` at any moment leaves either the old file or the new one, never a
torn one, and a failed write removes its temporary file. Imports nothing of ours.

Example:
    >>> from wgan.io import atomic_write_json
    >>> atomic_write_json("runs/x/summary.json", {"step": 20})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0o022)  # read once at import (single-threaded): files get the usual permissions,
os.umask(_UMASK)  # not mkstemp's 0600

#: Names of the temporary files of an unfinished write (``.NAME.XXXXXX.tmp``): what a killed writer
#: leaves behind, safe to delete when no writer is running.
TEMP_NAME = re.compile(r"^\..+\.tmp$")


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync, then rename it over ``path``.

    Args:
        path: the file to (re)place; its folder is created if missing.
        write: writes the content to the binary file object it is given (``torch.save``,
            ``np.save``, ``fig.savefig`` and ``Image.save`` all accept one).

    Raises:
        Whatever ``write`` or the file system raises (``OSError`` for a full disk); ``path`` is then
        untouched and the temporary file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, as :func:`atomic_write_bytes` does."""
    data = text.encode("utf-8")
    atomic_write_bytes(path, lambda f: f.write(data))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2, default: Callable[[Any], Any] | None = None,
                      **kwargs: Any) -> None:
    """Write ``obj`` as JSON (UTF-8) to ``path`` atomically.

    Args:
        path: the ``.json`` file.
        obj: anything :func:`json.dumps` accepts.
        indent, default, kwargs: passed to :func:`json.dumps`.
    """
    atomic_write_text(path, json.dumps(obj, indent=indent, default=default, **kwargs))
