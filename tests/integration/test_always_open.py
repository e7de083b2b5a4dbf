"""Defect 2 through the real aggregator process: on an always-open market
(FEED_MARKET_HOURS=always, the README's demo settings) a daily bucket runs 17:00 CT to 17:00 CT
and is final once, at its end. With the CME calendar it went final at 15:59 CT and then
published 60 revisions, one per minute of the halt the venue does not have."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from chillly import topics
from chillly.clock import MINUTE_MS
from chillly.messages import Bar
from chillly.timeframes import BucketSpec
from tests.integration.test_store_support import C, Heartbeats, serve_history
from tests.support import START_TIMEOUT, aeventually

OPEN = int(datetime(2026, 1, 13, 23, tzinfo=timezone.utc).timestamp() * 1000)  # Tue 17:00 CT


def day_of_bars() -> list[Bar]:
    """Every minute of one always-open session, plus the first minutes of the next."""
    out = []
    for i in range(24 * 60 + 5):
        p = 5000.0 + (i % 50) * 0.25
        out.append(Bar(contract=C, tf="1m", t=OPEN + i * MINUTE_MS, o=p, h=p + 0.5, l=p - 0.5,
                       c=p, volume=1 + i % 7, final=True, origin="poll"))
    return out


async def test_daily_bars_of_an_always_open_market_are_final_once_at_their_end(procs, bus
                                                                                ) -> None:
    bars = day_of_bars()
    serve_history(bus, bars)
    daily: list[dict[str, Any]] = []
    bus.on(topics.bars("1d"), lambda env: daily.append(env.payload))
    hb = Heartbeats(bus)
    # The day ends by the next session's first bars, not by the clock: a grace of an hour (the
    # bars are old, so any quiet longer than the grace finished the day early, then revised it:
    # a 1 s grace failed whenever a loaded machine paused the stream for a second).
    procs.chillly("aggregator", env={"FEED_MARKET_HOURS": "always", "AGGREGATOR_GRACE": "3600",
                                     "AGGREGATOR_TIMEFRAMES": "4h,1d"})
    await aeventually(lambda: hb.running("aggregator"),
                      timeout=START_TIMEOUT, what="aggregator running")
    start, end = BucketSpec.of("1d").bounds(OPEN)
    assert start == OPEN
    for b in bars:
        bus.publish(topics.bar("1m", C), b)
    await aeventually(lambda: any(p["final"] and p["t"] == start for p in daily), timeout=20,
                      what="the daily final")
    await aeventually(lambda: hb.last["aggregator"]["counters"].get("bars_in") == len(bars),
                      timeout=10, what="every 1m bar applied")
    finals = [p for p in daily if p["final"] and p["t"] == start]
    assert len(finals) == 1, f"{len(finals)} finals/revisions of one daily bar"
    day = [b for b in bars if start <= b.t < end]
    assert finals[0]["volume"] == sum(b.volume for b in day)
    assert hb.last["aggregator"]["counters"].get("revisions", 0) == 0
