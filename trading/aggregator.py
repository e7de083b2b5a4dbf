"""Higher-timeframe bars from final 1m bars: the pure core of the `aggregator` process, and of a
backtest's higher timeframes (the same buckets live and in history).

After NautilusTrader's `BarAggregator(instrument, bar_type, handler)`: no I/O, an injected
clock, and a handler that receives every bar it produces. The process (aggregator_process.py)
wires the handler to the bus and feeds the core from the bus and the database.

Rules (docs/store.md explains the why):
- A bucket holds its 1m bars keyed by minute, so a re-sent or revised 1m bar replaces its
  minute instead of adding to it: volume is never counted twice, and the result depends only on
  the set of 1m bars, never on their arrival order.
- Buckets are chosen by the 1m bar's timestamp. Minute timeframes ("5m") are aligned to the
  UTC epoch (so to the hour when N divides 60); hour timeframes are aligned to the UTC hour, as
  the venue's hourly bars are; timeframes listed as session timeframes ("4h", "1d" by default)
  are anchored to the CME session open (17:00 America/Chicago, DST-correct) and never cross a
  session boundary, so the weekend (no bars) yields no buckets.
- A bucket is complete when the 1m bar of its last trading minute arrives (calendar-aware: the
  daily bar is complete with the 15:59 CT bar, with the 11:59 CT bar on a 12:00 early close), when a 1m bar of a later bucket arrives, or when
  the clock passes the bucket's end plus a grace period with no 1m bar arriving meanwhile
  (`on_time`). Every 1m bar before that yields a partial (final=False, rev+1); completion
  yields the final (final=True, rev+1); a 1m bar that changes a finished bucket yields a
  revision (final=True, rev+1). A 1m bar that changes nothing yields nothing.
- Coverage (defect 18): `covered_from` is the earliest minute from which the aggregator holds
  every 1m bar (the first live bar, or the start of a window read from the database). A bucket
  whose first tradable minute lies before it (the first bucket after a subscription, or after
  a start mid-bucket) is not complete whatever the clock says: it stays partial, the core asks
  `need_history(contract, bucket start, covered_from)` once, and `fill` merges that history;
  only then can the bucket go final. So a final never holds part of its bucket's data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from chillly.clock import Clock, DAY_MS, HOUR_MS, MINUTE_MS
from chillly.messages import Bar
from chillly.timeframes import BucketSpec

#: emit(bar, resend): resend=True means "an unchanged final re-sent for a reader that missed it".
Handler = Callable[[Bar, bool], None]
#: need_history(contract, start, end): the 1m bars of [start, end) are needed to finish a bucket.
HistoryWanted = Callable[[str, int, int], None]


def _bar_builder() -> Callable[..., Bar]:
    """A positional `Bar` constructor that sets the slots directly, skipping the frozen
    dataclass's `__init__` (one `object.__setattr__` per field): the core builds a bar per 1m
    bar per timeframe, and this is about 2.5x cheaper (bench/store.py, aggregator core).
    Checked against `Bar(...)` at import, so a new field cannot be missed in silence."""
    names = ("contract", "tf", "t", "o", "h", "l", "c", "volume", "final", "rev", "origin")
    if set(names) != set(Bar._fields):
        raise RuntimeError(f"_bar_builder: Bar's fields are {Bar._fields}, not {names}")
    setters = [getattr(Bar, name).__set__ for name in names]
    new = object.__new__
    (s_contract, s_tf, s_t, s_o, s_h, s_l, s_c, s_volume, s_final, s_rev,
     s_origin) = setters

    def build(contract: str, tf: str, t: int, o: float, h: float, low: float, c: float,
              volume: int, final: bool, rev: int) -> Bar:
        bar = new(Bar)
        s_contract(bar, contract)
        s_tf(bar, tf)
        s_t(bar, t)
        s_o(bar, o)
        s_h(bar, h)
        s_l(bar, low)
        s_c(bar, c)
        s_volume(bar, volume)
        s_final(bar, final)
        s_rev(bar, rev)
        s_origin(bar, "agg")
        return bar

    args = ("X", "5m", 1, 1.0, 2.0, 0.5, 1.5, 3, True, 2)
    if build(*args) != Bar(contract="X", tf="5m", t=1, o=1.0, h=2.0, l=0.5, c=1.5, volume=3,
                           final=True, rev=2, origin="agg"):
        raise RuntimeError("_bar_builder builds a different Bar")
    return build


_new_bar = _bar_builder()


def _ohlcv(bars: dict[int, Bar]) -> tuple[float, float, float, float, int]:
    ts = sorted(bars)
    first, last = bars[ts[0]], bars[ts[-1]]
    return (first.o, max(b.h for b in bars.values()), min(b.l for b in bars.values()), last.c,
            sum(b.volume for b in bars.values()))


@dataclass
class _Bucket:
    start: int
    end: int
    last_minute: int
    first_minute: int
    minutes: dict[int, Bar] = field(default_factory=dict)
    rev: int = -1             # rev of the last bar emitted (or stored) for this bucket
    final: bool = False       # a final has been emitted (or is stored) for this bucket
    sig: tuple | None = None  # OHLCV last emitted (or stored)
    complete: bool = False
    # Running OHLCV: O(1) per 1m bar in time order; recomputed only for out-of-order minutes.
    o: float = 0.0
    h: float = 0.0
    low: float = 0.0
    c: float = 0.0
    v: int = 0
    last_t: int = -1

    def put(self, bar: Bar, replaced: bool) -> None:
        self.minutes[bar.t] = bar
        if not replaced and bar.t > self.last_t:
            if self.last_t < 0:
                self.o, self.h, self.low, self.v = bar.o, bar.h, bar.l, bar.volume
            else:
                self.h = bar.h if bar.h > self.h else self.h
                self.low = bar.l if bar.l < self.low else self.low
                self.v += bar.volume
            self.c = bar.c
            self.last_t = bar.t
        else:
            self.o, self.h, self.low, self.c, self.v = _ohlcv(self.minutes)
            self.last_t = max(self.minutes)

    def value(self) -> tuple[float, float, float, float, int]:
        return (self.o, self.h, self.low, self.c, self.v)


class BarAggregator:
    """One (contract, timeframe): turns final 1m bars into bars of `spec.tf`, calls `handler`.

    `retention_ms` bounds memory: finished buckets older than that (by the newest 1m bar seen)
    are forgotten; a 1m bar for a forgotten bucket is counted in `too_late` and ignored (the
    process then recomputes that window from the database).
    """

    def __init__(self, contract: str, spec: BucketSpec, handler: Handler, clock: Clock,
                 *, grace_ms: int = 2 * MINUTE_MS, retention_ms: int = 3 * DAY_MS,
                 need_history: HistoryWanted | None = None) -> None:
        self.contract = contract
        self.need_history = need_history
        self.covered_from: int | None = None  # every 1m bar from here on is held (or seen)
        self._asked: set[int] = set()          # bucket starts history was asked for
        self.spec = spec
        self.handler = handler
        self.clock = clock
        self.grace_ms = grace_ms
        self.retention_ms = retention_ms
        self.buckets: dict[int, _Bucket] = {}
        self.open: dict[int, _Bucket] = {}   # buckets not complete yet (usually one)
        self.newest = 0  # open time of the newest 1m bar applied
        self.last_arrival = 0  # clock time the last 1m bar arrived
        self._bounds_cache = (0, 0)
        self._prune_at = 0
        self.counters = {"in": 0, "unchanged": 0, "too_late": 0, "partials": 0, "finals": 0,
                         "revisions": 0, "resent": 0, "history_wanted": 0}

    # ------------------------------------------------------------------ live path

    def handle_bar(self, bar: Bar, now_ms: int | None = None) -> None:
        """Apply one final 1m bar and emit what it changed (`now_ms`: the clock's time, when
        the caller has it already: `Aggregators` reads it once for every timeframe)."""
        self.counters["in"] += 1
        self.last_arrival = self.clock.now_ms() if now_ms is None else now_ms
        t = bar.t
        if self.covered_from is None:
            self.covered_from = t    # the live stream has no holes from its first bar on
        bucket = self._apply(bar)
        if bucket is None:
            return
        if t >= bucket.last_minute or bucket.end <= self.newest:
            self._complete(bucket)
        if t > self.newest:
            self.newest = t
            # A bar of a later bucket proves every earlier bucket is over (finals are in order).
            open_ = self.open
            if len(open_) > (bucket.start in open_):   # another bucket is open
                done = [b for b in open_.values() if b.end <= t]
                for other in sorted(done, key=lambda b: b.start):
                    self._complete(other)
                    self._emit(other)
        self._emit(bucket)
        if self.newest >= self._prune_at:
            self._prune()

    def on_time(self, now_ms: int) -> None:
        """The clock passed `now_ms`: finish buckets whose end plus grace is behind us, once
        the input has also been quiet for the grace (a replay of old bars, which arrive long
        after their buckets ended, must not finish each bucket on its first minute)."""
        if not self.open or now_ms - self.last_arrival < self.grace_ms:
            return
        for bucket in sorted(self.open.values(), key=lambda b: b.start):
            if bucket.end + self.grace_ms <= now_ms:
                self._complete(bucket)
                self._emit(bucket)

    # ------------------------------------------------------------------ recovery path

    def seed(self, stored: Iterable[Bar]) -> None:
        """What the database already holds for this timeframe: finals with their rev."""
        for b in stored:
            start, end = self._bounds(b.t)
            bucket = self._bucket(start, end)
            if b.rev >= bucket.rev:
                bucket.rev = b.rev
                bucket.final = b.final
                bucket.sig = (b.o, b.h, b.l, b.c, b.volume)
                if b.final:
                    self._complete(bucket, force=True)   # stored final: settled already

    def fill(self, bars: Iterable[Bar], start: int, now_ms: int) -> None:
        """The history `need_history` asked for: every 1m bar from `start` (to the old
        coverage) is now held; merge it and finish the buckets that waited for it."""
        bars = list(bars)
        if self.covered_from is None or start < self.covered_from:
            self.covered_from = start
        self._asked = {s for s in self._asked if s < start}
        self.load(bars, now_ms, covered_from=start, settle=list(self.open))

    def load(self, bars: Iterable[Bar], now_ms: int, reference: dict[int, Bar] | None = None,
             covered_from: int | None = None, settle: Iterable[int] = ()) -> None:
        """Merge historical 1m bars quietly, then emit each touched bucket once.

        `reference` maps bucket open time to the row the database holds (for a reader that may
        have missed live output): an unchanged final it lacks or holds differently is re-sent.
        `covered_from`: the bars are every 1m bar from there on (a database window known to
        be whole); without it, coverage is unchanged. `settle`: bucket starts to re-judge even if untouched.
        """
        bars = list(bars)
        # Coverage is never inferred from the oldest bar given: a database window can hold the
        # first batch of a backfill still being written and the live bars, with the hole
        # between them (a daily bar went final with 60% of its volume that way).
        if covered_from is not None and (self.covered_from is None
                                         or covered_from < self.covered_from):
            self.covered_from = covered_from
        if reference:
            # Buckets we no longer (or never) held start from what the reader has stored.
            self.seed(b for t, b in reference.items() if t not in self.buckets)
        touched: dict[int, _Bucket] = {s: self.buckets[s] for s in settle if s in self.buckets}
        for bar in bars:
            self.counters["in"] += 1
            bucket = self._apply(bar)
            if bar.t > self.newest:
                self.newest = bar.t
            start = bucket.start if bucket is not None else self._bounds(bar.t)[0]
            b = self.buckets.get(start)
            if b is not None:
                touched[start] = b
        if reference:
            for start in reference:
                b = self.buckets.get(start)
                if b is not None:
                    touched.setdefault(start, b)
        for start in sorted(touched):
            bucket = touched[start]
            if not bucket.minutes:
                continue
            quiet = now_ms - self.last_arrival >= self.grace_ms
            if (bucket.last_minute in bucket.minutes or bucket.end <= self.newest
                    or (quiet and bucket.end + self.grace_ms <= now_ms)):
                self._complete(bucket)
            if not self._emit(bucket) and reference is not None and bucket.final:
                ref = reference.get(start)
                if ref is None or (ref.o, ref.h, ref.l, ref.c, ref.volume) != bucket.sig \
                        or ref.rev != bucket.rev:
                    self.counters["resent"] += 1
                    self.handler(self._bar(bucket, bucket.rev, True), True)
        self._prune()

    # ------------------------------------------------------------------ internals

    def _bounds(self, t: int) -> tuple[int, int]:
        cached = self._bounds_cache
        if cached[0] <= t < cached[1]:
            return cached
        cached = self._bounds_cache = self.spec.bounds(t)
        return cached

    def _bucket(self, start: int, end: int) -> _Bucket:
        bucket = self.buckets.get(start)
        if bucket is None:
            bucket = _Bucket(start, end, self.spec.last_minute(start, end),
                             self.spec.first_minute(start, end))
            self.buckets[start] = bucket
            self.open[start] = bucket
        return bucket

    def _complete(self, bucket: _Bucket, force: bool = False) -> None:
        """Mark the bucket complete, unless its head is missing (see Coverage): then ask for
        the history once and leave it open (partial)."""
        if not force and not bucket.complete and (
                self.covered_from is None or bucket.first_minute < self.covered_from):
            if bucket.start not in self._asked and self.need_history is not None:
                self._asked.add(bucket.start)
                self.counters["history_wanted"] += 1
                # Nothing live yet: history up to now, which the live stream (subscribed
                # before anything is asked) continues without a hole.
                self.need_history(self.contract, bucket.start,
                                  self.covered_from if self.covered_from is not None
                                  else max(bucket.end, self.clock.now_ms()))
            return
        bucket.complete = True
        self.open.pop(bucket.start, None)

    def _apply(self, bar: Bar) -> _Bucket | None:
        """Put the bar in its minute; None if it changed nothing (or is too old to hold)."""
        t = bar.t
        cached = self._bounds_cache
        start, end = cached if cached[0] <= t < cached[1] else self._bounds(t)
        bucket = self.buckets.get(start)
        if bucket is None:
            if end + self.retention_ms < self.newest:
                self.counters["too_late"] += 1
                return None
            bucket = self._bucket(start, end)
        old = bucket.minutes.get(t)
        if old is not None and (old.o, old.h, old.l, old.c, old.volume) == (
                bar.o, bar.h, bar.l, bar.c, bar.volume):
            self.counters["unchanged"] += 1
            return None
        bucket.put(bar, old is not None)
        return bucket

    def _bar(self, bucket: _Bucket, rev: int, final: bool) -> Bar:
        return _new_bar(self.contract, self.spec.tf, bucket.start, bucket.o, bucket.h,
                        bucket.low, bucket.c, bucket.v, final, rev)

    def _emit(self, bucket: _Bucket) -> bool:
        """Emit the bucket if it differs from what was last emitted; True if it emitted."""
        if not bucket.minutes:
            return False
        sig = (bucket.o, bucket.h, bucket.low, bucket.c, bucket.v)
        # Unchanged: nothing to say, unless it just completed (its final is owed).
        if sig == bucket.sig and (bucket.final or not bucket.complete):
            return False
        # Once a final is out, any change is a revision (final again), never a partial.
        final = bucket.complete or bucket.final
        if final:
            self.counters["revisions" if bucket.final else "finals"] += 1
        else:
            self.counters["partials"] += 1
        bucket.rev += 1
        bucket.sig = sig
        bucket.final = final
        self.handler(self._bar(bucket, bucket.rev, final), False)
        return True

    def _prune(self) -> None:
        """Forget finished buckets older than the retention. Buckets are held in the order
        they were opened, which is time order on the live path, so the scan stops at the first
        recent one; a bucket opened out of order (history) goes once those before it have."""
        horizon = self.newest - self.retention_ms
        old = []
        for s, b in self.buckets.items():
            if b.end >= horizon:
                break
            if b.complete:
                old.append(s)
        for s in old:
            del self.buckets[s]
        self._prune_at = self.newest + HOUR_MS


class Aggregators:
    """Every configured timeframe for every contract: the process's one entry point."""

    def __init__(self, specs: list[BucketSpec], handler: Handler, clock: Clock,
                 *, grace_ms: int = 2 * MINUTE_MS, retention_ms: int = 3 * DAY_MS,
                 need_history: HistoryWanted | None = None) -> None:
        self.specs = specs
        self.need_history = need_history
        self.handler = handler
        self.clock = clock
        self.grace_ms = grace_ms
        self.retention_ms = retention_ms
        self.by_contract: dict[str, list[BarAggregator]] = {}

    def for_contract(self, contract: str) -> list[BarAggregator]:
        aggs = self.by_contract.get(contract)
        if aggs is None:
            aggs = [BarAggregator(contract, s, self.handler, self.clock, grace_ms=self.grace_ms,
                                  retention_ms=self.retention_ms, need_history=self.need_history)
                    for s in self.specs]
            self.by_contract[contract] = aggs
        return aggs

    def handle_bar(self, bar: Bar) -> None:
        """A final 1m bar from the live stream; anything else is not ours to aggregate."""
        if bar.tf != "1m" or not bar.final:
            return
        now_ms = self.clock.now_ms()
        for agg in self.for_contract(bar.contract):
            agg.handle_bar(bar, now_ms)

    def on_time(self, now_ms: int) -> None:
        for aggs in self.by_contract.values():
            for agg in aggs:
                agg.on_time(now_ms)

    def counters(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for aggs in self.by_contract.values():
            for agg in aggs:
                for k, v in agg.counters.items():
                    total[k] = total.get(k, 0) + v
        return total


def aggregate(bars: Iterable[Bar], spec: BucketSpec) -> list[Bar]:
    """Plain batch aggregation of final 1m bars (finals only, oldest first): for tests, checks
    and the benchmark's baseline."""
    groups: dict[tuple[str, int], dict[int, Bar]] = {}
    for b in bars:
        start, _ = spec.bounds(b.t)
        groups.setdefault((b.contract, start), {})[b.t] = b
    out = []
    for (contract, start), minutes in sorted(groups.items(), key=lambda kv: kv[0][1]):
        o, h, low, c, v = _ohlcv(minutes)
        out.append(Bar(contract=contract, tf=spec.tf, t=start, o=o, h=h, l=low, c=c, volume=v,
                       final=True, rev=0, origin="agg"))
    return out
