"""The calendar seam of the risk gate: trading days, closes and the day's deadlines.

The core asks three things of a calendar (`RiskCalendar`): which trading date an instant belongs
to, when that date's session opens (17:00 CT the evening before) and when its market closes
(16:00 CT normally, earlier on a CME early close, None on a holiday). `CmeCalendar` answers from
`chillly.calendar` (CME holidays and early closes); tests inject their own closes. `Deadlines` turns a close into the gate's three times: a normal day's
configured CT times (15:00 / 15:05 / 15:10) move earlier by as much as the close does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol

from chillly import calendar as cme

NORMAL_CLOSE = time(16, 0)


class RiskCalendar(Protocol):
    def trading_date(self, ms: int) -> date: ...

    def session_open_ms(self, day: date) -> int: ...

    def close_ms(self, day: date) -> int | None: ...


class AlwaysOpenCalendar:
    """RISK_MARKET_HOURS=always (a sim with SIM_ALWAYS_OPEN): every day has a session that runs
    until the next one opens, so no hours rule and no flat window; the 17:00 CT reset stays."""

    flat_window = False

    def trading_date(self, ms: int) -> date:
        return cme.trading_date(ms)

    def session_open_ms(self, day: date) -> int:
        return cme.session_open_ms(day)

    def close_ms(self, day: date) -> int | None:
        return cme.session_open_ms(day + timedelta(days=1))


class CmeCalendar:
    """The CME Globex calendar of the kernel (its holidays and early closes), plus any closes
    given here (tests, or a product that closes earlier)."""

    def __init__(self, early_closes: dict[date, time] | None = None,
                 holidays: frozenset[date] = frozenset()) -> None:
        self._early = dict(early_closes or {})
        self._holidays = holidays

    def trading_date(self, ms: int) -> date:
        return cme.trading_date(ms)

    def session_open_ms(self, day: date) -> int:
        return cme.session_open_ms(day)

    def close_ms(self, day: date) -> int | None:
        if day in self._holidays or not cme.is_trading_day(day):
            return None
        at = self._early.get(day)
        if at is not None:
            return _ms(day, at)
        return cme.session_close_ms(day)


def _ms(day: date, at: time) -> int:
    return int(datetime.combine(day, at, tzinfo=cme.CHICAGO).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Deadlines:
    """One trading day's boundaries (epoch ms); `close` None on a day without a session."""

    day: date
    start: int          # session open, 17:00 CT the evening before
    end: int            # next session open: the daily reset
    close: int | None
    entry_cutoff: int
    flatten_start: int
    flat_by: int

    @classmethod
    def for_day(cls, cal: RiskCalendar, day: date, cutoff: time, flatten: time,
                flat_by: time) -> "Deadlines":
        start = cal.session_open_ms(day)
        end = cal.session_open_ms(day + timedelta(days=1))
        close = cal.close_ms(day)
        if not getattr(cal, "flat_window", True):
            assert close is not None
            return cls(day, start, end, close, close, close, close)
        if close is None:
            # No session that day: nothing may be entered or held at any time of it.
            return cls(day, start, end, None, start, start, start)
        shift = max(0, _ms(day, NORMAL_CLOSE) - close)
        return cls(day, start, end, close,
                   min(close, _ms(day, cutoff) - shift),
                   min(close, _ms(day, flatten) - shift),
                   min(close, _ms(day, flat_by) - shift))
