"""The one source of time for every process.

All timestamps are integer UTC epoch milliseconds. In accelerated mode (CLOCK_SPEED != 1) every
process derives market time from the same two settings, so the sim, the feeds and the
aggregator agree on "now" without talking to each other:

    market_ms = anchor_ms + (real_ms - anchor_ms) * speed

Pure cores take a `Clock` argument; tests pass a `ManualClock` and advance it by hand.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    """What a component needs of time: read it, and wait for a point in it."""

    speed: float

    def now_ms(self) -> int: ...

    async def sleep(self, market_seconds: float) -> None: ...

    async def sleep_until(self, market_ms: int) -> None: ...


class SystemClock:
    """Wall time, optionally accelerated by `speed` after `anchor_ms`."""

    def __init__(self, speed: float = 1.0, anchor_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be > 0")
        if speed != 1.0 and anchor_ms is None:
            raise ValueError("an accelerated clock needs an anchor")
        self.speed = speed
        self.anchor_ms = anchor_ms if anchor_ms is not None else 0

    def now_ms(self) -> int:
        real_ms = time.time() * 1000.0
        if self.speed == 1.0:
            return int(real_ms)
        return int(self.anchor_ms + (real_ms - self.anchor_ms) * self.speed)

    def real_seconds(self, market_seconds: float) -> float:
        """How long a span of market time lasts in real time."""
        return max(0.0, market_seconds / self.speed)

    async def sleep(self, market_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(market_seconds))

    async def sleep_until(self, market_ms: int) -> None:
        # Re-check after waking: the loop's timer can fire a little early.
        while True:
            remaining = market_ms - self.now_ms()
            if remaining <= 0:
                return
            await asyncio.sleep(self.real_seconds(remaining / 1000.0))


class ManualClock:
    """A clock that moves only when told to: for pure cores and unit tests."""

    def __init__(self, now_ms: int = 0, speed: float = 1.0) -> None:
        self._now = now_ms
        self.speed = speed
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def now_ms(self) -> int:
        return self._now

    def set(self, now_ms: int) -> None:
        self._now = now_ms
        self._wake()

    def advance(self, ms: int) -> None:
        self.set(self._now + ms)

    def _wake(self) -> None:
        keep = []
        for due, fut in self._waiters:
            if due <= self._now:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((due, fut))
        self._waiters = keep

    async def sleep(self, market_seconds: float) -> None:
        await self.sleep_until(self._now + int(market_seconds * 1000))

    async def sleep_until(self, market_ms: int) -> None:
        if market_ms <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((market_ms, fut))
        await fut


def clock_from_settings(settings: object) -> SystemClock:
    """The process clock, built from CLOCK_SPEED / CLOCK_ANCHOR."""
    speed = float(getattr(settings, "clock_speed", 1.0))
    anchor = getattr(settings, "clock_anchor_ms", None)
    return SystemClock(speed, anchor)


def ms_to_iso(ms: int) -> str:
    """ISO-8601 UTC with a Z, millisecond precision, as the venue's hub payloads write it."""
    dt = datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_to_ms(text: str) -> int:
    """Parse the venue's timestamps (Z or +00:00, any fractional precision) to epoch ms."""
    t = text.strip()
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    # Python < 3.11 could not parse 7-digit fractions; trim to microseconds to be safe.
    if "." in t:
        head, rest = t.split(".", 1)
        frac = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            frac += rest[i]
            i += 1
        t = f"{head}.{frac[:6].ljust(6, '0')}{rest[i:]}"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))


MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
