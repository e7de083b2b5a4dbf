"""Client-side rate budget: a sliding window per endpoint class, so we never cause a 429.

The venue counts requests per window (projectx-api.md §7: retrieveBars 30 or 50 per 30 s, the
rest 200 per 60 s; window type undocumented). A sliding window of N per W never exceeds N in ANY
window of length W, so it also respects a fixed-window limiter. A request is dated by the
moment its answer came back (or it failed), the latest the venue can have counted it, and
counts while it is in flight: dated by when it was sent, a request delayed on the way (a loaded
machine, a slow network) reached the venue inside the next window and one more than the limit
landed there. Any N+1 receipts within W at the venue would need the last one sent while the
other N were in flight or answered within W before it, which the budget refuses. A small
`margin` widens our window to absorb the two clocks' difference. Time is the process clock
(market time), which is real time in production; in an accelerated test the sim counts in the
same clock. After a 429, `block_until` pauses the whole class until the venue's Retry-After.

A budget may keep `reserved` requests of its window for calls made under `priority()` (the
gateway's own protective actions and its reconciliation): ordinary calls wait once the window
holds `limit - reserved`, so no loop of ordinary calls can take what a flatten needs.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from chillly.clock import Clock


_PRIORITY: ContextVar[bool] = ContextVar("budget_priority", default=False)
ON_ANSWER = -1      # delay_ms: every place is held by a request in flight; wait for an answer


@contextmanager
def priority() -> Iterator[None]:
    """Calls made in this context, and in the tasks it starts, may use a budget's reserved
    share."""
    token = _PRIORITY.set(True)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


class RateBudget:
    def __init__(self, name: str, limit: int, window_s: float, clock: Clock,
                 margin_s: float | None = None, reserved: int = 0) -> None:
        if limit <= 0 or window_s <= 0:
            raise ValueError("a budget needs a positive count and window")
        if not 0 <= reserved < limit:
            raise ValueError("a budget's reserved share must leave room for ordinary calls")
        self.name = name
        self.limit = limit
        self.reserved = reserved
        self.window_ms = int(window_s * 1000)
        self.margin_ms = int((margin_s if margin_s is not None else window_s * 0.02) * 1000)
        self.clock = clock
        self._done: list[int] = []          # answer times in the window, oldest first
        self._in_flight = 0
        self._answered = asyncio.Event()
        self._blocked_until = 0
        self._lock = asyncio.Lock()
        self._priority_lock = asyncio.Lock()    # priority calls never queue behind ordinary ones
        self.waits = 0

    def _prune(self, now: int) -> None:
        horizon = now - self.window_ms - self.margin_ms
        drop = bisect.bisect_right(self._done, horizon)
        if drop:
            del self._done[:drop]

    def delay_ms(self, now: int, priority: bool = False) -> int:
        """How long (market ms) until one more request fits; 0 means now, ON_ANSWER that every
        place is held by a request in flight (once one is answered, its place frees a window
        later). An ordinary request fits in `limit - reserved`, a priority one in `limit`."""
        self._prune(now)
        wait = max(0, self._blocked_until - now)
        cap = self.limit if priority else self.limit - self.reserved
        excess = self._in_flight + len(self._done) - cap   # >= 0: this many must leave first
        if excess >= 0:
            if excess >= len(self._done):
                return ON_ANSWER
            wait = max(wait, self._done[excess] + self.window_ms + self.margin_ms + 1 - now)
        return wait

    def take(self, now: int) -> None:
        """Count a request sent and answered at `now`."""
        bisect.insort(self._done, now)

    def answered(self, now: int) -> None:
        """A request counted by `acquire` is answered (or failed) at `now`: it leaves the
        in-flight count and is dated by this moment from now on."""
        self._in_flight -= 1
        bisect.insort(self._done, now)
        self._answered.set()

    def in_window(self, now: int) -> int:
        """Requests in flight or answered within the window."""
        self._prune(now)
        return self._in_flight + len(self._done)

    def block_until(self, until_ms: int) -> None:
        self._blocked_until = max(self._blocked_until, until_ms)

    async def acquire(self) -> None:
        """Wait until a request fits the budget, then count it as in flight; the caller must
        call `answered` once its answer is in (or the request failed). FIFO among waiters of
        one kind (ordinary, or under `priority()`)."""
        urgent = _PRIORITY.get()
        async with (self._priority_lock if urgent else self._lock):
            while True:
                self._answered.clear()      # before looking: an answer after this wakes us
                now = self.clock.now_ms()
                wait = self.delay_ms(now, urgent)
                if wait == 0:
                    self._in_flight += 1
                    return
                self.waits += 1
                if wait == ON_ANSWER:
                    await self._answered.wait()
                else:
                    await self.clock.sleep(wait / 1000.0)
