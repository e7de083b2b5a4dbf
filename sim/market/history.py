"""History/retrieveBars: bars aggregated from the tape, so history and the live stream agree.

Buckets (AggregateBarUnit, projectx-api.md §4) open on fixed UTC boundaries: second, minute and
hour units are multiples of unitNumber units since the Unix epoch (5-minute bars open at :00,
:05 ...); day bars open at 00:00 UTC (the venue's daily bars are not session-aligned, §3);
week bars at Sunday 00:00 UTC (so a week holds one whole Globex week); month bars on the first of
the month. A bar is stamped with its bucket's open time and holds every print of the bucket up
to the sim's "now". The window is half-open on the bucket open: startTime <= t < endTime.
Empty buckets (market closed) produce no bar. The newest `limit` bars are returned, newest
first. A bar whose bucket has not closed yet is the partial bar (only with includePartialBar).
"""

from __future__ import annotations

from datetime import datetime, timezone

from chillly.clock import DAY_MS, HOUR_MS, MINUTE_MS

from sim.market.tape import Tape

SECOND, MINUTE, HOUR, DAY, WEEK, MONTH = 1, 2, 3, 4, 5, 6
MAX_LIMIT = 20_000
_WEEK_OFFSET_MS = 3 * DAY_MS  # 1970-01-04 was the first Sunday after the epoch
_UNIT_MS = {SECOND: 1000, MINUTE: MINUTE_MS, HOUR: HOUR_MS, DAY: DAY_MS, WEEK: 7 * DAY_MS}

#: A bar in ticks: [t_open_ms, o, h, l, c, v]
Agg = list[int]


