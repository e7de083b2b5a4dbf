"""Small JSON state files in RUN_DIR, written atomically (chillly/files.py: temp file, fsync,
rename, directory fsync).

A reader (or a restart after a crash at any instant) sees either the old file or the new one,
never half of one. Writes are tiny, so they run in a worker thread to keep the event loop free.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from chillly.files import write_atomic


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def read_json(path: Path, default: Any = None) -> Any:
    """The file's content, or `default` when it does not exist. A corrupt file raises
    ValueError naming it: state is never silently replaced."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


class JsonState:
    """One JSON file, saved atomically off the event loop; saves never run concurrently."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def load(self, default: Any = None) -> Any:
        return read_json(self.path, default)

    async def save(self, data: Any) -> None:
        """Write `data`. A caller cancelled mid-save (SIGTERM) does not cancel the write: it
        finishes, still holding the lock, so the next save (the one `on_stop` makes) cannot
        interleave with it or be overtaken by it."""
        await asyncio.shield(self._write(data))

    async def _write(self, data: Any) -> None:
        async with self._lock:
            await asyncio.to_thread(write_json_atomic, self.path, data)
