"""Defect 15: the feeds end to end through the CME calendar's closed hours, not always-open.

The sim keeps CME hours (SIM_ALWAYS_OPEN=0) and the feeds use the CME calendar
(FEED_MARKET_HOURS=cme), on an accelerated clock:
- the daily halt: the clock starts at 09:20 CT at 1200x, so the stack is normally up (within 20
  real s) before 16:00 CT and sees the close live; through 16:00-17:00 CT (3 real s) into the
  evening session (on a machine so loaded that it comes up inside the halt, the rest still holds);
- a weekend: the clock starts at the Friday close at 7200x, so the stack comes up during the
  weekend (about 24 real s long) and runs through it to the Sunday 17:00 CT open;
- a holiday (defect 10): Thanksgiving 2026 has no session, closed from Wednesday 16:00 CT to
  Thursday 17:00 CT (4800x: about 19 real s); the sim and the feeds both take it from
  chillly.calendar.
While closed: no stale-feed or unreachable alarm (FEED_STALE_MIN_REAL is below the closed
stretch's real length, so ignoring the calendar raises one: FEED_MARKET_HOURS=always fails both
tests), no hub reconnect, no bar, print or clock tick for closed time. At the open the finals
resume and equal the venue's. Alarms and reconnects are judged by their market time (the
envelope's `ts`), so a loaded machine's hiccup in open hours is not mistaken for one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chillly.calendar import CHICAGO, is_market_open
from chillly.clock import MINUTE_MS
from chillly.messages import Alarm, Bar, ClockTick, Heartbeat, Trade
from chillly.timeframes import BucketSpec
from tests.integration.test_feeds_helpers import (Collect, Stack, assert_finals_match_venue,
                                                  stack_env)
from tests.integration.test_store_sim import anchor_for
from tests.support import aeventually

ES = "CON.F.US.EP.Z26"   # the front month in both windows (the sim rolls it on 2026-12-10)


def ct(*args: int) -> int:
    return int(datetime(*args, tzinfo=CHICAGO).timestamp() * 1000)  # type: ignore[misc]


class Stamped:
    """(market ts, message) of everything under a topic prefix."""

    def __init__(self, bus: Any, prefix: str) -> None:
        self.items: list[tuple[int, Any]] = []
        bus.on(prefix, lambda env: self.items.append((env.payload["ts"], env.message())))


def last_hb(col: Collect, name: str) -> dict[str, Any]:
    got = [h for h in col.items if isinstance(h, Heartbeat) and h.name == name]
    return got[-1].counters if got else {}


def bucket_traded(tf: str, t: int) -> bool:
    """Whether the market was open in any minute of the `tf` bucket opening at `t`."""
    end = t + MINUTE_MS if tf == "1m" else BucketSpec.of(tf).bounds(t)[1]
    return any(is_market_open(m) for m in range(t, end, MINUTE_MS))


async def run_through(procs: Any, bus: Any, *, speed: float, anchor: int, close: int,
                      open_: int, stale_min_real: float, live_close: bool = False) -> None:
    procs.env.update(stack_env(
        speed=speed, DEFAULT_CONTRACTS="ES", SIM_ALWAYS_OPEN="0", FEED_MARKET_HOURS="cme",
        SIM_ROOTS="EP", FEED_STALE_AFTER="120", FEED_STALE_MIN_REAL=str(stale_min_real),
        HEARTBEAT_INTERVAL="0.2", FEED_POLL_INTERVAL=str(max(30, speed // 20)),
        SIM_TOKEN_LIFETIME_S="10000000"))   # no token-refresh reconnect inside the run
    procs.env["CLOCK_ANCHOR"] = anchor_for(anchor, speed)
    stack = Stack(procs)
    alarms = Stamped(bus, "alarm.")
    stamped_hbs = Stamped(bus, "hb.feed-market.")
    hbs = Collect(bus, "hb.")
    bars = Collect(bus, "bar.1m.")
    ticks = Collect(bus, "clock.")
    prints = Collect(bus, "trade.")
    await stack.start_sim()
    stack.start("subscriptions")
    stack.start("feed-bars")
    stack.start("feed-market")
    await aeventually(lambda: last_hb(hbs, "feed-market").get("hub_connects", 0) >= 1,
                      timeout=20, what="feed-market connected")
    started = stack.market_now()
    assert started < open_, "the stack started too late to see closed hours"
    live_close = live_close and started < close - 2 * MINUTE_MS
    # Through the closed hours to three final bars after the open.
    after = await aeventually(lambda: len([b for b in bars.finals(ES) if b.t >= open_]) >= 3
                              or None, timeout=40, what="finals after the open")
    assert after
    finals = bars.finals(ES)

    raised = [a for ts, a in alarms.items if isinstance(a, Alarm) and a.active
              and close <= ts < open_]
    assert not raised, f"alarms while the market was closed: {raised}"
    closed_hbs = [h.counters for ts, h in stamped_hbs.items
                  if close <= ts < open_ and h.counters.get("hub_connects", 0) >= 1]
    assert len(closed_hbs) >= 2, "no heartbeats while closed"
    assert closed_hbs[-1]["hub_connects"] == closed_hbs[0]["hub_connects"], "a reconnect"
    assert closed_hbs[-1].get("hub_stale_alarms", 0) == closed_hbs[0].get("hub_stale_alarms", 0)
    assert not [b for b in bars.items if isinstance(b, Bar) and close <= b.t < open_], \
        "a bar for closed time"
    assert not [p for p in prints.items if isinstance(p, Trade) and close <= p.t < open_], \
        "a print in closed time"
    idle = [(k.tf, k.t) for k in ticks.items if isinstance(k, ClockTick)
            and k.tf in ("1m", "5m", "1h", "4h") and not bucket_traded(k.tf, k.t)]
    assert not idle, f"clock ticks for buckets that never traded: {idle[:5]}"
    assert any(isinstance(k, ClockTick) and k.tf == "1m" and k.t >= open_ for k in ticks.items)
    assert_finals_match_venue(stack, finals)
    assert min(b.t for b in finals if b.t >= open_) == open_, "the first minute after the open"
    if live_close:   # the last minute before the halt came live, as a final
        assert close - MINUTE_MS in [b.t for b in finals]


async def test_through_the_daily_halt(procs, bus) -> None:  # type: ignore[no-untyped-def]
    """Wednesday 2026-12-02: up before 16:00 CT, halt 16:00-17:00 CT, finals from 17:00."""
    close, open_ = ct(2026, 12, 2, 16), ct(2026, 12, 2, 17)
    await run_through(procs, bus, speed=1200, anchor=ct(2026, 12, 2, 9, 20), close=close,
                      open_=open_, stale_min_real=1.5, live_close=True)


async def test_through_a_weekend_to_the_sunday_open(procs, bus) -> None:  # type: ignore[no-untyped-def]
    """Friday 2026-12-04 16:00 CT to Sunday 2026-12-06 17:00 CT."""
    close, open_ = ct(2026, 12, 4, 16), ct(2026, 12, 6, 17)
    await run_through(procs, bus, speed=7200, anchor=ct(2026, 12, 4, 15, 59), close=close,
                      open_=open_, stale_min_real=3.0)


async def test_through_thanksgiving_to_the_evening_open(procs, bus) -> None:  # type: ignore[no-untyped-def]
    """Wednesday 2026-11-25 16:00 CT to Thursday 2026-11-26 17:00 CT: no Thursday session."""
    close, open_ = ct(2026, 11, 25, 16), ct(2026, 11, 26, 17)
    await run_through(procs, bus, speed=4800, anchor=ct(2026, 11, 25, 15, 59), close=close,
                      open_=open_, stale_min_real=3.0)
