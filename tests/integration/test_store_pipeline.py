"""Real broker + store + aggregator + series processes with a real SQLite file: final 1m bars
published on the bus end up stored at every timeframe, equal to a plain aggregation of the same
1m bars, and are served by the series process and `chillly bars`."""

from __future__ import annotations

import json

from chillly import topics
from chillly.messages import Bar
from chillly.timeframes import BucketSpec
from trading.aggregator import aggregate
from tests.integration.test_store_support import (
    C, Heartbeats, serve_history, db_rows, key, publish_bars, synthetic_bars,
)
from tests.support import START_TIMEOUT, aeventually, market_at, next_weekday_at

ENV = {"AGGREGATOR_GRACE": "1", "STORE_FLUSH_INTERVAL": "0.05", "STORE_RECOVER": "false"}


async def test_final_1m_bars_become_stored_bars_at_every_timeframe(procs, bus, bus_env) -> None:
    bars = synthetic_bars()
    history = serve_history(bus, bars)
    hb = Heartbeats(bus)
    started = {name: procs.chillly(name, env=ENV) for name in ("store", "aggregator", "series")}
    await aeventually(lambda: hb.running("store", "aggregator", "series"), timeout=START_TIMEOUT,
                      what="store, aggregator and series running")
    publish_bars(bus, bars)
    db = bus_env["DATABASE_PATH"]
    # A schema-valid but impossible bar (low above high) is counted and dropped by both.
    b = bars[-1]
    bus.publish(topics.bar("1m", C), Bar(contract=C, tf="1m", t=b.t + 60_000, o=1.0, h=1.0,
                                          l=2.0, c=1.0, volume=1, final=True))
    await aeventually(lambda: hb.last.get("store", {}).get("counters", {}).get("rejected") == 1
                      and hb.last["aggregator"]["counters"].get("rejected") == 1,
                      timeout=10, what="the bad bar rejected and counted")

    await aeventually(lambda: len(db_rows(db, "1m")) == len(bars), timeout=15,
                      what="every final 1m bar stored")
    assert db_rows(db, "1m") == [key(b) for b in bars]   # partials were not stored

    for tf in ("5m", "15m", "30m", "1h", "4h", "1d"):
        expected = [key(b) for b in aggregate(bars, BucketSpec.of(tf))]
        await aeventually(lambda tf=tf, e=expected: db_rows(db, tf) == e, timeout=15,
                          what=f"stored {tf} bars equal the aggregation of the 1m bars")
    # The 4h and 1d buckets the series joined mid-way asked for their head first (defect 18).
    assert history and min(r["start"] for r in history) == BucketSpec.of("1d").bounds(bars[0].t)[0]
    # Two sessions: the one opened 2026-01-13 17:00 CT and the one opened 2026-01-14 17:00 CT.
    assert [r[0] for r in db_rows(db, "1d")] == [1768345200000, 1768431600000]

    reply = await bus.request("series", "window", {"contract": "EP", "tf": "5m", "last": 3},
                              timeout=3)
    assert reply.ok, reply.error
    assert reply.result["contract"] == C
    assert [tuple(r[:6]) for r in reply.result["bars"]] == \
        [key(b) for b in aggregate(bars, BucketSpec.of("5m"))][-3:]
    bad = await bus.request("series", "window", {"contract": C, "tf": "7x", "last": 3}, timeout=3)
    assert not bad.ok and "timeframe" in (bad.error or "")

    out = procs.chillly("bars", C, "--tf", "1h", "--last", "2", stdout_pipe=True)
    assert out.wait(60) == 0
    text = out.popen.stdout.read().decode()  # type: ignore[union-attr]
    assert "series process" in text and "2026-01-15 00:00" in text and "final" in text
    out = procs.chillly("bars", C, "--tf", "1d", "--last", "5", "--db", stdout_pipe=True)
    assert out.wait(60) == 0
    text = out.popen.stdout.read().decode()  # type: ignore[union-attr]
    assert "2 bars from the database" in text
    # --json: one document (issue 21 item 7); on a weekend, a note on stderr (item 12).
    out = procs.chillly("bars", C, "--tf", "1d", "--last", "5", "--db", "--json",
                        stdout_pipe=True, name="bars-json",
                        env=market_at(next_weekday_at(5, 12, open_market=False)))
    assert out.wait(60) == 0
    doc = json.loads(out.popen.stdout.read().decode())  # type: ignore[union-attr]
    assert doc["contract"] == C and doc["tf"] == "1d" and doc["source"] == "database"
    assert [(b["t"], b["o"], b["h"], b["l"], b["c"], b["v"]) for b in doc["bars"]] == \
        db_rows(db, "1d") and all(b["final"] for b in doc["bars"])
    assert "chillly bars: the market is closed; it opens Sun " in out.log()

    # The series cache is memory only: restarted, it serves the same window from the database.
    before = await bus.request("series", "window", {"contract": C, "tf": "1h", "last": 10},
                               timeout=3)
    old_pid = hb.pid("series")
    started["series"].kill()
    procs.chillly("series", env=ENV)
    await aeventually(lambda: hb.pid("series") != old_pid and hb.running("series"),
                      timeout=START_TIMEOUT, what="series restarted")
    after = await bus.request("series", "window", {"contract": C, "tf": "1h", "last": 10},
                              timeout=3)
    assert after.ok and after.result == before.result
    assert [tuple(r[:6]) for r in after.result["bars"]] == db_rows(db, "1h")
