"""chillly.periodic.every: runs at once and then on a fixed delay, stops at once on the event."""

from __future__ import annotations

import asyncio
import time

import pytest

from chillly.periodic import every


async def test_runs_until_the_event_and_stops_without_waiting_the_interval() -> None:
    calls: list[float] = []
    stop = asyncio.Event()

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) == 3:
            stop.set()

    started = time.monotonic()
    await asyncio.wait_for(every(0.01, tick, stop), 2)
    assert len(calls) == 3
    stop.clear()
    loop_task = asyncio.create_task(every(30, tick, stop))
    await asyncio.sleep(0.05)
    assert len(calls) == 4          # ran at once
    stop.set()
    await asyncio.wait_for(loop_task, 1)  # did not sit out the 30 s
    assert time.monotonic() - started < 2


async def test_async_function_and_cancel_without_event() -> None:
    seen = 0

    async def tick() -> None:
        nonlocal seen
        seen += 1

    task = asyncio.create_task(every(0.001, tick))
    while seen < 5:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_exception_ends_the_loop() -> None:
    def boom() -> None:
        raise RuntimeError("poll failed")

    with pytest.raises(RuntimeError):
        await asyncio.wait_for(every(0.01, boom, asyncio.Event()), 1)
