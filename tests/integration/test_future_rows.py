"""Defect 17, the database side: a bar dated ten days ahead already in the database (stored
before bars were checked) must not move the windows. The store's start-up recovery backfills
from the newest real 1m bar (not from the future one, which made the window empty), the
aggregator's warm-up counts back from it too (so the real buckets are published), and the
series cache does not serve the future bar."""

from __future__ import annotations

import time

from chillly.clock import DAY_MS
from chillly.timeframes import BucketSpec
from trading.aggregator import aggregate
from store.db import open_writer
from tests.integration.test_store_support import (
    C, Heartbeats, db_rows, key, serve_history, synthetic_bars,
)
from tests.support import START_TIMEOUT, aeventually

ENV = {"AGGREGATOR_GRACE": "1", "STORE_FLUSH_INTERVAL": "0.05", "STORE_RECOVER_DAYS": "3650",
       "AGGREGATOR_WARMUP_DAYS": "1", "STORE_REQUEST_TIMEOUT": "3"}


async def test_a_stored_future_bar_moves_no_window(procs, bus, bus_env) -> None:
    bars = synthetic_bars()
    db = bus_env["DATABASE_PATH"]
    future = (int(time.time() * 1000) + 10 * DAY_MS) // 60_000 * 60_000
    conn = open_writer(db)
    conn.executemany("INSERT INTO bars VALUES (?, '1m', ?, ?, ?, ?, ?, ?, 1, 1, 'poll', 0)",
                     [(C, b.t, b.o, b.h, b.l, b.c, b.volume) for b in bars]
                     + [(C, future, 1.0, 1.0, 1.0, 1.0, 1)])
    conn.close()
    requests = serve_history(bus, bars)
    hb = Heartbeats(bus)
    for name in ("store", "aggregator", "series"):
        procs.chillly(name, env=ENV)
    await aeventually(lambda: hb.running("store", "aggregator", "series"), timeout=START_TIMEOUT,
                      what="store, aggregator and series running")
    # The store's recovery starts at the newest real 1m bar.
    await aeventually(lambda: any(r["start"] == bars[-1].t for r in requests), timeout=15,
                      what="a backfill from the newest real bar")
    assert all(r["start"] < future for r in requests)
    # The aggregator warmed up over the real bars and published their higher timeframes.
    for tf in ("5m", "1h"):
        expected = [key(b) for b in aggregate(bars, BucketSpec.of(tf))]
        await aeventually(lambda tf=tf, e=expected: db_rows(db, tf) == e, timeout=15,
                          what=f"{tf} bars of the real 1m bars")
    reply = await bus.request("series", "window", {"contract": C, "tf": "1m", "last": 3},
                              timeout=3)
    assert reply.ok and [r[0] for r in reply.result["bars"]] == [b.t for b in bars[-3:]]
