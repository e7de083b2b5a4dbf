"""Request budgets of projectx-api.md §7: History/retrieveBars and everything else.

The live window type and scope are unknown (§11), so the sim uses the strictest reading a
client should budget for: a *sliding* window (a request counts for exactly `window` seconds
after it was accepted; there is no reset instant to exploit) per scope key (user by default:
the token's subject, or the userName of a login). Refused requests do not use budget.
`Retry-After` is the whole number of seconds until the oldest counted request leaves the window,
at least 1. The window runs on the market clock by default (so an accelerated system sees the
same budget per market minute); SIM_RATE_CLOCK=real makes it wall time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Limit:
    count: int
    window_s: float


class SlidingWindow:
    """Accepts at most `count` events per `window_s` per key."""

    def __init__(self, limit: Limit, now_ms: Callable[[], float]) -> None:
        self.limit = limit
        self.now_ms = now_ms
        self._log: dict[str, deque[float]] = {}

    def try_acquire(self, key: str) -> float | None:
        """None when accepted (and counted), else the seconds to wait before retrying."""
        now = self.now_ms()
        window_ms = self.limit.window_s * 1000.0
        log = self._log.setdefault(key, deque())
        while log and log[0] <= now - window_ms:
            log.popleft()
        if len(log) < self.limit.count:
            log.append(now)
            return None
        if not log:  # a budget of zero: nothing is ever allowed
            return max(1.0, math.ceil(self.limit.window_s))
        return max(1.0, math.ceil((log[0] + window_ms - now) / 1000.0))

    def in_window(self, key: str) -> int:
        now = self.now_ms()
        log = self._log.get(key, deque())
        return sum(1 for t in log if t > now - self.limit.window_s * 1000.0)

    def reset(self) -> None:
        self._log.clear()
