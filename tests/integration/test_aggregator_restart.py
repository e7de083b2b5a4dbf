"""The aggregator SIGKILLed mid-bucket and restarted: it warms up from the store's database,
publishes the buckets that finished while it was down, continues the open bucket, and never
publishes the same final twice."""

from __future__ import annotations

from typing import Any

from chillly import topics
from chillly.timeframes import BucketSpec
from trading.aggregator import aggregate
from tests.integration.test_store_support import (
    Heartbeats, serve_history, db_rows, key, publish_bars, synthetic_bars,
)
from tests.support import START_TIMEOUT, aeventually

ENV = {"AGGREGATOR_GRACE": "1", "STORE_FLUSH_INTERVAL": "0.05", "STORE_RECOVER": "false"}
# The aggregator killed mid-bucket waits out no grace: with AGGREGATOR_GRACE 1 it finished the
# open 5m bucket (2 of its 5 minutes) once the input had been quiet for a second, so under load
# the kill could come after that final, and the store could hold 13 5m rows before the test
# ever read 12 (its wait then timed out). The restarted one keeps 1 s: the session's last 1h,
# 4h and 1d buckets end by the clock.
FIRST = {**ENV, "AGGREGATOR_GRACE": "3600"}


async def test_aggregator_restart_mid_bucket_loses_and_duplicates_nothing(procs, bus, bus_env
                                                                          ) -> None:
    bars = synthetic_bars()
    db = bus_env["DATABASE_PATH"]
    finals: list[tuple[Any, ...]] = []
    bus.on(topics.bars("5m"), lambda env: finals.append(
        (env.payload["t"], env.payload["volume"], env.payload["rev"]))
        if env.payload["final"] else None)
    serve_history(bus, bars)
    hb = Heartbeats(bus)
    procs.chillly("store", env=ENV)
    agg = procs.chillly("aggregator", env=FIRST)
    await aeventually(lambda: hb.running("store", "aggregator"),
                      timeout=START_TIMEOUT, what="running")

    a, b_, c = bars[:62], bars[62:150], bars[150:]   # 62: the kill falls inside a 5m bucket
    publish_bars(bus, a)
    await aeventually(lambda: len(db_rows(db, "5m")) == len(a) // 5, timeout=15,
                      what="5m finals of the first part")
    agg.kill()
    publish_bars(bus, b_)                            # the aggregator misses these
    await aeventually(lambda: len(db_rows(db, "1m")) == len(a) + len(b_), timeout=15,
                      what="store has the 1m bars the aggregator missed")
    old_pid = hb.pid("aggregator")
    procs.chillly("aggregator", env=ENV)
    await aeventually(lambda: hb.pid("aggregator") != old_pid and hb.running("aggregator"),
                      timeout=START_TIMEOUT, what="aggregator restarted")
    publish_bars(bus, c)

    for tf in ("5m", "15m", "1h", "4h", "1d"):
        expected = [key(x) for x in aggregate(bars, BucketSpec.of(tf))]
        await aeventually(lambda tf=tf, e=expected: db_rows(db, tf) == e, timeout=15,
                          what=f"every {tf} bar stored after the aggregator restart")
    assert len(finals) == len(set(finals)), "a 5m final was published twice"
    assert len({t for t, _, _ in finals}) == len(aggregate(bars, BucketSpec.of("5m")))
