"""The sim's tape: every trade print of every contract as a pure function of (seed, contract, time).

Live streaming and history must be one record (a bar from History/retrieveBars must aggregate
exactly the prints the market hub streamed), so nothing here depends on when or in which order
it is asked. The tape is built in three layers, each a pure function of the one above:

1. **The path.** A price level per root family (ES and MES share one, NQ and MNQ another) at
   every minute boundary: the base price times exp of a sum of value-noise octaves with knots
   every 1, 4, 16 ... 65,536 minutes, weighted by sqrt(knot spacing) so moves over n minutes
   scale like sqrt(n) (a random walk's signature) without walking from an origin. A contract
   month adds a carry that decays to zero at expiry, so a back month trades a little above its
   front month.
2. **The minute.** Open = the path at the minute's start, close = the path at its end (both on
   the tick grid), high/low = a seeded excursion beyond them, volume and print count from the
   minute's seed and the time of day. O(1) per minute: history over weeks stays cheap.
3. **The prints.** Generated only when needed (live streaming, second bars): n prints at seeded
   millisecond offsets whose first price is the open, last the close, which touch the high and
   the low, whose sizes sum to the volume. Aggressor side follows the tick direction.

**Drifts** (POST /admin/market, `Tape.add_drift`) bend the path of a root family from the next
minute boundary on: a shift of N ticks reached linearly over a span of market time, and a
volatility multiplier on the path's moves and the minutes' excursions. A drift changes only
minutes that have not started, so what was streamed and what history returns stay one record.

Prices are kept as integer tick counts; `to_price` turns them into venue decimals. Minutes when
the CME market is closed (and before the history horizon) have no prints at all.
"""

from __future__ import annotations

import math
import random
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

from chillly.calendar import CHICAGO, is_market_open
from chillly.clock import DAY_MS, MINUTE_MS

from sim.market.contracts import SPECS, RootSpec, parse_id
from trading.venue_codes import TradeLogType

BUY, SELL = TradeLogType.BUY, TradeLogType.SELL    # a print's aggressor

_M64 = (1 << 64) - 1
_OCTAVES = 9                      # knot spacings 4**0 .. 4**8 minutes (~45 days)
_WEIGHT = 0.5                     # per-octave weight factor, times sqrt(spacing)
_CARRY_PER_DAY = 0.0001           # back-month premium, decaying to zero at expiry
_BACK_MONTH_ACTIVITY = 0.08       # back months print far less than the front month