class BarError(ValueError):
    """A retrieveBars request the venue answers with an errorCode (RetrieveBarErrorCode)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _month_index(ms: int) -> int:
    d = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return d.year * 12 + d.month - 1


def _month_start(index: int) -> int:
    y, m = divmod(index, 12)
    return int(datetime(y, m + 1, 1, tzinfo=timezone.utc).timestamp() * 1000)


def bucket_floor(t_ms: int, unit: int, n: int) -> int:
    """Open time of the bucket containing t_ms."""
    if unit == MONTH:
        idx = _month_index(t_ms)
        return _month_start(idx - idx % n)
    size = _UNIT_MS[unit] * n
    offset = _WEEK_OFFSET_MS if unit == WEEK else 0
    return (t_ms - offset) // size * size + offset


def bucket_next(open_ms: int, unit: int, n: int) -> int:
    if unit == MONTH:
        return _month_start(_month_index(open_ms) + n)
    return open_ms + _UNIT_MS[unit] * n


def bucket_prev(open_ms: int, unit: int, n: int) -> int:
    if unit == MONTH:
        return _month_start(_month_index(open_ms) - n)
    return open_ms - _UNIT_MS[unit] * n


def _merge(acc: Agg | None, t: int, o: int, h: int, low: int, c: int, v: int) -> Agg:
    """Add a later piece (o, h, l, c, v) to a bar being built in time order."""
    if acc is None:
        return [t, o, h, low, c, v]
    if h > acc[2]:
        acc[2] = h
    if low < acc[3]:
        acc[3] = low
    acc[4] = c
    acc[5] += v
    return acc


class History:
    """Bars over the tape, with complete hours cached (they are the building block of days,
    weeks and months, and of hour bars themselves)."""

    def __init__(self, tape: Tape, revise_after_final_ms: int = 0) -> None:
        self.tape = tape
        # SIM_REVISE_AFTER_FINAL: a lagging venue. For this long after a minute ends, its bar
        # is served without the minute's last print (lower volume, the close of the print
        # before); afterwards the full bar. A client that takes the minute as final early holds
        # a bar the venue later revises (docs/sim.md).
        self.revise_ms = revise_after_final_ms
        self._hours: dict[tuple[str, int], tuple[int, int, int, int, int] | None] = {}

    def prints_agg(self, cid: str, a: int, b: int, now: int) -> Agg | None:
        """Aggregate the prints with a <= t < b and t <= now."""
        acc: Agg | None = None
        end = min(b - 1, now)
        for m in range(a // MINUTE_MS, end // MINUTE_MS + 1):
            for t, p, size, _ in self.tape.prints(cid, m):
                if a <= t <= end:
                    acc = _merge(acc, a, p, p, p, p, size)
        return acc

    def minutes_agg(self, cid: str, a: int, b: int, now: int) -> Agg | None:
        """Aggregate whole minutes a..b (minute-aligned), cutting the minute that holds `now`."""
        acc: Agg | None = None
        now_minute = now // MINUTE_MS
        for m in range(a // MINUTE_MS, min(b // MINUTE_MS, now_minute + 1)):
            if m == now_minute:
                part = self.prints_agg(cid, m * MINUTE_MS, (m + 1) * MINUTE_MS, now)
                if part is not None:
                    acc = _merge(acc, a, *part[1:])
                continue
            if self.revise_ms and now < (m + 1) * MINUTE_MS + self.revise_ms:
                early = self._lagging_minute(cid, m)
                if early is not None:
                    acc = _merge(acc, a, *early)
                    continue
            bar = self.tape.minute_bar(cid, m)
            if bar is not None:
                acc = _merge(acc, a, bar.o, bar.h, bar.l, bar.c, bar.v)
        return acc

    def _lagging_minute(self, cid: str, m: int) -> tuple[int, int, int, int, int] | None:
        """The minute without its last print (None when it has fewer than two)."""
        prints = self.tape.prints(cid, m)
        if len(prints) < 2:
            return None
        ps = [p for _, p, _, _ in prints[:-1]]
        return (ps[0], max(ps), min(ps), ps[-1], sum(size for _, _, size, _ in prints[:-1]))

    def hour_agg(self, cid: str, h: int, now: int) -> Agg | None:
        """One hour (index h since the epoch); complete hours are cached."""
        a = h * HOUR_MS
        b = a + HOUR_MS
        if b + self.revise_ms > now:   # not settled yet (a lagging venue revises it)
            return self.minutes_agg(cid, a, b, now)
        key = (cid, h)
        if key in self._hours:
            got = self._hours[key]
            return None if got is None else [a, *got]
        acc = self.minutes_agg(cid, a, b, now)
        self._hours[key] = None if acc is None else tuple(acc[1:])  # type: ignore[assignment]
        return acc

    def hours_agg(self, cid: str, a: int, b: int, now: int) -> Agg | None:
        acc: Agg | None = None
        for h in range(a // HOUR_MS, (min(b, now + 1) + HOUR_MS - 1) // HOUR_MS):
            part = self.hour_agg(cid, h, now)
            if part is not None:
                acc = _merge(acc, a, *part[1:])
        return acc

    def bucket(self, cid: str, unit: int, a: int, b: int, now: int) -> Agg | None:
        if unit == SECOND:
            return self.prints_agg(cid, a, b, now)
        if unit == MINUTE:
            return self.minutes_agg(cid, a, b, now)
        return self.hours_agg(cid, a, b, now)

    def retrieve(self, cid: str, start_ms: int, end_ms: int, unit: int, n: int, limit: int,
                 include_partial: bool, now: int) -> list[Agg]:
        """The newest `limit` bars with start <= open < end, newest first."""
        if unit not in (SECOND, MINUTE, HOUR, DAY, WEEK, MONTH):
            raise BarError(2, "Invalid unit.")
        if n < 1:
            raise BarError(3, "Invalid unit number.")
        if limit < 1 or limit > MAX_LIMIT:
            raise BarError(4, f"Invalid limit. The limit must be between 1 and {MAX_LIMIT}.")
        horizon = self.tape.history_start_ms
        last_open = min(end_ms - 1, now)
        if last_open < start_ms:
            return []
        if unit == SECOND:
            return self._seconds(cid, start_ms, last_open, n, limit, include_partial, now)
        out: list[Agg] = []
        a = bucket_floor(last_open, unit, n)
        while a >= start_ms and len(out) < limit:
            b = bucket_next(a, unit, n)
            if b <= horizon:
                break
            if b <= now or include_partial:
                bar = self.bucket(cid, unit, a, b, now)
                if bar is not None:
                    bar[0] = a
                    out.append(bar)
            a = bucket_prev(a, unit, n)
        return out

    def _seconds(self, cid: str, start_ms: int, last_open: int, n: int, limit: int,
                 include_partial: bool, now: int) -> list[Agg]:
        """Second bars, built by walking the prints backwards minute by minute (closed minutes
        cost nothing, so a window over a weekend stays cheap)."""
        size = 1000 * n
        first_bucket = bucket_floor(last_open, SECOND, n)
        lo = max(start_ms, self.tape.history_start_ms)
        out: list[Agg] = []
        cur: Agg | None = None
        m = (first_bucket + size - 1) // MINUTE_MS
        while m >= lo // MINUTE_MS - 1 and m >= 0:
            if self.tape.minute_bar(cid, m) is not None:
                for t, p, sz, _ in reversed(self.tape.prints(cid, m)):
                    if t > now:
                        continue
                    a = t - t % size
                    if a > first_bucket:
                        continue
                    if a < start_ms:
                        break
                    if a + size > now and not include_partial:
                        continue
                    if cur is None or cur[0] != a:
                        if cur is not None:
                            out.append(cur)
                            if len(out) >= limit:
                                return out
                        cur = [a, p, p, p, p, sz]
                    else:
                        cur[1] = p
                        if p > cur[2]:
                            cur[2] = p
                        if p < cur[3]:
                            cur[3] = p
                        cur[5] += sz
            m -= 1
        if cur is not None and len(out) < limit:
            out.append(cur)
        return out
