"""The CME session calendar, across both DST changes and a weekend."""

from __future__ import annotations

from datetime import date, datetime, timezone

from chillly.calendar import (
    flat_by_ms, is_market_open, next_open_ms, session_start_ms, trading_date,
)


def ms(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=timezone.utc).timestamp() * 1000)


def test_session_opens_at_17_ct_in_winter_and_summer() -> None:
    # Winter (CST, UTC-6): 17:00 CT = 23:00 UTC. Summer (CDT, UTC-5): 22:00 UTC.
    assert session_start_ms(ms(2026, 1, 14, 15)) == ms(2026, 1, 13, 23)
    assert session_start_ms(ms(2026, 7, 14, 15)) == ms(2026, 7, 13, 22)


def test_session_across_the_march_and_november_dst_changes() -> None:
    # DST starts Sunday 2026-03-08: Sunday's 17:00 CT open is already CDT (22:00 UTC).
    assert session_start_ms(ms(2026, 3, 9, 14)) == ms(2026, 3, 8, 22)
    # DST ends Sunday 2026-11-01: Sunday's open is CST (23:00 UTC).
    assert session_start_ms(ms(2026, 11, 2, 14)) == ms(2026, 11, 1, 23)


def test_trading_date_rolls_at_the_open() -> None:
    assert trading_date(ms(2026, 1, 13, 22, 59)) == date(2026, 1, 13)
    assert trading_date(ms(2026, 1, 13, 23, 0)) == date(2026, 1, 14)


def test_weekend_and_daily_halt_are_closed() -> None:
    assert not is_market_open(ms(2026, 1, 17, 12))          # Saturday
    assert not is_market_open(ms(2026, 1, 18, 22))          # Sunday 16:00 CT
    assert is_market_open(ms(2026, 1, 18, 23))              # Sunday 17:00 CT open
    assert not is_market_open(ms(2026, 1, 14, 22, 30))      # daily halt 16:30 CT
    assert is_market_open(ms(2026, 1, 14, 21, 59))          # 15:59 CT
    assert not is_market_open(ms(2026, 1, 16, 22, 30))      # Friday after close
    assert next_open_ms(ms(2026, 1, 17, 12)) == ms(2026, 1, 18, 23)


def test_flat_by_is_15_10_ct() -> None:
    assert flat_by_ms(date(2026, 1, 14)) == ms(2026, 1, 14, 21, 10)
    assert flat_by_ms(date(2026, 7, 14)) == ms(2026, 7, 14, 20, 10)
