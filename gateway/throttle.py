"""Publish a message when its content changes, at most every `min_gap_s` real seconds, and
again every `refresh_s` even unchanged (late subscribers, the page, `tap`).

The account message used to go out every GATEWAY_PUBLISH_INTERVAL market seconds: 57 a second
at CLOCK_SPEED=60, flooding `chillly tap account.` with copies. Real seconds here, not market
ones: the rate a reader can follow does not speed up with the market clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class ChangeThrottle:
    def __init__(self, min_gap_s: float = 0.25, refresh_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_gap_s = min_gap_s
        self.refresh_s = refresh_s
        self.clock = clock
        self.last_key: Hashable = object()
        self.last_at = float("-inf")

    def due(self, key: Hashable) -> bool:
        """Whether content `key` should go out now; if so, it is recorded as sent."""
        now = self.clock()
        since = now - self.last_at
        if since < self.min_gap_s or (key == self.last_key and since < self.refresh_s):
            return False
        self.last_key, self.last_at = key, now
        return True
