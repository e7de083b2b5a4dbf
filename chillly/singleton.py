"""One writer per file, enforced rather than assumed (issue 8, defect 19).

A process that must be the only one of its kind on a file (the store on DATABASE_PATH, the
gateway on its journal) calls `acquire` before it opens the file. The lock is an exclusive,
non-blocking `flock` on `<file>.lock` beside it, so:

- a second instance fails at once with a `StartupError` (exit 2, not restarted by supervisord)
  naming the pid and name of the holder, read from the lock file;
- the OS releases the lock when the holder dies, however it dies (SIGKILL included): there is
  no stale lock to clean up, and a leftover lock file with a dead pid in it means nothing.

The descriptor is opened close-on-exec, so a child the holder starts does not inherit the lock.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from chillly.errors import StartupError


def lock_path(path: Path | str) -> Path:
    """Where the lock of `path` lives: `<path>.lock`, beside it."""
    return Path(f"{path}.lock")


class Lock:
    """A held lock; `release` (or process death) frees it."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def release(self) -> None:
        """Free the lock (idempotent). The lock file stays: deleting it would race a newcomer
        that opened it already and would then lock a file nobody else sees."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 256).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    pid, _, name = text.partition(" ")
    if not pid.isdigit():
        return "another process (holder unknown)"
    return f"{name or 'a process'} (pid {pid})"


def _process_name() -> str:
    try:
        return Path(sys.argv[0]).name or "python"
    except (IndexError, TypeError):
        return "python"


def acquire(path: Path | str, what: str, wait: float = 0.0) -> Lock:
    """Take the exclusive lock of `path` for this process, known as `what` (e.g. "store").

    Non-blocking by default. With `wait`, a taken lock is tried again for up to `wait` seconds
    first: an old instance that is still stopping (a restart, or every program SIGTERMed at
    once when supervisord dies and starts again) lets go within its stop budget, and a newcomer
    that gave up at once would be left stopped (exit 2 is not restarted). Raises
    `StartupError` naming the holder when another live process still has it.
    """
    lp = lock_path(path)
    try:
        lp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StartupError(f"cannot create the lock file {lp}: {exc.strerror}") from None
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            holder = _holder(fd)
            os.close(fd)
            raise StartupError(
                f"{path} is in use by {holder}: only one {what} may use it (lock {lp})"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StartupError(f"cannot lock {lp}: {exc.strerror}") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {what or _process_name()}\n".encode(), 0)
    except OSError:
        pass  # the lock holds even if the note about its holder cannot be written
    return Lock(fd, lp)
