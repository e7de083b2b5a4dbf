"""Client-side rate budget: a sliding window per endpoint class, so we never cause a 429.

The venue counts requests per window (projectx-api.md §7: retrieveBars 30 or 50 per 30 s, the
rest 200 per 60 s; window type undocumented). A sliding window of N per W never exceeds N in ANY
window of length W, so it also respects a fixed-window limiter. A small `margin` widens our
window to absorb the delay between sending and the venue's receipt. Time is the process clock
(market time), which is real time in production; in an accelerated test the sim counts in the
same clock. After a 429, `block_until` pauses the whole class until the venue's Retry-After.
"""

from __future__ import annotations

import asyncio
from collections import deque

from chillly.clock import Clock


class RateBudget:
    def __init__(self, name: str, limit: int, window_s: float, clock: Clock,
                 margin_s: float | None = None) -> None:
        if limit <= 0 or window_s <= 0:
            raise ValueError("a budget needs a positive count and window")
        self.name = name
        self.limit = limit
        self.window_ms = int(window_s * 1000)
        self.margin_ms = int((margin_s if margin_s is not None else window_s * 0.02) * 1000)
        self.clock = clock
        self._sent: deque[int] = deque()
        self._blocked_until = 0
        self._lock = asyncio.Lock()
        self.waits = 0

    def _prune(self, now: int) -> None:
        horizon = now - self.window_ms - self.margin_ms
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def delay_ms(self, now: int) -> int:
        """How long (market ms) until one more request fits; 0 means now."""
        self._prune(now)
        wait = max(0, self._blocked_until - now)
        if len(self._sent) >= self.limit:
            oldest = self._sent[len(self._sent) - self.limit]
            wait = max(wait, oldest + self.window_ms + self.margin_ms + 1 - now)
        return wait

    def take(self, now: int) -> None:
        self._sent.append(now)

    def in_window(self, now: int) -> int:
        self._prune(now)
        return len(self._sent)

    def block_until(self, until_ms: int) -> None:
        self._blocked_until = max(self._blocked_until, until_ms)

    async def acquire(self) -> None:
        """Wait until a request fits the budget, then count it. FIFO among waiters."""
        async with self._lock:
            while True:
                now = self.clock.now_ms()
                wait = self.delay_ms(now)
                if wait <= 0:
                    self.take(now)
                    return
                self.waits += 1
                await self.clock.sleep(wait / 1000.0)
