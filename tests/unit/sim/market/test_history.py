"""retrieveBars over the tape: buckets, ordering, limits, partial bars, error codes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chillly.clock import DAY_MS, HOUR_MS, MINUTE_MS
from sim.market.history import (DAY, HOUR, MINUTE, MONTH, SECOND, WEEK, BarError, History,
                         bucket_floor)
from sim.market.tape import Tape

ES = "CON.F.US.EP.Z26"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


NOW = ms("2026-11-24T15:07:30")


def hist(always_open: bool = True, days: int = 40) -> History:
    return History(Tape(11, always_open=always_open, history_start_ms=NOW - days * DAY_MS))


def aggregate(prints: list[tuple[int, int, int, int]], a: int, b: int) -> list[int] | None:
    inside = [p for p in prints if a <= p[0] < b]
    if not inside:
        return None
    ps = [p[1] for p in inside]
    return [a, ps[0], max(ps), min(ps), ps[-1], sum(p[2] for p in inside)]


def all_prints(h: History, a: int, b: int) -> list[tuple[int, int, int, int]]:
    return [p for m in range(a // MINUTE_MS, b // MINUTE_MS + 1) for p in h.tape.prints(ES, m)
            if a <= p[0] < b and p[0] <= NOW]


@pytest.mark.parametrize("unit,n,span", [(SECOND, 15, 15_000), (MINUTE, 1, MINUTE_MS),
                                         (MINUTE, 5, 5 * MINUTE_MS), (HOUR, 1, HOUR_MS)])
def test_bars_aggregate_exactly_the_prints(unit: int, n: int, span: int) -> None:
    h = hist()
    start = NOW - 3 * HOUR_MS
    bars = h.retrieve(ES, start, NOW + 1, unit, n, 20_000, True, NOW)
    prints = all_prints(h, start, NOW + 1)
    assert bars == sorted(bars, key=lambda b: -b[0])  # newest first
    expected = []
    a = bucket_floor(start, unit, n)
    if a < start:
        a += span
    while a <= NOW:
        agg = aggregate(prints, a, a + span)
        if agg is not None:
            expected.append(agg)
        a += span
    assert bars == expected[::-1]


def test_limit_keeps_the_newest_and_partial_bar_is_optional() -> None:
    h = hist()
    full = h.retrieve(ES, NOW - HOUR_MS, NOW + MINUTE_MS, MINUTE, 1, 100, True, NOW)
    assert full[0][0] == NOW - NOW % MINUTE_MS  # the forming minute
    assert h.retrieve(ES, NOW - HOUR_MS, NOW + MINUTE_MS, MINUTE, 1, 3, True, NOW) == full[:3]
    closed = h.retrieve(ES, NOW - HOUR_MS, NOW + MINUTE_MS, MINUTE, 1, 100, False, NOW)
    assert closed == full[1:]


def test_window_is_half_open_on_bar_open_time() -> None:
    h = hist()
    a = ms("2026-11-24T14:00:00")
    bars = h.retrieve(ES, a, a + 10 * MINUTE_MS, MINUTE, 1, 100, False, NOW)
    assert [b[0] for b in bars] == [a + i * MINUTE_MS for i in range(9, -1, -1)]


def test_partial_bar_holds_only_prints_up_to_now() -> None:
    h = hist()
    bar = h.retrieve(ES, NOW - MINUTE_MS, NOW + MINUTE_MS, MINUTE, 1, 1, True, NOW)[0]
    assert bar == aggregate(all_prints(h, bar[0], NOW + 1), bar[0], bar[0] + MINUTE_MS)
    later = h.retrieve(ES, NOW - MINUTE_MS, NOW + MINUTE_MS, MINUTE, 1, 1, True, NOW + 20_000)[0]
    assert later[5] >= bar[5]


def test_day_week_month_buckets_are_utc_aligned() -> None:
    h = hist(days=30)
    days = h.retrieve(ES, NOW - 10 * DAY_MS, NOW, DAY, 1, 5, False, NOW)
    assert all(b[0] % DAY_MS == 0 for b in days) and len(days) == 5
    hours = h.retrieve(ES, days[0][0], days[0][0] + DAY_MS, HOUR, 1, 24, False, NOW)
    assert days[0][5] == sum(b[5] for b in hours)
    assert days[0][2] == max(b[2] for b in hours) and days[0][1] == hours[-1][1]
    weeks = h.retrieve(ES, NOW - 20 * DAY_MS, NOW, WEEK, 1, 3, True, NOW)
    assert [datetime.fromtimestamp(b[0] / 1000, timezone.utc).strftime("%a %d")
            for b in weeks] == ["Sun 22", "Sun 15", "Sun 08"]
    months = h.retrieve(ES, ms("2026-11-01T00:00:00"), NOW, MONTH, 1, 5, True, NOW)
    assert [b[0] for b in months] == [ms("2026-11-01T00:00:00")]
    assert months[0][5] == sum(b[5] for b in h.retrieve(ES, months[0][0], NOW + 1, DAY, 1, 40,
                                                         True, NOW))
    assert bucket_floor(NOW, MONTH, 3) == ms("2026-10-01T00:00:00")
    assert bucket_floor(NOW, WEEK, 1) == ms("2026-11-22T00:00:00")


def test_closed_market_leaves_gaps_not_empty_bars() -> None:
    h = hist(always_open=False)
    sat = ms("2026-11-21T12:00:00")
    assert h.retrieve(ES, sat, sat + 2 * HOUR_MS, MINUTE, 1, 100, True, NOW) == []
    sunday = h.retrieve(ES, ms("2026-11-22T20:00:00"), ms("2026-11-23T02:00:00"), HOUR, 1, 10,
                        False, NOW)
    assert [datetime.fromtimestamp(b[0] / 1000, timezone.utc).hour for b in sunday] == [1, 0, 23]


def test_nothing_before_the_history_horizon() -> None:
    h = hist(days=2)
    assert h.retrieve(ES, NOW - 10 * DAY_MS, NOW - 3 * DAY_MS, HOUR, 1, 100, True, NOW) == []


@pytest.mark.parametrize("unit,n,limit,code", [(0, 1, 10, 2), (7, 1, 10, 2), (9, 1, 10, 2),
                                               (2, 0, 10, 3), (2, 1, 0, 4), (2, 1, 20_001, 4)])
def test_invalid_requests_have_the_venue_error_codes(unit: int, n: int, limit: int,
                                                     code: int) -> None:
    with pytest.raises(BarError) as err:
        hist().retrieve(ES, NOW - HOUR_MS, NOW, unit, n, limit, True, NOW)
    assert err.value.code == code


def test_twenty_thousand_minute_bars_in_one_request() -> None:
    h = hist(days=20)
    bars = h.retrieve(ES, NOW - 20 * DAY_MS, NOW, MINUTE, 1, 20_000, False, NOW)
    assert len(bars) == 20_000


def test_revise_after_final_serves_a_closed_minute_without_its_last_print_for_a_while() -> None:
    """SIM_REVISE_AFTER_FINAL: a lagging venue whose final bar is later revised."""
    h = History(Tape(11, always_open=True, history_start_ms=NOW - DAY_MS), 20_000)
    m = (NOW // MINUTE_MS) - 1                     # the minute that closed 30 s before NOW
    a, b = m * MINUTE_MS, (m + 1) * MINUTE_MS
    prints = h.tape.prints(ES, m)
    assert len(prints) >= 2
    early = h.retrieve(ES, a, b, MINUTE, 1, 10, False, b + 5_000)
    late = h.retrieve(ES, a, b, MINUTE, 1, 10, False, b + 20_000)
    assert late == [aggregate(prints, a, b)]
    assert early == [aggregate(prints[:-1], a, b)] and early != late
    # Hours are not cached while one of their minutes may still be revised.
    hour = (b - HOUR_MS) - (b - HOUR_MS) % HOUR_MS
    h.retrieve(ES, hour, hour + HOUR_MS, HOUR, 1, 10, False, b + 5_000)
    assert h.retrieve(ES, hour, hour + HOUR_MS, HOUR, 1, 10, False, b + 3 * HOUR_MS)[-1] == \
        hist(days=1).retrieve(ES, hour, hour + HOUR_MS, HOUR, 1, 10, False,
                              b + 3 * HOUR_MS)[-1]
