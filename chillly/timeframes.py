"""Timeframes: parsing, bucket bounds, session anchoring and bar validation, in one place.

Every process that cuts time into bars (feeds, aggregator, store, series cache, tools) uses
this module, so a "4h" bar means the same bucket everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from chillly.calendar import (SESSION_OPEN, closed_note, is_market_open, session_open_ms,
                              trading_date)
from chillly.clock import DAY_MS, HOUR_MS, MINUTE_MS, clock_from_settings
from chillly.settings import Settings

_TF_RE = re.compile(r"^([1-9][0-9]{0,4})([mh])$")

#: Timeframes anchored to the session by default (the issue: 4h and daily bars).
DEFAULT_SESSION_TFS = ("4h", "1d")
DEFAULT_TFS = ("5m", "15m", "30m", "1h", "4h", "1d")

#: Largest volume a bar may carry. Far above any real futures volume (ES trades a few million
#: contracts a day) and low enough that a day of 1m bars summed still fits SQLite's signed
#: 64-bit INTEGER (1440 * 10**15 < 2**63): a bar beyond it is garbage, not a busy minute.
MAX_VOLUME = 10**15
#: Largest `rev` accepted (a publisher's counter; far below SQLite's limit).
MAX_REV = 2**53
#: Open times beyond this (year 2286) are garbage whatever the clock says.
MAX_T = 10**13


def parse_tf(tf: str) -> tuple[int, str]:
    """A timeframe string as (count, unit) with unit "m", "h" or "d"; ValueError if bad.

    The one parser: "Nm" and "Nh" (N >= 1, at most a day long) and "1d". Venue mappings
    (topstepx.client.tf_to_unit) and settings validators build on it.
    """
    if tf == "1d":
        return 1, "d"
    m = _TF_RE.match(tf) if isinstance(tf, str) else None
    if not m:
        raise ValueError(f"bad timeframe {tf!r}: expected a whole 'Nm', 'Nh' or '1d'")
    n, unit = int(m.group(1)), m.group(2)
    if n * (MINUTE_MS if unit == "m" else HOUR_MS) > DAY_MS:
        raise ValueError(f"bad timeframe {tf!r}: longer than a day (use 1d)")
    return n, unit


def tf_ms(tf: str) -> int:
    """Length of a timeframe string ("5m", "2h", "1d") in ms; ValueError if not whole."""
    n, unit = parse_tf(tf)
    return n * (MINUTE_MS if unit == "m" else HOUR_MS if unit == "h" else DAY_MS)


def is_tf(tf: object) -> bool:
    """True for a timeframe `parse_tf` accepts."""
    try:
        parse_tf(tf)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def tf_arg(text: str) -> str:
    """argparse `type=` of a tool's --tf option: the timeframe, or a clear usage error."""
    import argparse

    try:
        parse_tf(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def tf_list(value: Any, *, aggregates: bool = False) -> Any:
    """Settings validator for a comma-separated list of timeframes ("1m,5m,1h"): the list, or
    ValueError naming the bad one. `aggregates` refuses 1m (the aggregator's input)."""
    if isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list):
        for tf in value:
            parse_tf(tf)
            if aggregates and tf == "1m":
                raise ValueError("1m is the input timeframe, not an aggregate")
    return value


# --------------------------------------------------------------------------- bar validation
#
# One check for every consumer (store, series, aggregator): a bar that passes is storable and
# aggregatable; one that fails is rejected alone and counted, never written, never aggregated.

_GOOD_TFS: set[str] = {"1m"}
_isfinite = math.isfinite


def _values_problem(t: int, o: float, h: float, lo: float, c: float, volume: int,
                    now_ms: int | None, future_ms: int) -> str | None:
    if not (_isfinite(o) and _isfinite(h) and _isfinite(lo) and _isfinite(c)):
        return "a price is not a finite number"
    if lo < 0:
        return "negative price"
    if not lo <= h:
        return "low above high"
    if not (lo <= o <= h and lo <= c <= h):
        return "open or close outside low..high"
    if not 0 <= volume <= MAX_VOLUME:
        return f"volume {volume} out of range 0..{MAX_VOLUME}"
    if not 0 <= t <= MAX_T or t % MINUTE_MS:
        return f"open time {t} is not on a minute"
    if now_ms is not None and t > now_ms + future_ms:
        return f"dated in the future ({(t - now_ms) // 1000} s ahead of market time)"
    return None


