"""A strategy instance's saved state: one JSON file in its own state directory, replaced
atomically (write a temporary file, fsync, rename, fsync the directory), so a crash at any
point leaves either the old state or the new one, never a torn file.

The state holds the client-id counter `next_n`: it is saved before an order with that id is
sent, so a restarted host never reuses a client id (the gateway would refuse it as a duplicate).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("state")


class StateFile:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / "state.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Kept aside, not deleted: a trader may want it. The host then takes the counter
            # past every client id the gateway knows for this owner (host.py, `_sync`).
            bad = self.path.with_suffix(".bad")
            log.error("cannot read %s (%s): moved to %s, starting empty", self.path, exc, bad)
            try:
                os.replace(self.path, bad)
            except OSError:
                pass
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, state: dict[str, Any]) -> None:
        """Blocking (fsync): call it from a worker thread."""
        text = json.dumps(state, sort_keys=True, default=str)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
