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

from chillly.files import write_atomic

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
        write_atomic(self.path, json.dumps(state, sort_keys=True, default=str), mode=0o600)


class RunMarker:
    """Back-off for a host in a crash loop. supervisord backs off only for programs that die
    before `startsecs`; a host that dies a few seconds into its run (hook errors, the watchdog,
    its memory limit) would be restarted at once, again and again. So each start is recorded
    (`run.json`), a clean stop marks it, and a start that follows an unclean run of under a
    minute waits 1, 2, 4 ... up to 30 seconds before going live."""

    WINDOW_S = 60.0
    MAX_DELAY_S = 30.0

    def __init__(self, directory: Path) -> None:
        self.path = directory / "run.json"

    def start(self, now: float) -> float:
        """Record this start; the delay (seconds) to wait first."""
        try:
            prev = json.loads(self.path.read_text())
        except (OSError, ValueError):
            prev = {}
        crashes = 0
        if isinstance(prev, dict) and prev and not prev.get("clean") \
                and now - float(prev.get("started", 0)) < self.WINDOW_S:
            crashes = int(prev.get("crashes", 0)) + 1
        self._write({"started": now, "clean": False, "crashes": crashes})
        return min(2.0 ** (crashes - 1), self.MAX_DELAY_S) if crashes else 0.0

    def clean_stop(self) -> None:
        try:
            prev = json.loads(self.path.read_text())
        except (OSError, ValueError):
            prev = {}
        self._write({**(prev if isinstance(prev, dict) else {}), "clean": True})

    def _write(self, data: dict[str, Any]) -> None:
        try:
            write_atomic(self.path, json.dumps(data))
        except OSError as exc:
            log.warning("cannot record the run in %s: %s", self.path, exc)
