"""The store flushes what it holds on SIGTERM, and a sequence gap on a bar topic makes it
re-fetch the lost window through the "feeds" backfill command (served here by the test from
its own synthetic series, on `hist.1m.<contract>.`, as feed-bars does)."""

from __future__ import annotations

from typing import Any

from chillly import topics
from tests.integration.test_store_support import (
    C, Heartbeats, RawPublisher, db_rows, key, publish_bars, synthetic_bars,
)
from tests.support import START_TIMEOUT, aeventually


async def test_sigterm_commits_everything_received(procs, bus, bus_env) -> None:
    hb = Heartbeats(bus)
    # Nothing would be written for 60 s: only the stop path can commit these rows.
    store = procs.chillly("store", env={"STORE_FLUSH_INTERVAL": "10", "STORE_BATCH_ROWS": "100000",
                                        "STORE_RECOVER": "false"})
    await aeventually(lambda: hb.running("store"), timeout=START_TIMEOUT, what="store running")
    bars = synthetic_bars()
    publish_bars(bus, bars)
    await aeventually(lambda: hb.last["store"]["counters"].get("bars_in") == len(bars),
                      timeout=15, what="store received every bar")
    assert db_rows(bus_env["DATABASE_PATH"], "1m") == []
    assert store.terminate() == 0
    assert db_rows(bus_env["DATABASE_PATH"], "1m") == [key(b) for b in bars]
    # No series process here: `chillly bars` falls back to the database by itself.
    out = procs.chillly("bars", "EP", "--last", "3", "--timeout", "0.5", stdout_pipe=True)
    assert out.wait(60) == 0
    text = out.popen.stdout.read().decode()  # type: ignore[union-attr]
    assert "3 bars from the database" in text and C in text


async def test_sequence_gap_on_a_bar_topic_is_backfilled(procs, bus, bus_env) -> None:
    bars = synthetic_bars()
    requests: list[dict[str, Any]] = []

    async def backfill(args: dict[str, Any]) -> dict[str, Any]:
        requests.append(args)
        sent = [b for b in bars if args["start"] <= b.t <= args["end"]]
        for b in sent:
            bus.publish(topics.history_bar("1m", C), b)
        return {"contract": C, "tf": "1m", "count": len(sent), "first": None, "last": None}

    bus.serve("feeds", {"backfill": backfill})
    hb = Heartbeats(bus)
    procs.chillly("store", env={"STORE_FLUSH_INTERVAL": "0.05", "STORE_RECOVER_DAYS": "3650"})
    await aeventually(lambda: hb.running("store"), timeout=START_TIMEOUT, what="store running")
    raw = RawPublisher(bus_env["BUS_PUBLISH_ADDR"])
    try:
        await raw.connect(bus)
        lost = set(range(40, 55))
        topic = topics.bar("1m", C)
        for seq, b in enumerate(bars, start=1):
            if seq - 1 not in lost:
                raw.send(topic, b, seq)
        db = bus_env["DATABASE_PATH"]
        await aeventually(lambda: db_rows(db, "1m") == [key(b) for b in bars], timeout=15,
                          what="the lost bars re-fetched and stored")
    finally:
        raw.close()
    # One recovery, from the last bar received before the gap (index 39; 40..54 were lost).
    assert requests[0]["contract"] == C and requests[0]["start"] == bars[39].t
    await aeventually(lambda: hb.last["store"]["counters"].get("bar_gaps", 0) >= 1, timeout=5,
                      what="the gap counted")


async def test_contracts_always_and_ticks_when_configured_are_recorded(procs, bus, bus_env
                                                                       ) -> None:
    import sqlite3

    from chillly.messages import ContractInfo, Quote, Trade

    hb = Heartbeats(bus)
    procs.chillly("store", env={"STORE_RECORD_TICKS": "true", "STORE_RECOVER": "false",
                                "STORE_FLUSH_INTERVAL": "0.05"})
    await aeventually(lambda: hb.running("store"), timeout=START_TIMEOUT, what="store running")
    info = ContractInfo(contract=C, symbol="ES", symbol_id="F.US.EP", name="ESZ6",
                        description="E-mini S&P 500", tick_size=0.25, tick_value=12.5,
                        active=True)
    bus.publish(topics.contract_info(C), info)
    bus.publish(topics.contract_info(C), info)      # re-published every minute: one row
    bus.publish(topics.quote(C), Quote(contract=C, bid=5000.0, ask=5000.25, vt=1_000))
    bus.publish(topics.quote(C), Quote(contract=C, last=5000.25))   # partial quote: kept as is
    bus.publish(topics.trade(C), Trade(contract=C, price=5000.25, size=3, aggressor=0, t=2_000))

    def rows(sql: str) -> list[tuple]:
        conn = sqlite3.connect(f"file:{bus_env['DATABASE_PATH']}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    await aeventually(lambda: len(rows("SELECT * FROM trades")) == 1, timeout=10, what="trade")
    assert rows("SELECT contract, symbol, name, tick_size, active FROM contracts") == [
        (C, "ES", "ESZ6", 0.25, 1)]
    quotes = rows("SELECT contract, t, bid, ask, last FROM quotes ORDER BY rowid")
    assert quotes[0] == (C, 1_000, 5000.0, 5000.25, None)
    assert quotes[1][2:] == (None, None, 5000.25)
    assert rows("SELECT contract, t, price, size, aggressor FROM trades") == [
        (C, 2_000, 5000.25, 3, 0)]
