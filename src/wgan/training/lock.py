"""One writer per run directory: an OS-level lock held while a process writes into the run.

``RUN_DIR/.lock`` is locked with ``flock(LOCK_EX | LOCK_NB)`` and holds the holder's PID, command
and start time. The kernel drops the lock when the holder exits for any reason (``kill -9``
included), so a stale lock never blocks the next process: the file stays, its lock does not, and the
next holder overwrites the PID. A second process gets :class:`RunLocked` (a one-line
:class:`~wgan.errors.ConfigError`, exit status 2) naming the PID that holds the run.

Example:
    >>> import tempfile
    >>> with RunLock(tempfile.mkdtemp()) as lock:
    ...     lock.held
    True
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from wgan.errors import ConfigError

try:  # POSIX; elsewhere there is no lock (the run still works, two writers are not stopped)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".lock"


class RunLocked(ConfigError):
    """Another live process holds the run directory's lock."""


class RunLock:
    """Hold ``RUN_DIR/.lock`` for the lifetime of a ``with`` block (or :meth:`acquire`/:meth:`release`).

    Args:
        run_dir: the run directory (created if missing).
        what: what this process does there, written into the lock file (``"wgan train"``).
    """

    def __init__(self, run_dir: str | Path, what: str = "wgan"):
        self.path = Path(run_dir) / LOCK_NAME
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None or fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: a live process holds it
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(f"{str(self.path.parent)!r} is in use by {holder}; wait for it to finish or stop "
                            f"it, or use another folder") from None
        # ours: say who holds it (a stale file from a killed holder is overwritten here)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({self.what}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # nobody holds it now; the file itself stays (removing it would race)
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):  # a forgotten lock is dropped with the object, as the kernel would at exit
        if self._fd is not None and sys is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process (it has not written its PID yet)"
