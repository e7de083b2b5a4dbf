"""The CME Globex trading calendar, shared by the sim, the feeds, the aggregator and the risk gate.

The trading day opens at 17:00 America/Chicago (DST aware) and belongs to the *next* calendar
date (Sunday 17:00 CT opens Monday's session). The market halts 16:00-17:00 CT each day and is
closed from Friday 16:00 CT to Sunday 17:00 CT. Topstep's flat-by time (15:10 CT) and its daily
reset (17:00 CT) come from the same calendar.

Holidays and early closes come from the `holidays` library's CME table (XCME), not from rules
written here: a full holiday (New Year, Good Friday, Thanksgiving, Christmas, days of mourning)
has no session at all, so the market stays closed from the previous close to 17:00 CT on the
holiday evening, when the next trading day's session opens; an early-close day (MLK, Presidents,
Memorial, Juneteenth, July 3, Labor Day, the Friday after Thanksgiving, Christmas Eve) opens as
usual and halts at the library's time (12:00 CT since 2015). A day without a session is modelled
as an empty one: it closes the moment it would have opened, so every function below is total.

Hot path: `is_market_open` remembers the last [start, end) stretch it answered for (open or
closed) and per trading date its session bounds, so a call inside a known stretch is two integer
comparisons. The library's table for the years a process is likely to ask is written out in
chillly/cme_table.py (a unit test holds it equal to the library's), so a process does not import
the library (about 0.2 s of CPU) to start; another year asks the library, once per process.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

CHICAGO = ZoneInfo("America/Chicago")
SESSION_OPEN = time(17, 0)
SESSION_HALT = time(16, 0)
FLAT_BY = time(15, 10)
#: How long before the close Topstep wants every position flat: 15:10 CT on a 16:00 close. On an
#: early-close day the deadline keeps the same lead (12:00 CT close -> flat by 11:10 CT).
FLAT_BY_LEAD_MS = 50 * 60_000

_PAUSE_RE = re.compile(r"pause at (\d{1,2}):(\d{2})\s*(am|pm)", re.IGNORECASE)
#: An early close whose time the library's label does not say: the most common CME halt.
_DEFAULT_EARLY_CLOSE = time(12, 0)


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
    """Epoch ms at which the session for trading date `day` opens (17:00 CT the evening before).

    The nominal open, also for a day without a session (see `is_trading_day`): it anchors the
    daily bar and the trading-date boundary either way.
    """
    prev = day - timedelta(days=1)
    return _ms(datetime.combine(prev, open_at, tzinfo=CHICAGO))


def session_start_ms(ms: int, open_at: time = SESSION_OPEN) -> int:
    """Open time of the session containing `ms` (the daily-bar anchor)."""
    return session_open_ms(trading_date(ms, open_at), open_at)


# -- holidays and early closes (the library's table, per year, cached) ---------------------------

def _parse_pause(label: str) -> time:
    m = _PAUSE_RE.search(label)
    if not m:
        return _DEFAULT_EARLY_CLOSE
    hour, minute, half = int(m.group(1)) % 12, int(m.group(2)), m.group(3).lower()
    return time(hour + (12 if half == "pm" else 0), minute)


def library_year_table(year: int) -> tuple[frozenset[date], dict[date, time]]:
    """(full holidays, early closes with their CT halt time) of one year, asked of the library.

    The source of truth; chillly/cme_table.py is its answer for the years a process is likely to
    ask, written out so that a process need not import the library (~0.2 s) to start.
    """
    from holidays.financial.chicago_mercantile_exchange import XCME  # lazy: ~0.2 s import

    closed = frozenset(XCME(years=year, language="en_US").keys())
    early = {d: _parse_pause(str(label))
             for d, label in XCME(years=year, categories=("half_day",), language="en_US").items()
             if d not in closed}
    return closed, early


@lru_cache(maxsize=64)
def _year_table(year: int) -> tuple[frozenset[date], dict[date, time]]:
    """(full holidays, early closes with their CT halt time) of one calendar year: the written
    out table (chillly/cme_table.py, equal to the library's: tests/unit/test_calendar.py) or,
    for a year it does not hold, the library itself."""
    from chillly.cme_table import YEARS

    written = YEARS.get(year)
    if written is None:
        return library_year_table(year)
    closed_days, early_days = written
    closed = frozenset(date(year, int(md[:2]), int(md[2:])) for md in closed_days.split())
    early = {date(year, int(entry[:2]), int(entry[2:4])): time(int(entry[5:7]), int(entry[7:]))
             for entry in early_days.split()}
    return closed, early


def holiday_table(year: int) -> tuple[frozenset[date], dict[date, time]]:
    """The CME full holidays and early closes (date -> CT close) of `year`, from the library."""
    closed, early = _year_table(year)
    return closed, dict(early)


def is_trading_day(day: date) -> bool:
    """Whether trading date `day` has a session: Monday-Friday and not a CME holiday."""
    return day.weekday() < 5 and day not in _year_table(day.year)[0]


def early_close(day: date) -> time | None:
    """The CT halt time of an early-close trading date, or None on a regular or closed day."""
    if not is_trading_day(day):
        return None
    return _year_table(day.year)[1].get(day)


@lru_cache(maxsize=4096)
def _session(day: date) -> tuple[int, int]:
    """[open, close) of trading date `day` in epoch ms; empty (close == open) without a session."""
    start = session_open_ms(day)
    if not is_trading_day(day):
        return start, start
    halt = _year_table(day.year)[1].get(day, SESSION_HALT)
    return start, _ms(datetime.combine(day, halt, tzinfo=CHICAGO))


def session_close_ms(day: date) -> int:
    """When the session of trading date `day` closes: 16:00 CT, or the early close.

    A day without a session (weekend, holiday) closes as it opens: `session_open_ms(day)`.
    """
    return _session(day)[1]


def halt_ms(day: date) -> int:
    """The close of trading date `day` (16:00 CT, earlier on an early close): session_close_ms."""
    return session_close_ms(day)


def flat_by_ms(day: date) -> int:
    """Topstep's flat-by deadline for trading date `day`.

    15:10 CT on a regular day; on an early close the same 50 minutes before it (12:00 CT -> 11:10
    CT); on a day without a session its nominal open (nothing may be held into it).
    """
    start, close = _session(day)
    if close == start:
        return start
    regular = _ms(datetime.combine(day, FLAT_BY, tzinfo=CHICAGO))
    return min(regular, close - FLAT_BY_LEAD_MS)


# -- the hot path ----------------------------------------------------------------------------------

_last: tuple[int, int, bool] = (0, 0, False)   # the last stretch answered: [start, end), open


def _stretch(ms: int) -> tuple[int, int, bool]:
    """The stretch of constant open/closed state around `ms` (bounded by one trading date)."""
    day = trading_date(ms)
    start, close = _session(day)
    if ms < close:
        return start, close, True
    return max(start, close), session_open_ms(day + timedelta(days=1)), False


def is_market_open(ms: int) -> bool:
    """Globex hours: Sunday 17:00 CT to Friday 16:00 CT, halted 16:00-17:00 CT daily, closed on
    CME holidays and from an early close to 17:00 CT."""
    global _last
    start, end, is_open = _last
    if start <= ms < end:
        return is_open
    _last = stretch = _stretch(ms)
    return stretch[2]


def next_session_open_ms(ms: int) -> int:
    """The open of the first session that opens at or after `ms` (skips weekends and holidays)."""
    day = trading_date(ms)
    if session_open_ms(day) < ms:
        day += timedelta(days=1)
    for _ in range(30):
        if is_trading_day(day):
            return session_open_ms(day)
        day += timedelta(days=1)
    raise RuntimeError("no CME session found within 30 days")  # unreachable for the CME table


def next_open_ms(ms: int) -> int:
    """The next moment at or after `ms` when the market is open (ms itself if open)."""
    return ms if is_market_open(ms) else next_session_open_ms(ms)


def closed_note(now_ms: int, speed: float = 1.0) -> str | None:
    """For a tool a trader watches (tap, bars, status): None while the market is open, else
    one line saying it is closed and when it opens (CT, and how long from now in real time at
    CLOCK_SPEED), so nothing moving is not mistaken for a fault."""
    if is_market_open(now_ms):
        return None
    opens = next_session_open_ms(now_ms)
    real_s = max(0, int((opens - now_ms) / 1000 / speed))
    hours, rest = divmod(real_s, 3600)
    wait = f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
    return (f"the market is closed; it opens {_ct(opens):%a %Y-%m-%d %H:%M} CT, in {wait}"
            + (f" at CLOCK_SPEED={speed:g}" if speed != 1.0 else ""))
