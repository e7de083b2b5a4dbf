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


# -- holidays and early closes (the CME table from the `holidays` library) ---------------------

def ct(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    """Epoch ms of a Chicago wall-clock time."""
    from chillly.calendar import CHICAGO
    return int(datetime(y, mo, d, h, mi, tzinfo=CHICAGO).timestamp() * 1000)


def test_christmas_is_closed_and_christmas_eve_closes_at_noon() -> None:
    from chillly.calendar import is_trading_day, next_session_open_ms, session_close_ms
    assert is_market_open(ct(2026, 12, 24, 11, 59))
    assert not is_market_open(ct(2026, 12, 24, 12, 0))          # early close
    assert not is_market_open(ct(2026, 12, 24, 17, 30))         # no session for the 25th
    assert not is_market_open(ct(2026, 12, 25, 10))
    assert not is_trading_day(date(2026, 12, 25))
    assert session_close_ms(date(2026, 12, 24)) == ct(2026, 12, 24, 12)
    # Friday the 25th closed, then the weekend: Sunday 17:00 CT opens Monday the 28th.
    assert next_open_ms(ct(2026, 12, 24, 12)) == ct(2026, 12, 27, 17)
    assert next_session_open_ms(ct(2026, 12, 24, 12)) == ct(2026, 12, 27, 17)


def test_good_friday_and_thanksgiving_have_no_session() -> None:
    assert is_market_open(ct(2026, 4, 2, 15, 59))
    assert not is_market_open(ct(2026, 4, 2, 18))               # Thursday evening: no Friday
    assert not is_market_open(ct(2026, 4, 3, 9))
    assert next_open_ms(ct(2026, 4, 3, 9)) == ct(2026, 4, 5, 17)
    # Thanksgiving Thursday closed; Thursday 17:00 CT opens Friday, which closes at noon.
    assert not is_market_open(ct(2026, 11, 25, 18))
    assert not is_market_open(ct(2026, 11, 26, 11))
    assert is_market_open(ct(2026, 11, 26, 17))
    assert is_market_open(ct(2026, 11, 27, 11, 59))
    assert not is_market_open(ct(2026, 11, 27, 12))


def test_mlk_day_opens_sunday_halts_at_noon_and_reopens_at_17() -> None:
    from chillly.calendar import early_close, session_close_ms
    assert is_market_open(ct(2026, 1, 18, 17))
    assert is_market_open(ct(2026, 1, 19, 11, 59))
    assert not is_market_open(ct(2026, 1, 19, 12, 0))
    assert not is_market_open(ct(2026, 1, 19, 16, 59))
    assert is_market_open(ct(2026, 1, 19, 17, 0))                # Tuesday's session
    assert early_close(date(2026, 1, 19)) is not None
    assert early_close(date(2026, 1, 20)) is None
    assert session_close_ms(date(2026, 1, 20)) == ct(2026, 1, 20, 16)


def test_flat_by_moves_earlier_on_an_early_close() -> None:
    assert flat_by_ms(date(2026, 11, 27)) == ct(2026, 11, 27, 11, 10)   # 50 min before 12:00
    assert flat_by_ms(date(2026, 11, 25)) == ct(2026, 11, 25, 15, 10)
    # A day without a session: flat from its nominal open on.
    assert flat_by_ms(date(2026, 12, 25)) == ct(2026, 12, 24, 17)


def test_every_early_close_label_of_the_library_is_understood() -> None:
    """Our only reading of the library's text: its 'markets pause at HH:MMam/pm CT' labels."""
    import holidays.financial.chicago_mercantile_exchange as lib
    from chillly.calendar import _parse_pause
    from datetime import time
    for year in range(2000, 2041):
        for day, label in lib.XCME(years=year, categories=("half_day",), language="en_US").items():
            assert "pause at" in label, (day, label)
            assert _parse_pause(label) in (time(10, 30), time(12, 0)), (day, label)


def test_the_cached_answer_equals_the_uncached_one_in_any_order() -> None:
    """is_market_open remembers its last stretch: a random walk over two years agrees with a
    fresh computation every time."""
    import random
    from chillly.calendar import _stretch
    rng = random.Random(7)
    lo, hi = ct(2025, 12, 1, 0), ct(2027, 1, 15, 0)
    t = lo
    for _ in range(20_000):
        t = rng.randrange(lo, hi) if rng.random() < 0.5 else t + rng.randrange(-7200_000, 7200_000)
        assert is_market_open(t) == _stretch(t)[2], t


def test_the_written_out_table_is_the_librarys_for_every_year_it_holds() -> None:
    """chillly/cme_table.py spares each process the library's import; it must say what the
    installed library says (after an upgrade that changes a day: `python -m chillly.cme_table`)."""
    from chillly.calendar import _year_table, library_year_table
    from chillly.cme_table import FIRST_YEAR, LAST_YEAR, YEARS, render
    assert sorted(YEARS) == list(range(FIRST_YEAR, LAST_YEAR + 1))
    for year in YEARS:
        assert _year_table(year) == library_year_table(year), year
    import chillly.cme_table as table
    from pathlib import Path
    assert render() == Path(table.__file__).read_text()             # as the generator writes it


def test_a_year_outside_the_written_table_asks_the_library() -> None:
    from chillly.calendar import _year_table, library_year_table
    from chillly.cme_table import LAST_YEAR
    year = LAST_YEAR + 3
    closed, early = _year_table(year)
    assert closed and (closed, early) == library_year_table(year)
