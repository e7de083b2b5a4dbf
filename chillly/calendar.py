"""The CME Globex trading calendar, shared by the sim, the aggregator and the risk gate.

The trading day opens at 17:00 America/Chicago (DST aware) and belongs to the *next* calendar
date (Sunday 17:00 CT opens Monday's session). The market halts 16:00-17:00 CT each day and is
closed from Friday 16:00 CT to Sunday 17:00 CT. Topstep's flat-by time (15:10 CT) and its daily
reset (17:00 CT) come from the same calendar. Holidays are not modelled.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

CHICAGO = ZoneInfo("America/Chicago")
SESSION_OPEN = time(17, 0)
SESSION_HALT = time(16, 0)
FLAT_BY = time(15, 10)


def _ct(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).astimezone(CHICAGO)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def trading_date(ms: int, open_at: time = SESSION_OPEN) -> date:
    """The session date a timestamp belongs to: at or after 17:00 CT counts as the next day."""
    local = _ct(ms)
    d = local.date()
    if local.timetz().replace(tzinfo=None) >= open_at:
        d += timedelta(days=1)
    return d


def session_open_ms(day: date, open_at: time = SESSION_OPEN) -> int:
    """Epoch ms at which the session for trading date `day` opened (17:00 CT the evening before)."""
    prev = day - timedelta(days=1)
    return _ms(datetime.combine(prev, open_at, tzinfo=CHICAGO))


def session_start_ms(ms: int, open_at: time = SESSION_OPEN) -> int:
    """Open time of the session containing `ms` (the daily-bar anchor)."""
    return session_open_ms(trading_date(ms, open_at), open_at)


def flat_by_ms(day: date) -> int:
    """Topstep's flat-by time (15:10 CT) for trading date `day`."""
    return _ms(datetime.combine(day, FLAT_BY, tzinfo=CHICAGO))


def halt_ms(day: date) -> int:
    """The 16:00 CT close of trading date `day`."""
    return _ms(datetime.combine(day, SESSION_HALT, tzinfo=CHICAGO))


def is_market_open(ms: int) -> bool:
    """Globex hours: Sunday 17:00 CT to Friday 16:00 CT, halted 16:00-17:00 CT daily."""
    local = _ct(ms)
    wd = local.weekday()  # Monday 0 .. Sunday 6
    t = local.timetz().replace(tzinfo=None)
    if wd == 5:
        return False
    if wd == 6:
        return t >= SESSION_OPEN
    if wd == 4 and t >= SESSION_HALT:
        return False
    return not (SESSION_HALT <= t < SESSION_OPEN)


def next_open_ms(ms: int) -> int:
    """The next moment at or after `ms` when the market is open (ms itself if open)."""
    if is_market_open(ms):
        return ms
    local = _ct(ms)
    day = local.date()
    for i in range(0, 8):
        candidate = _ms(datetime.combine(day + timedelta(days=i), SESSION_OPEN, tzinfo=CHICAGO))
        if candidate >= ms and is_market_open(candidate):
            return candidate
    raise RuntimeError("no market open found within a week")  # unreachable for Globex hours
