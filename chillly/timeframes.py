"""Timeframes: parsing, bucket bounds, session anchoring and bar validation, in one place.

Every process that cuts time into bars (feeds, aggregator, store, series cache, tools) uses
this module, so a "4h" bar means the same bucket everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from typing import Any

from chillly.calendar import SESSION_OPEN, is_market_open, session_open_ms, trading_date
from chillly.clock import DAY_MS, HOUR_MS, MINUTE_MS

_TF_RE = re.compile(r"^([1-9][0-9]{0,4})([mh])$")

#: Timeframes anchored to the session by default (the issue: 4h and daily bars).
DEFAULT_SESSION_TFS = ("4h", "1d")
DEFAULT_TFS = ("5m", "15m", "30m", "1h", "4h", "1d")

def tf_ms(tf: str) -> int:
    """Length of a timeframe string ("5m", "2h", "1d") in ms; ValueError if not whole."""
    if tf == "1d":
        return DAY_MS
    m = _TF_RE.match(tf)
    if not m:
        raise ValueError(f"bad timeframe {tf!r}: expected a whole 'Nm', 'Nh' or '1d'")
    n = int(m.group(1))
    ms = n * (MINUTE_MS if m.group(2) == "m" else HOUR_MS)
    if ms > DAY_MS:
        raise ValueError(f"bad timeframe {tf!r}: longer than a day (use 1d)")
    return ms


_GOOD_TFS: set[str] = {"1m"}


def bar_problem(p: dict[str, Any]) -> str | None:
    """Why a schema-valid bar payload cannot be stored or aggregated, or None (hot path)."""
    tf = p["tf"]
    if tf not in _GOOD_TFS:
        try:
            tf_ms(tf)
        except ValueError:
            return f"bad timeframe {tf!r}"
        _GOOD_TFS.add(tf)
    if p["t"] % 60_000:
        return f"open time {p['t']} is not on a minute"
    if not p["l"] <= p["h"] or p["volume"] < 0:
        return "low above high or negative volume"
    return None


@dataclass(frozen=True)
class BucketSpec:
    """How one timeframe cuts time into buckets."""

    tf: str
    ms: int
    session: bool = False
    session_open: time = SESSION_OPEN
    use_calendar: bool = True

    @classmethod
    def of(cls, tf: str, session_tfs: Iterable[str] = DEFAULT_SESSION_TFS,
           session_open: time = SESSION_OPEN, use_calendar: bool = True) -> "BucketSpec":
        ms = tf_ms(tf)
        if ms == MINUTE_MS:
            raise ValueError("1m is the input timeframe, not an aggregate")
        return cls(tf, ms, tf in set(session_tfs), session_open, use_calendar)

    def bounds(self, t: int) -> tuple[int, int]:
        """[start, end) of the bucket holding the minute that opens at `t`."""
        if not self.session:
            start = t - t % self.ms
            return start, start + self.ms
        return _session_bounds(t, self.ms, self.session_open)

    def last_minute(self, start: int, end: int) -> int:
        """Open time of the last tradable minute of a bucket (end - 1m without the calendar)."""
        if not self.use_calendar:
            return end - MINUTE_MS
        return _last_open_minute(start, end)


@lru_cache(maxsize=4096)
def _session_bounds(t: int, ms: int, open_at: time) -> tuple[int, int]:
    day = trading_date(t, open_at)
    s_start = session_open_ms(day, open_at)
    s_end = session_open_ms(day.fromordinal(day.toordinal() + 1), open_at)
    if ms >= DAY_MS:
        return s_start, s_end   # the whole session, 23 or 25 hours around a DST change
    start = s_start + ((t - s_start) // ms) * ms
    return start, min(start + ms, s_end)


@lru_cache(maxsize=4096)
def _last_open_minute(start: int, end: int) -> int:
    m = end - MINUTE_MS
    while m >= start:
        if is_market_open(m):
            return m
        m -= MINUTE_MS
    return end - MINUTE_MS


