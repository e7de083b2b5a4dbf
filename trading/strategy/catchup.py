"""Catch-up bars: finals that closed too long ago to trade on.

After feed-bars was down (a restart, failed polls) its next good poll publishes every missed
minute as a final, in time order, within a second; a host that starts before the feed has
caught up sees the same. Each of those bars still goes to `on_bar` (a strategy's indicators,
computed bar by bar, must stay right), but an order sent from one would be sent now, at today's
price, for a signal of an hour ago: a burst of entries and reversals. So a bar whose close
(`t` + its timeframe) was older than the allowance, in market time, when its publisher sent it
(the envelope's `ts`; the feed replays a backlog long after the bars closed), is a catch-up
bar, and the engine refuses the new orders made while its `on_bar` runs
(trading/strategy/engine.py). Judging by the publish time, not the delivery time, keeps a bar
the feed sent on time current while a host is still starting or a loaded machine is slow.

The allowance is the driver's: the host derives it from `STRATEGY_MAX_BAR_AGE` and the clock
speed (strategy_host/settings.py); a backtest passes 0 (off: its bars are never late). Time is
passed in: nothing here reads a clock.

A catch-up run (consecutive catch-up bars of one contract and timeframe) is logged once when it
starts and once when the first current bar ends it, never once per bar.
"""

from __future__ import annotations

import dataclasses
import logging

from chillly.clock import ms_to_iso
from chillly.messages import Bar
from chillly.timeframes import tf_ms


@dataclasses.dataclass
class Run:
    """One catch-up run of a contract and timeframe: its first bar, how many, what was refused."""
    first_t: int
    bars: int = 0
    refused: int = 0


class CatchUp:
    def __init__(self, max_age_ms: int, log: logging.Logger) -> None:
        #: market ms after a bar's close beyond which it is a catch-up bar; 0: never
        self.max_age_ms = max(0, int(max_age_ms))
        self.log = log
        self.runs: dict[tuple[str, str], Run] = {}

    @staticmethod
    def age_ms(bar: Bar, now_ms: int) -> int:
        """How long ago, in market time, the bar closed (negative: it has not closed yet, as a
        session-anchored bar cut short by the session's end)."""
        return now_ms - (bar.t + tf_ms(bar.tf))

    def judge(self, bar: Bar, now_ms: int) -> str | None:
        """`now_ms`: when the bar was sent (its publish time). None for a current bar; for a catch-up bar, why orders are refused while its
        `on_bar` runs (the reason the strategy sees in its `on_order` rejection)."""
        if self.max_age_ms <= 0:
            return None
        key = (bar.contract, bar.tf)
        age = self.age_ms(bar, now_ms)
        if age <= self.max_age_ms:
            run = self.runs.pop(key, None)
            if run is not None:
                self.log.info("caught up on %s %s: %d catch-up bar(s) from %s, %d order(s) "
                                 "refused; %s trades again", bar.contract, bar.tf, run.bars,
                                 ms_to_iso(run.first_t), run.refused, ms_to_iso(bar.t))
            return None
        run = self.runs.get(key)
        if run is None:
            run = self.runs[key] = Run(first_t=bar.t)
            self.log.warning("catch-up on %s %s: bar %s was sent %.0f s after its close (market time) "
                             "(allowance %.0f s): on_bar runs, its new orders are refused "
                             "until a current bar", bar.contract, bar.tf, ms_to_iso(bar.t),
                             age / 1000, self.max_age_ms / 1000)
        run.bars += 1
        return (f"catch-up bar {bar.contract} {bar.tf} {ms_to_iso(bar.t)} sent "
                f"{age / 1000:.0f} s after its close in market time (allowance "
                f"{self.max_age_ms / 1000:.0f} s, STRATEGY_MAX_BAR_AGE): no order is sent for "
                f"a missed bar")

    def refused(self, bar: Bar) -> bool:
        """Count one refused order of the bar's run; True for the run's first (the one kept
        among the strategy's refusals shown by `chillly strategies`)."""
        run = self.runs.get((bar.contract, bar.tf))
        if run is None:
            return False
        run.refused += 1
        return run.refused == 1
