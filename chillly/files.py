"""Atomic file replacement: the one way every process writes a state file.

`write_atomic(path, data)` leaves `path` holding either its old content or the new one, never a
torn file, whatever instant the process (or the machine) dies at: the data goes to a temporary
file beside it, which is fsynced, renamed over `path` (atomic on POSIX within one directory),
and then the directory is fsynced so the rename itself survives a power cut. Blocking: call it
from a worker thread in an event loop (`asyncio.to_thread`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, mode: int = 0o666) -> None:
    """Replace `path` with `data` (str is written as UTF-8), durably. `mode` is the new file's
    permission bits before the umask (0o600: readable by this user only). The directory must
    exist. On failure the temporary file is removed and `path` is untouched."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    # Unique per process and thread, so two writers of one file never share a temporary.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
