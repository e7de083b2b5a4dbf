"""Defect 1 end to end: a venue that revises a bar after serving it final (the sim with
SIM_REVISE_AFTER_FINAL: for 30 market seconds after a minute ends its bar lacks the last print).
feed-bars publishes those early finals. Either a later backfill reads the venue's corrected
bars, or feed-bars itself re-reads its recent finals (FEED_REVISE_WINDOW) and re-publishes the
revised ones as history; the corrected reading replaces the stored final although its `rev` is
not higher (0 for history): the database then equals the venue at 1m, and the aggregator's 5m
bars are recomputed over the corrected minutes."""

from __future__ import annotations

import sqlite3

from chillly.clock import MINUTE_MS
from chillly.messages import Bar
from chillly.timeframes import BucketSpec
from trading.aggregator import aggregate
from tests.integration.test_feeds_helpers import Stack, stack_env
from tests.integration.test_store_support import db_rows
from tests.support import aeventually


def stored_contract(db: str) -> str | None:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        row = conn.execute("SELECT contract, COUNT(*) FROM bars WHERE tf='1m' "
                           "GROUP BY contract ORDER BY 2 DESC LIMIT 1").fetchone()
        conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row and row[1] >= 8 else None


async def test_a_bar_the_venue_revises_after_its_final_is_corrected_by_a_backfill(procs, bus
                                                                                  ) -> None:
    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES", SIM_REVISE_AFTER_FINAL="30",
                               AGGREGATOR_GRACE="1", STORE_FLUSH_INTERVAL="0.05",
                               STORE_REQUEST_TIMEOUT="5", FEED_REVISE_WINDOW="0"))
    db = procs.env["DATABASE_PATH"]
    stack = Stack(procs)
    await stack.start_sim()
    for name in ("subscriptions", "feed-bars", "store", "aggregator"):
        stack.start(name)
    cid = await aeventually(lambda: stored_contract(db), timeout=40, what="8 finals stored")
    stored = db_rows(db, "1m", cid)
    first, last = stored[0][0], stored[-1][0]
    # Read the venue once every stored minute is settled there (30 s after its end).
    await aeventually(lambda: stack.market_now() >= last + MINUTE_MS + 31_000, timeout=10,
                      what="the stored minutes settled at the venue")
    venue = [tuple(r) for r in stack.venue_bars(cid, first, last + MINUTE_MS)]
    # The venue revised what it served as final: the stored early finals differ from it now.
    assert [r for r in stored if r not in venue], "the sim switch revised nothing"

    out = procs.chillly("backfill", "ES", "--days", "0.1", stdout_pipe=True)
    assert out.wait(60) == 0
    await assert_corrected(db, cid, first, last, venue)


async def test_feed_bars_re_reads_its_recent_finals_and_publishes_the_venues_corrections(
        procs, bus) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.test_store_support import Heartbeats

    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES", SIM_REVISE_AFTER_FINAL="30",
                               AGGREGATOR_GRACE="1", STORE_FLUSH_INTERVAL="0.05",
                               STORE_REQUEST_TIMEOUT="5"))
    db = procs.env["DATABASE_PATH"]
    hb = Heartbeats(bus)
    stack = Stack(procs)
    await stack.start_sim()
    for name in ("subscriptions", "feed-bars", "store", "aggregator"):
        stack.start(name)
    cid = await aeventually(lambda: stored_contract(db), timeout=40, what="8 finals stored")
    await aeventually(lambda: hb.last.get("feed-bars", {}).get("counters", {}).get(
        "corrections", 0) > 0, timeout=10, what="feed-bars published corrections")
    first, last = db_rows(db, "1m", cid)[0][0], db_rows(db, "1m", cid)[-1][0]
    await aeventually(lambda: stack.market_now() >= last + MINUTE_MS + 31_000, timeout=10,
                      what="the stored minutes settled at the venue")
    venue = [tuple(r) for r in stack.venue_bars(cid, first, last + MINUTE_MS)]
    await assert_corrected(db, cid, first, last, venue)   # no backfill asked for


async def assert_corrected(db: str, cid: str, first: int, last: int, venue: list) -> None:
    def corrected() -> bool:
        rows = [r for r in db_rows(db, "1m", cid) if first <= r[0] <= last]
        return rows == venue

    await aeventually(corrected, timeout=20, what="the venue's corrected bars stored at 1m")
    spec = BucketSpec.of("5m")
    bars = [Bar(contract=cid, tf="1m", t=r[0], o=r[1], h=r[2], l=r[3], c=r[4], volume=r[5],
                final=True) for r in venue]
    # Whole buckets inside the corrected span (the first may have begun before the feed did).
    want = [(b.t, b.o, b.h, b.l, b.c, b.volume) for b in aggregate(bars, spec)
            if b.t >= first and spec.bounds(b.t)[1] <= last + MINUTE_MS]
    assert want

    def five() -> bool:
        got = {r[0]: r for r in db_rows(db, "5m", cid)}
        return all(got.get(w[0]) == w for w in want)

    await aeventually(five, timeout=20, what="5m bars recomputed over the corrected minutes")