def bar_problem(p: dict[str, Any], now_ms: int | None = None, future_ms: int = 0
                ) -> str | None:
    """Why a schema-valid bar payload (or `Bar.body()`) cannot be stored or aggregated, or None.

    `now_ms` (market time) with `future_ms` (the tolerance) rejects a bar opening later than
    now + tolerance: a future bar would make every real bar after it look late (hot path).
    """
    tf = p["tf"]
    if tf not in _GOOD_TFS:
        if not is_tf(tf):
            return f"bad timeframe {tf!r}"
        _GOOD_TFS.add(tf)
    rev = p.get("rev", 0)
    if not 0 <= rev <= MAX_REV:
        return f"rev {rev} out of range"
    return _values_problem(p["t"], p["o"], p["h"], p["l"], p["c"], p["volume"], now_ms,
                           future_ms)


def row_problem(row: Any, now_ms: int | None = None, future_ms: int = 0) -> str | None:
    """Why a BarBatch row `[t, o, h, l, c, volume]` is not a storable final bar, or None."""
    if type(row) is not list or len(row) != 6:
        return "row is not [t, o, h, l, c, volume]"
    t, o, h, lo, c, v = row
    if type(t) is not int or type(v) is not int:
        return "t and volume must be integers"
    for x in (o, h, lo, c):
        if type(x) is not float and type(x) is not int:
            return "prices must be numbers"
    return _values_problem(t, o, h, lo, c, v, now_ms, future_ms)


class TimeframeSettings(Settings):
    """How every process cuts and judges bars; the feeds, the aggregator, the store and the
    series cache read the same variables, so they agree on buckets and on "too far ahead"."""

    # Market hours: the CME calendar, or "always" (a venue that never closes, e.g. the sim
    # with SIM_ALWAYS_OPEN). Decides when buckets complete and which clock ticks are sent.
    feed_market_hours: Literal["cme", "always"] = "cme"
    # The bars the aggregator builds from final 1m bars (1m itself comes from the feeds).
    aggregator_timeframes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_TFS))
    aggregator_session_timeframes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SESSION_TFS))
    aggregator_session_open: str = "17:00"  # America/Chicago
    # Market seconds a bar may be dated ahead of this process's clock before it is rejected.
    bar_future_tolerance: float = Field(default=120.0, ge=0, le=86_400)

    @field_validator("aggregator_session_timeframes", "aggregator_timeframes", mode="before")
    @classmethod
    def _session_tfs(cls, value: Any) -> Any:
        return tf_list(value, aggregates=True)

    @property
    def bar_timeframes(self) -> list[str]:
        """Every timeframe the system publishes and stores bars of: 1m and the aggregates."""
        return ["1m", *dict.fromkeys(self.aggregator_timeframes)]

    def closed_note(self) -> str | None:
        """"The market is closed; it opens ..." at this process's market time, or None while
        it is open or when the market never closes (FEED_MARKET_HOURS=always)."""
        if self.feed_market_hours == "always":
            return None
        clock = clock_from_settings(self)
        return closed_note(clock.now_ms(), clock.speed)

    @field_validator("aggregator_session_open")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("expected HH:MM (America/Chicago), e.g. 17:00")
        return value

    @property
    def future_ms(self) -> int:
        return int(self.bar_future_tolerance * 1000)

    def session_open(self) -> time:
        hh, mm = map(int, self.aggregator_session_open.split(":"))
        return time(hh, mm)

    def spec(self, tf: str) -> "BucketSpec":
        """The bucket rule of `tf` under these settings (ValueError for a bad tf or 1m)."""
        return BucketSpec.of(tf, self.aggregator_session_timeframes, self.session_open(),
                             use_calendar=self.feed_market_hours == "cme")


_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


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

    def first_minute(self, start: int, end: int) -> int:
        """Open time of the first tradable minute of a bucket (its start without the calendar)."""
        if not self.use_calendar:
            return start
        return _first_open_minute(start, end)

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
def _first_open_minute(start: int, end: int) -> int:
    m = start
    while m < end:
        if is_market_open(m):
            return m
        m += MINUTE_MS
    return start


@lru_cache(maxsize=4096)
def _last_open_minute(start: int, end: int) -> int:
    m = end - MINUTE_MS
    while m >= start:
        if is_market_open(m):
            return m
        m -= MINUTE_MS
    return end - MINUTE_MS


