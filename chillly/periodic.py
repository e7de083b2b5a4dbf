"""The one "run this every N seconds until stopping" loop (issue 8), so that every process
polls, refreshes and reports the same way instead of each writing its own `while` loop.

`fn` runs at once, then again `interval` seconds after each run ends (fixed delay: a slow run
never piles up calls). The loop ends as soon as `until` is set, without waiting out the
interval, or when its task is cancelled. An exception from `fn` ends the loop and propagates:
a process whose periodic work fails is FAULTED, not silently stalled.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def every(interval: float, fn: Callable[[], Awaitable[object] | object],
                until: asyncio.Event | None = None) -> None:
    """Call `fn` (sync or async) every `interval` seconds until `until` is set or cancelled."""
    while until is None or not until.is_set():
        result = fn()
        if inspect.isawaitable(result):
            await result
        if until is None:
            await asyncio.sleep(interval)
            continue
        try:
            await asyncio.wait_for(until.wait(), interval)
        except asyncio.TimeoutError:
            pass
