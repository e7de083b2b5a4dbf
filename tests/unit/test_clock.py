"""The clock: accelerated market time all processes agree on; ISO conversions."""

from __future__ import annotations

import asyncio
import time

import pytest

from chillly.clock import ManualClock, SystemClock, iso_to_ms, ms_to_iso


def test_accelerated_clock_runs_speed_times_faster_after_anchor() -> None:
    anchor = int(time.time() * 1000) - 10_000
    clock = SystemClock(speed=60, anchor_ms=anchor)
    real = time.time() * 1000
    now = clock.now_ms()
    assert abs(now - (anchor + (real - anchor) * 60)) < 60 * 50


def test_two_clocks_built_from_the_same_settings_agree() -> None:
    anchor = int(time.time() * 1000)
    a, b = SystemClock(120, anchor), SystemClock(120, anchor)
    assert abs(a.now_ms() - b.now_ms()) < 120 * 20


def test_accelerated_clock_requires_anchor_and_positive_speed() -> None:
    with pytest.raises(ValueError):
        SystemClock(speed=10)
    with pytest.raises(ValueError):
        SystemClock(speed=0, anchor_ms=0)


async def test_sleep_until_in_market_time_waits_scaled_real_time() -> None:
    clock = SystemClock(speed=100, anchor_ms=int(time.time() * 1000))
    target = clock.now_ms() + 5_000  # five market seconds = 50 real ms
    await asyncio.wait_for(clock.sleep_until(target), 2.0)
    assert clock.now_ms() >= target


async def test_manual_clock_wakes_sleepers_when_advanced() -> None:
    clock = ManualClock(1_000)
    woke: list[int] = []

    async def sleeper() -> None:
        await clock.sleep_until(5_000)
        woke.append(clock.now_ms())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    clock.advance(3_000)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(1_000)
    await asyncio.wait_for(task, 1)
    assert woke == [5_000]


@pytest.mark.parametrize("text, ms", [
    ("2026-02-22T23:54:35Z", 1771804475000),
    ("2025-07-18T21:00:01.268009+00:00", 1752872401268),
    ("2025-07-18T21:00:01.2680091+00:00", 1752872401268),
    ("2024-12-20T14:00:00+00:00", 1734703200000),
])
def test_venue_timestamps_parse_to_epoch_ms(text: str, ms: int) -> None:
    assert iso_to_ms(text) == ms


def test_iso_round_trip() -> None:
    assert iso_to_ms(ms_to_iso(1771804475123)) == 1771804475123
    assert ms_to_iso(1771804475123) == "2026-02-22T23:54:35.123Z"
