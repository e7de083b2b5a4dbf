"""Defect 18 end to end: the feed follows a contract from the minute it subscribes, mid-way
through a 15m (and 5m) bucket. The aggregator must not publish that bucket final with only the
minutes it saw: it fetches the bucket's first minutes from the venue (feeds backfill) and the
stored final equals the venue's own aggregation of the whole bucket."""

from __future__ import annotations

import sqlite3
from typing import Any

from chillly import topics
from chillly.messages import Bar
from chillly.timeframes import BucketSpec
from feeds.aggregator import aggregate
from tests.integration.test_feeds_helpers import Stack, stack_env
from tests.integration.test_store_support import Heartbeats, db_rows
from tests.support import aeventually


def first_1m(db: str) -> tuple[str, int] | None:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        row = conn.execute("SELECT contract, MIN(t) FROM bars WHERE tf='1m' AND origin='poll' "
                           "GROUP BY contract LIMIT 1").fetchone()
        conn.close()
    except sqlite3.Error:
        return None
    return (row[0], row[1]) if row else None


async def test_the_first_bucket_after_a_subscription_is_final_with_all_its_data(procs, bus
                                                                                 ) -> None:
    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES", AGGREGATOR_GRACE="1",
                               STORE_FLUSH_INTERVAL="0.05", AGGREGATOR_REQUEST_TIMEOUT="5"))
    db = procs.env["DATABASE_PATH"]
    live_first: dict[str, int] = {}

    def on_live(env: Any) -> None:
        if env.payload["final"]:
            live_first.setdefault(env.payload["contract"], env.payload["t"])

    bus.on(topics.bars("1m"), on_live)
    hb = Heartbeats(bus)
    stack = Stack(procs)
    await stack.start_sim()
    for name in ("subscriptions", "store", "aggregator", "feed-bars"):
        stack.start(name)
    await aeventually(lambda: live_first, timeout=30, what="the first live final")
    cid, t_first = next(iter(live_first.items()))
    for tf in ("5m", "15m"):
        spec = BucketSpec.of(tf)
        start, end = spec.bounds(t_first)
        await aeventually(lambda s=start, tf=tf: any(r[0] == s for r in db_rows(db, tf, cid)),
                          timeout=40, what=f"the first {tf} final stored")
        venue = [Bar(contract=cid, tf="1m", t=r[0], o=r[1], h=r[2], l=r[3], c=r[4],
                     volume=r[5], final=True) for r in stack.venue_bars(cid, start, end)]
        want = [(b.t, b.o, b.h, b.l, b.c, b.volume) for b in aggregate(venue, spec)]
        got = [r for r in db_rows(db, tf, cid) if r[0] == start]
        assert got == want, f"{tf} bucket joined {(t_first - start) // 60_000} min in"
    if t_first > BucketSpec.of("15m").bounds(t_first)[0]:
        # Joined mid-bucket (the usual case): the head came from the venue's history.
        await aeventually(lambda: hb.last["aggregator"]["counters"].get("history_fills", 0) >= 1,
                          timeout=5, what="the head fetched from history")
