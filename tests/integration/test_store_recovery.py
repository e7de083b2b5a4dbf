"""The store SIGKILLed mid-stream and restarted: afterwards no final bar of the window is missing
or duplicated, at 1m (re-fetched through the "feeds" backfill command) and at every higher
timeframe (re-published by the aggregator's reconcile from the database).

The "feeds" backfill responder here is the test's own: it serves the same synthetic series the
test publishes live, on `hist.1m.<contract>.`, exactly as the feed-bars process answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chillly import topics
from chillly.timeframes import BucketSpec
from trading.aggregator import aggregate
from tests.integration.test_store_support import (
    C, Heartbeats, db_rows, key, publish_bars, synthetic_bars,
)
from tests.support import START_TIMEOUT, aeventually

ENV = {"AGGREGATOR_GRACE": "1", "STORE_FLUSH_INTERVAL": "0.05", "STORE_RECOVER_DAYS": "3650",
       "STORE_BATCH_ROWS": "50"}


async def test_store_killed_mid_stream_recovers_every_final_bar_once(procs, bus, bus_env) -> None:
    bars = synthetic_bars()
    db = bus_env["DATABASE_PATH"]
    backfills: list[dict[str, Any]] = []

    async def backfill(args: dict[str, Any]) -> dict[str, Any]:
        backfills.append(args)
        assert args["contract"] == C and args["tf"] == "1m"
        sent = [b for b in bars if args["start"] <= b.t <= args["end"]]
        for b in sent:
            bus.publish(topics.history_bar("1m", C), b)
        return {"contract": C, "tf": "1m", "count": len(sent),
                "first": sent[0].t if sent else None, "last": sent[-1].t if sent else None}

    bus.serve("feeds", {"backfill": backfill})
    hb = Heartbeats(bus)
    store = procs.chillly("store", env=ENV)
    procs.chillly("aggregator", env=ENV)
    await aeventually(lambda: hb.running("store", "aggregator"), timeout=START_TIMEOUT,
                      what="store and aggregator running")

    a, b_, c = bars[:80], bars[80:170], bars[170:]
    publish_bars(bus, a)
    await aeventually(lambda: len(db_rows(db, "1m")) == len(a), timeout=15, what="first part")
    # Keep publishing while the store dies: some of these reach it, the rest are lost to it.
    for i, bar in enumerate(b_):
        publish_bars(bus, [bar])
        if i == 20:
            store.kill()
        await asyncio.sleep(0.002)
    assert not store.alive()
    stored_at_kill = len(db_rows(db, "1m"))
    assert stored_at_kill < len(a) + len(b_)

    old_pid = hb.pid("store")
    procs.chillly("store", env=ENV)
    await aeventually(lambda: hb.pid("store") != old_pid and hb.running("store"),
                      timeout=START_TIMEOUT, what="store restarted")
    publish_bars(bus, c)

    await aeventually(lambda: db_rows(db, "1m") == [key(x) for x in bars], timeout=20,
                      what="every 1m bar stored exactly once after the restart")
    assert backfills and backfills[0]["start"] <= bars[stored_at_kill - 1].t
    for tf in ("5m", "15m", "30m", "1h", "4h", "1d"):
        expected = [key(x) for x in aggregate(bars, BucketSpec.of(tf))]
        await aeventually(lambda tf=tf, e=expected: db_rows(db, tf) == e, timeout=15,
                          what=f"every {tf} bar stored exactly once after the restart")
    # The higher timeframes came back through the aggregator's reconcile (re-sent finals).
    await aeventually(lambda: hb.last["aggregator"]["counters"].get("resent", 0) > 0, timeout=5,
                      what="aggregator re-sent the finals the store missed")


async def test_history_batches_are_stored_and_bad_rows_rejected_one_by_one(procs, bus, bus_env) -> None:  # type: ignore[no-untyped-def]
    """The bulk path: a BarBatch on hist. becomes rows; a malformed row loses only itself."""
    import sqlite3

    from chillly.messages import BarBatch
    from tests.support import aeventually

    store = procs.chillly("store", env={"STORE_RECOVER": "false"})
    await aeventually(lambda: "running" in store.log(), 30, what="store running")
    t0 = 1_768_406_400_000
    rows = [[t0 + i * 60_000, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, i] for i in range(1200)]
    rows[7] = [t0 + 7 * 60_000 + 1, 1.0, 1.0, 1.0, 1.0, 1]   # off-minute open: rejected
    rows[8] = [t0 + 8 * 60_000, 1.0, 0.5, 1.0, 1.0, 1]        # low above high: rejected
    for i in range(0, len(rows), 500):
        bus.publish(topics.history_bar("1m", C), BarBatch(contract=C, tf="1m", rows=rows[i:i + 500]))
    db = bus_env["DATABASE_PATH"]

    def stored() -> list[tuple]:  # type: ignore[type-arg]
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        except sqlite3.OperationalError:
            return []
        try:
            return conn.execute("SELECT t, o, h, l, c, volume, final FROM bars WHERE contract=? "
                                "AND tf='1m' ORDER BY t", (C,)).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    await aeventually(lambda: len(stored()) >= 1198, 20, what="1198 stored rows")
    got = stored()
    expected = [tuple(r) + (1,) for i, r in enumerate(rows) if i not in (7, 8)]
    assert got == expected
    assert store.alive()
