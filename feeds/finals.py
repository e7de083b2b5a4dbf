"""The pure core of feed-bars: from polled venue bars to the bar stream, exactly once.

Rules (docs/feeds.md):
- The high-water mark (`hwm`) is the open time of the newest FINAL 1m bar published for the
  contract. It is persisted, so a restart knows it; every poll asks the venue for everything from
  `hwm + 1m`, so after a start, a restart or an outage the missed finals come back in time order
  (no holes), and a bar at or before `hwm` is never published as final again (no duplicates).
- A bar is final when its minute ended at least `final_delay` before the request was SENT: the
  venue answered after that, so it had every print of the minute.
- A bar that is not final yet (the forming bar) is published as a partial revision when it
  differs from the last partial published for the same minute; `rev` counts up per minute and
  the final takes the next `rev`.
- Corrections (defect 1): with a revise window, every poll also re-reads the last finals; a
  final the venue now reports differently (a lagging venue that revised the minute) is handed
  out by `take_corrections()`. The process publishes those as history (`hist.1m.`), never as a
  second live final: consumers keep the later reading, and the live stream's "one final per
  minute" stays true.
"""

from __future__ import annotations

from collections.abc import Iterable

from chillly.clock import MINUTE_MS
from chillly.messages import Bar
from topstepx.models import VenueBar


def minute_floor(ms: int) -> int:
    return ms - ms % MINUTE_MS


class FinalTracker:
    """One contract's view of what has been published."""

    def __init__(self, contract: str, hwm: int | None = None, revise_window_ms: int = 0
                 ) -> None:
        self.contract = contract
        self.hwm = hwm
        self.revise_window_ms = revise_window_ms
        self._origin: int | None = None
        self._partials: dict[int, tuple[tuple[float, float, float, float, int], int]] = {}
        # Finals published within the revise window: minute -> (ohlcv, rev).
        self._finals: dict[int, tuple[tuple[float, float, float, float, int], int]] = {}
        self._corrections: list[Bar] = []
        self.counters = {"finals": 0, "partials": 0, "stale_skipped": 0, "corrections": 0}

    def start_ms(self, now_ms: int, lookback_min: int = 0, max_catchup_ms: int | None = None
                 ) -> int:
        """Where the next request starts: right after the high-water mark (bounded by
        `max_catchup_ms`), or at the current minute minus `lookback_min` for a new contract."""
        if self.hwm is None:
            if self._origin is None:  # the subscription's first minute, kept until a final
                self._origin = minute_floor(now_ms) - lookback_min * MINUTE_MS
            return self._origin
        start = self.hwm + MINUTE_MS - self.revise_window_ms
        if max_catchup_ms is not None:
            start = max(start, minute_floor(now_ms - max_catchup_ms))
        return start

    def on_bars(self, bars: Iterable[VenueBar], request_ms: int, final_delay_ms: int = 0
                ) -> list[Bar]:
        """What to publish for one poll's answer (any order), oldest first."""
        out: list[Bar] = []
        cutoff = request_ms - final_delay_ms
        for vb in sorted(bars, key=lambda b: b.t):
            t = minute_floor(vb.t)
            ohlcv = (vb.o, vb.h, vb.l, vb.c, vb.v)
            if self.hwm is not None and t <= self.hwm:
                was = self._finals.get(t)
                if was is not None and was[0] != ohlcv:   # the venue revised a final
                    self._finals[t] = (ohlcv, was[1] + 1)
                    self._corrections.append(self._bar(t, ohlcv, True, was[1] + 1))
                    self.counters["corrections"] += 1
                else:
                    self.counters["stale_skipped"] += 1
                continue
            last = self._partials.get(t)
            if t + MINUTE_MS <= cutoff:
                rev = last[1] + 1 if last else 0
                out.append(self._bar(t, ohlcv, True, rev))
                if self.revise_window_ms:
                    self._finals[t] = (ohlcv, rev)
                self.hwm = t
                self.counters["finals"] += 1
            elif last is None or last[0] != ohlcv:
                rev = last[1] + 1 if last else 0
                self._partials[t] = (ohlcv, rev)
                out.append(self._bar(t, ohlcv, False, rev))
                self.counters["partials"] += 1
        if self.hwm is not None:
            for t in [t for t in self._partials if t <= self.hwm]:
                del self._partials[t]
            horizon = self.hwm - self.revise_window_ms
            for t in [t for t in self._finals if t <= horizon]:
                del self._finals[t]
        return out

    def take_corrections(self) -> list[Bar]:
        """Finals the venue has revised since they were published (oldest first), once."""
        out, self._corrections = self._corrections, []
        return out

    def _bar(self, t: int, ohlcv: tuple[float, float, float, float, int], final: bool,
             rev: int) -> Bar:
        o, h, l, c, v = ohlcv  # noqa: E741
        return Bar(contract=self.contract, tf="1m", t=t, o=float(o), h=float(h), l=float(l),
                   c=float(c), volume=int(v), final=final, rev=rev, origin="poll")
