"""What went wrong with one strategy instance, kept where `chillly strategies` can read it even
while the host is down: `incidents.json` in the instance's state directory.

- restarts: starts that followed a run which did not stop cleanly (an exception in a hook five
  times in a row, the watchdog, the memory limit), with their times;
- the last error: the exception of the last failing hook, as one line;
- the last refusals of its orders, with the rule the gateway named.

A crash loop (LOOP_RESTARTS restarts within LOOP_WINDOW_S) is raised by the host as alarm
`crash_loop`, so `chillly status` calls it unhealthy rather than seeing a program that is
RUNNING between two crashes. Written atomically by the host (the only writer); every write is a
few hundred bytes, on events that are rare by nature.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from chillly.files import write_atomic

log = logging.getLogger("incidents")

FILE = "incidents.json"
LOOP_RESTARTS = 3
LOOP_WINDOW_S = 1800.0
KEEP = 10


def read(directory: Path) -> dict[str, Any]:
    """The instance's record (empty when it never ran or the file is unreadable)."""
    try:
        data = json.loads((directory / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def crash_loop(data: dict[str, Any], now: float) -> str | None:
    """The alarm's text when the record shows a crash loop at real time `now`, else None."""
    recent = [t for t in data.get("restart_times", []) if now - t < LOOP_WINDOW_S]
    if len(recent) < LOOP_RESTARTS:
        return None
    return (f"crash loop: restarted {len(recent)} times after a failure in the last "
            f"{LOOP_WINDOW_S / 60:.0f} min; last error: {data.get('last_error') or 'unknown'}")


class Incidents:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.data = read(directory)

    def started(self, now: float) -> None:
        """A start: a restart after a failure when the last run did not stop cleanly."""
        if self.data.get("running"):
            self.data["restarts"] = int(self.data.get("restarts", 0)) + 1
            self.data["restart_times"] = [*self.data.get("restart_times", []), now][-KEEP:]
        self.data["running"] = True
        self._write()

    def stopped(self, clean: bool) -> None:
        self.data["running"] = not clean
        self._write()

    def note(self, last_error: str | None, refusals: list[dict[str, Any]]) -> None:
        """The engine's last error and refusals, written only when they changed."""
        new = {"last_error": last_error or self.data.get("last_error"),
               "refusals": refusals or self.data.get("refusals", [])}
        if last_error and last_error != self.data.get("last_error"):
            new["last_error_at"] = time.time()
        if all(self.data.get(k) == v for k, v in new.items()):
            return
        self.data.update(new)
        self._write()

    def _write(self) -> None:
        try:
            write_atomic(self.dir / FILE, json.dumps(self.data))
        except OSError as exc:
            log.warning("cannot record incidents in %s: %s", self.dir, exc)
