"""The hook watchdog: a slow hook is reported with its stack, a stuck one ends the host.

Two mechanisms, because a hook can be stuck in two ways:
- Python code that loops still lets other threads run (the GIL is released every few ms), so
  a watcher thread sees a hook past STRATEGY_HOOK_BUDGET_MS, logs the main thread's stack and
  raises an alarm on the bus through its own socket (the event loop is the one that is stuck).
- Code that holds the GIL (a long C call) stops every Python thread. For that, faulthandler's
  C watchdog is kept armed by the event loop itself (`keepalive`, every half second, for
  STRATEGY_HOOK_KILL_S plus that half second): when the loop stops coming back, the C thread
  dumps every thread's traceback and exits the process with status 1 even though the GIL is
  held, and supervisord restarts the host. Re-arming from the loop rather than around each hook
  keeps the per-event cost to two attribute writes (arming faulthandler costs ~40 us).

It also keeps each hook's duration for the heartbeat's `hook_p99_us` (the engine in trading/
reads no clock of its own).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable

from trading.strategy.engine import Watch

log = logging.getLogger("watchdog")

REARM_S = 0.5


class Watchdog(Watch):
    def __init__(self, budget_ms: float, kill_s: float,
                 alarm: Callable[[bool, str], None] | None = None) -> None:
        self.budget = budget_ms / 1000.0
        self.kill_s = kill_s
        self.alarm = alarm
        self.hook: str | None = None
        self.since = 0.0
        self.calls = 0
        self.slow = 0          # hooks that overran the budget
        self.last_slow = ""    # which, and for how long when last seen (for the heartbeat)
        self._reported = -1    # the call number last reported
        self._alarm_on = False
        self.durations: deque[float] = deque(maxlen=5000)   # seconds per hook call, per beat
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="hook-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        faulthandler.cancel_dump_traceback_later()

    # ------------------------------------------------------------ called around every hook

    def arm(self, hook: str) -> None:
        self.calls += 1
        self.since = time.monotonic()
        self.hook = hook

    def disarm(self) -> None:
        self.durations.append(time.monotonic() - self.since)
        self.hook = None
        if self._alarm_on:
            self._alarm_on = False
            if self.alarm is not None:
                self.alarm(False, "hook back within budget")

    def hook_p99_us(self, reset: bool = False) -> int:
        """p99 of the hook durations since the last reset (each heartbeat resets)."""
        d = sorted(self.durations)
        if reset:
            self.durations.clear()
        return int(d[min(len(d) - 1, int(len(d) * 0.99))] * 1e6) if d else 0

    # ------------------------------------------------------------ the two watchers

    async def keepalive(self) -> None:
        """Keep faulthandler's kill timer armed while the event loop is alive."""
        try:
            while True:
                faulthandler.dump_traceback_later(self.kill_s + REARM_S, exit=True)
                await asyncio.sleep(REARM_S)
        finally:
            faulthandler.cancel_dump_traceback_later()

    def _watch(self) -> None:
        step = max(0.01, self.budget / 4)
        while not self._stop.wait(step):
            hook, call = self.hook, self.calls
            if hook is None or call == self._reported:
                continue
            elapsed = time.monotonic() - self.since
            if elapsed < self.budget:
                continue
            self._reported = call
            self.slow += 1
            self.last_slow = f"{hook} {elapsed * 1000:.0f}ms"
            frame = sys._current_frames().get(self._main) if self._main else None
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "?"
            log.warning("hook %s running for %.0f ms (budget %.0f ms, killed at %.1f s):\n%s",
                        hook, elapsed * 1000, self.budget * 1000, self.kill_s, stack.rstrip())
            if self.alarm is not None:
                self._alarm_on = True
                self.alarm(True, f"hook {hook} over budget ({elapsed * 1000:.0f} ms)")