def _mix(x: int) -> int:
    """splitmix64 finaliser: spreads the bits of Python's (stable, int-only) tuple hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _key(*parts: int) -> int:
    # hash() of a tuple of ints is deterministic across runs and machines (no str hashing).
    return _mix(hash(parts) & _M64)


def _unit(*parts: int) -> float:
    """A uniform value in [-sqrt3, sqrt3): unit variance, seeded by the parts."""
    return ((_key(*parts) >> 11) / float(1 << 53) * 2.0 - 1.0) * 1.7320508075688772


def stable_id(text: str) -> int:
    """A run-independent integer for a string (str hashes are randomised per process)."""
    return zlib.crc32(text.encode())


def decimals_of(tick: float) -> int:
    text = f"{tick:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


@dataclass(frozen=True)
class MinuteBar:
    """One minute of one contract, in ticks. n = number of prints."""

    o: int
    h: int
    l: int
    c: int
    v: int
    n: int


@dataclass(frozen=True)
class Drift:
    """A bend of one family's path (see the module doc). `base` is the family's level at
    `start_minute` before this drift, the pivot of its volatility scaling."""

    family: str
    start_minute: int
    over_minutes: int
    offset: float          # price units reached at start + over
    volatility: float
    base: float

    def to_api(self) -> dict[str, object]:
        return {"family": self.family, "start": self.start_minute * MINUTE_MS,
                "over_minutes": self.over_minutes, "offset": self.offset,
                "volatility": self.volatility}


#: A print: (t_ms, price_ticks, size, aggressor 0 buy / 1 sell).
Print = tuple[int, int, int, int]


class Tape:
    """Deterministic prints for every contract; the one source of both live data and history."""

    def __init__(self, seed: int, always_open: bool = False, history_start_ms: int = 0,
                 cache_minutes: int = 100_000, cache_prints: int = 600) -> None:
        self.seed = seed
        self.always_open = always_open
        self.history_start_ms = history_start_ms
        self._minutes: OrderedDict[tuple[str, int], MinuteBar | None] = OrderedDict()
        self._prints: OrderedDict[tuple[str, int], list[Print]] = OrderedDict()
        self._open: dict[int, bool] = {}
        self._knots: dict[tuple[int, int, int], float] = {}
        self._family_levels: dict[tuple[int, float, float, int], float] = {}
        self._levels: dict[tuple[str, int], int] = {}
        self._ct_offset: dict[int, int] = {}
        self._ctx: dict[str, tuple[RootSpec, int, int, int, int]] = {}
        self._cache_minutes = cache_minutes
        self._cache_prints = cache_prints
        self.drifts: list[Drift] = []

    # ---- contract context -------------------------------------------------------------------
    def _context(self, cid: str) -> tuple[RootSpec, int, int, int, int]:
        """(spec, family id, contract id, expiry ms, price decimals) of a contract."""
        ctx = self._ctx.get(cid)
        if ctx is None:
            parsed = parse_id(cid)
            if parsed is None or parsed[0] not in SPECS:
                raise KeyError(cid)
            root, year, month = parsed
            spec = SPECS[root]
            expiry = int(datetime(year, month, 15, tzinfo=timezone.utc).timestamp() * 1000)
            ctx = (spec, stable_id(spec.family), stable_id(cid), expiry,
                   decimals_of(spec.tick_size))
            self._ctx[cid] = ctx
        return ctx

    def to_price(self, cid: str, ticks: int) -> float:
        spec, _, _, _, dec = self._context(cid)
        return round(ticks * spec.tick_size, dec)

    def tick_size(self, cid: str) -> float:
        return self._context(cid)[0].tick_size

    # ---- layer 1: the path -------------------------------------------------------------------
    def family_level(self, family: int, base: float, vol: float, minute: int) -> float:
        """The family's path at a minute boundary: shared by every contract of the family (ES
        and MES, front and next months), so it is computed once per family and minute (the
        sim's start aggregates the session so far for every contract: ~40% less CPU)."""
        memo = self._family_levels
        key = (family, base, vol, minute)
        got = memo.get(key)
        if got is not None:
            return got
        if len(memo) > 100_000:
            memo.clear()
        level = memo[key] = self._family_level(family, base, vol, minute)
        return level

    def _family_level(self, family: int, base: float, vol: float, minute: int) -> float:
        knots = self._knots
        if len(knots) > 2_000_000:
            knots.clear()
        total = 0.0
        seed = self.seed
        for k in range(_OCTAVES):
            span = 4 ** k
            i, rem = divmod(minute, span)
            ka = (family, k, i)
            a = knots.get(ka)
            if a is None:
                a = knots[ka] = _unit(seed, family, k, i)
            kb = (family, k, i + 1)
            b = knots.get(kb)
            if b is None:
                b = knots[kb] = _unit(seed, family, k, i + 1)
            total += (a + (b - a) * (rem / span)) * (2 ** k)
        return base * math.exp(vol * _WEIGHT * total)

    def level_ticks(self, cid: str, minute: int) -> int:
        """The path of a contract at a minute boundary, on its tick grid."""
        memo = self._levels
        got = memo.get((cid, minute))
        if got is not None:
            return got
        spec, fam, _, expiry, _ = self._context(cid)
        level = self.family_level(fam, spec.base_price, spec.vol_per_min, minute)
        if self.drifts:
            level = self._drifted(spec.family, minute, level)
        days_left = max(0.0, (expiry - minute * MINUTE_MS) / DAY_MS)
        level *= 1.0 + _CARRY_PER_DAY * days_left
        ticks = max(1, int(round(level / spec.tick_size)))
        if len(memo) > 4096:
            memo.clear()
        memo[(cid, minute)] = ticks
        return ticks

    def _drifted(self, family: str, minute: int, level: float) -> float:
        for d in self.drifts:
            if d.family != family or minute < d.start_minute:
                continue
            ramp = 1.0 if d.over_minutes <= 0 else min(
                1.0, (minute - d.start_minute) / d.over_minutes)
            level = d.base + (level - d.base) * d.volatility + d.offset * ramp
        return level

    def _vol_factor(self, family: str, minute: int) -> float:
        factor = 1.0
        for d in self.drifts:
            if d.family == family and minute >= d.start_minute:
                factor *= d.volatility
        return factor

    def add_drift(self, cid: str, ticks: float, over_s: float, volatility: float,
                  now_ms: int) -> Drift:
        """Bend the path of `cid`'s family from the next minute boundary after `now_ms`."""
        spec = self._context(cid)[0]
        if volatility <= 0:
            raise ValueError("volatility must be > 0")
        if over_s < 0:
            raise ValueError("over_seconds must be >= 0")
        start = -(-now_ms // MINUTE_MS)
        fam = self._context(cid)[1]
        base = self._drifted(spec.family, start,
                             self.family_level(fam, spec.base_price, spec.vol_per_min, start))
        drift = Drift(spec.family, start, int(-(-over_s // 60)), ticks * spec.tick_size,
                      volatility, base)
        self.restore_drifts([*self.drifts, drift])
        return drift

    def restore_drifts(self, drifts: list[Drift]) -> None:
        """Set the drifts (a restart restores them) and forget every derived minute."""
        self.drifts = list(drifts)
        self._minutes.clear()
        self._prints.clear()
        self._levels.clear()

    # ---- layer 2: the minute -----------------------------------------------------------------
    def minute_open(self, minute: int) -> bool:
        """Does the market trade during this minute (halts start and end on whole minutes)?"""
        if minute * MINUTE_MS < self.history_start_ms:
            return False
        if self.always_open:
            return True
        cached = self._open.get(minute)
        if cached is None:
            # Per minute: CME holidays and early closes (chillly/calendar.py) need not fall on
            # whole hours.
            cached = is_market_open(minute * MINUTE_MS)
            if len(self._open) > 400_000:
                self._open.clear()
            self._open[minute] = cached
        return cached

    def _activity(self, minute: int) -> float:
        """Day session (08:30-15:00 CT) trades about three times the overnight rate."""
        hour = minute // 60
        offset = self._ct_offset.get(hour)
        if offset is None:
            local = datetime.fromtimestamp(hour * 3600, tz=timezone.utc).astimezone(CHICAGO)
            offset = int(local.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
            if len(self._ct_offset) > 200_000:
                self._ct_offset.clear()
            self._ct_offset[hour] = offset
        hm = (minute + offset) % 1440
        return 1.0 if 510 <= hm < 900 else 0.35

    def minute_bar(self, cid: str, minute: int) -> MinuteBar | None:
        """The OHLCV of one minute, or None when nothing trades in it."""
        key = (cid, minute)
        cache = self._minutes
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        bar = self._make_minute(cid, minute) if self.minute_open(minute) else None
        cache[key] = bar
        if len(cache) > self._cache_minutes:
            cache.popitem(last=False)
        return bar

    def _make_minute(self, cid: str, minute: int) -> MinuteBar:
        spec, _, cnum, _, _ = self._context(cid)
        o = self.level_ticks(cid, minute)
        c = self.level_ticks(cid, minute + 1)
        rng = random.Random(_key(self.seed, cnum, minute, 1))
        sigma = max(1.0, o * spec.vol_per_min)  # one minute's standard move, in ticks
        if self.drifts:
            sigma *= self._vol_factor(spec.family, minute)
        up = int(abs(rng.gauss(0.0, 1.0)) * sigma * 0.5)
        down = int(abs(rng.gauss(0.0, 1.0)) * sigma * 0.5)
        h = max(o, c) + up
        low = max(1, min(o, c) - down)
        activity = self._activity(minute)
        if not self._is_front_like(cid, minute):
            activity *= _BACK_MONTH_ACTIVITY
        n = max(4, int(spec.prints_per_min * activity * (0.6 + 0.8 * rng.random())))
        v = n + int(n * (spec.size_mean - 1.0) * (0.5 + rng.random()))
        return MinuteBar(o, h, low, c, v, n)

    def _is_front_like(self, cid: str, minute: int) -> bool:
        """A contract is busy while fewer than ~100 days remain to its delivery month."""
        expiry = self._context(cid)[3]
        return (expiry - minute * MINUTE_MS) < 100 * DAY_MS

    # ---- layer 3: the prints -----------------------------------------------------------------
    def prints(self, cid: str, minute: int) -> list[Print]:
        """Every print of one minute, in time order (empty when the market is closed)."""
        key = (cid, minute)
        cache = self._prints
        got = cache.get(key)
        if got is not None:
            cache.move_to_end(key)
            return got
        bar = self.minute_bar(cid, minute)
        out = [] if bar is None else self._make_prints(cid, minute, bar)
        cache[key] = out
        if len(cache) > self._cache_prints:
            cache.popitem(last=False)
        return out

    def _make_prints(self, cid: str, minute: int, bar: MinuteBar) -> list[Print]:
        spec, _, cnum, _, _ = self._context(cid)
        rng = random.Random(_key(self.seed, cnum, minute, 2))
        n = bar.n
        t0 = minute * MINUTE_MS
        times = sorted(rng.randrange(MINUTE_MS) for _ in range(n))
        # Anchors: open first, close last, high and low somewhere in between.
        i_a, i_b = sorted(rng.sample(range(1, n - 1), 2))
        hi_first = rng.random() < 0.5
        anchors = [(0, bar.o), (i_a, bar.h if hi_first else bar.l),
                   (i_b, bar.l if hi_first else bar.h), (n - 1, bar.c)]
        noise = max(0.6, (bar.h - bar.l) / 6.0)
        prices = [0] * n
        for (ia, pa), (ib, pb) in zip(anchors, anchors[1:]):
            prices[ia] = pa
            span = ib - ia
            for i in range(ia + 1, ib):
                x = pa + (pb - pa) * (i - ia) / span + rng.gauss(0.0, noise)
                prices[i] = min(bar.h, max(bar.l, int(round(x))))
        prices[n - 1] = bar.c
        # Sizes: one contract each, the rest of the volume spread by seeded weights.
        sizes = [1] * n
        extra = bar.v - n
        if extra > 0:
            weights = [rng.expovariate(1.0) for _ in range(n)]
            total = sum(weights)
            given = 0
            for i, w in enumerate(weights):
                add = int(extra * w / total)
                sizes[i] += add
                given += add
            for _ in range(extra - given):
                sizes[rng.randrange(n)] += 1
        out: list[Print] = []
        prev = bar.o
        for i in range(n):
            p = prices[i]
            if p > prev:
                side = BUY
            elif p < prev:
                side = SELL
            else:
                side = BUY if rng.random() < 0.5 else SELL
            out.append((t0 + times[i], p, sizes[i], side))
            prev = p
        return out

    def prints_between(self, cid: str, after_ms: int, upto_ms: int) -> list[Print]:
        """Prints with after_ms < t <= upto_ms, in order."""
        if upto_ms <= after_ms:
            return []
        out: list[Print] = []
        first = after_ms // MINUTE_MS
        last = upto_ms // MINUTE_MS
        for m in range(first, last + 1):
            for pr in self.prints(cid, m):
                if after_ms < pr[0] <= upto_ms:
                    out.append(pr)
        return out

    def last_print_before(self, cid: str, upto_ms: int, max_minutes: int = 10 * 1440) -> Print | None:
        """The latest print at or before upto_ms (searching back up to `max_minutes`)."""
        m = upto_ms // MINUTE_MS
        for pr in reversed(self.prints(cid, m)):
            if pr[0] <= upto_ms:
                return pr
        for back in range(1, max_minutes):
            mm = m - back
            if mm * MINUTE_MS < self.history_start_ms:
                return None
            if not self.minute_open(mm):
                continue
            bar = self.minute_bar(cid, mm)
            if bar is not None:
                return self.prints(cid, mm)[-1]
        return None
