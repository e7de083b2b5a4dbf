"""Defect 18 end to end: the feed follows a contract from the minute it subscribes, mid-way
through a 15m (and 5m) bucket. The aggregator must not publish that bucket final with only the
minutes it saw: it fetches the bucket's first minutes from the venue (feeds backfill) and the
stored final equals the venue's own aggregation of the whole bucket."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx
import pytest

from chillly import topics
from chillly.messages import Bar
from chillly.timeframes import BucketSpec
from trading.aggregator import aggregate
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
    # The default AGGREGATOR_GRACE (120 market s): at 1 market s (17 real ms at 60x) the clock
    # finished the 15m bucket before its last minute's final arrived on a loaded machine, and
    # the first final lacked that minute (CI, once: close and volume one bar short).
    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES",
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


@pytest.mark.parametrize("owed", [False, True], ids=["fresh", "store-recovering"])
async def test_a_database_window_with_a_hole_is_not_taken_for_the_whole_session(
        procs, bus, bus_env, owed: bool) -> None:
    """Defect 18, the race seen in CI: the database held the first batch of a session's
    backfill and its last hour, not the hours between (the store was still writing them), when
    the aggregator read it. The oldest bar read is no proof that every later one is there: the
    daily bar must be completed from the venue's history, and its first final must hold the
    whole session (it went final with 60% of its volume).

    store-recovering: the database also holds the session before (so the window looks whole),
    but the store's note says it still owes a 1m backfill from the hole's start: the window is
    not whole until the store has refilled it."""
    from chillly.clock import MINUTE_MS
    from tests.sim_client import login, wait_ready
    from store.db import open_writer
    from tests.integration.test_store_sim import A, MARKET_START, SPEED, anchor_for, venue_bars

    env = {"CLOCK_SPEED": str(SPEED), "CLOCK_ANCHOR": anchor_for(MARKET_START, SPEED),
           "SIM_HISTORY_DAYS": "5", "AGGREGATOR_TIMEFRAMES": "1d",
           "AGGREGATOR_REQUEST_TIMEOUT": "5"}
    procs.chillly("sim", env=env)
    base = f"http://127.0.0.1:{bus_env['SIM_PORT']}"
    wait_ready(base)
    token = login(base)
    day = BucketSpec.of("1d")
    start, end = day.bounds(A)                                   # Tuesday's session
    found = httpx.post(f"{base}/api/Contract/search", headers={
        "Authorization": f"Bearer {token}"}, json={"searchText": "ES", "live": False}).json()
    cid = found["contracts"][0]["id"]
    session = venue_bars(base, token, cid, 2, 1, start, end)
    assert len(session) > 1000 and session[-1][0] == A + 59 * MINUTE_MS   # 15:59 CT
    held = session[:500] + session[-60:]                          # a hole of ~14 hours
    conn = open_writer(bus_env["DATABASE_PATH"])
    conn.executemany("INSERT INTO bars VALUES (?, '1m', ?, ?, ?, ?, ?, ?, 1, 1, 'poll', 0)",
                     [(cid, *r) for r in held])
    if owed:
        # Friday's last hour: older than the warm-up window (which reaches back to Monday's
        # session), so the window looks whole.
        friday = start - 74 * 60 * MINUTE_MS
        before = venue_bars(base, token, cid, 2, 1, friday, friday + 60 * MINUTE_MS)
        assert before
        conn.executemany("INSERT INTO bars VALUES (?, '1m', ?, ?, ?, ?, ?, ?, 1, 1, 'poll', 0)",
                         [(cid, *r) for r in before])
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('recovery_owed', ?)",
                     (json.dumps({cid: [held[499][0], held[499][0]]}),))
    conn.close()
    finals: list[dict[str, Any]] = []
    bus.on(topics.bars("1d"), lambda e: finals.append(e.payload) if e.payload["final"] else None)
    procs.chillly("feed-bars", env=env)      # serves the backfill the aggregator asks for
    procs.chillly("aggregator", env=env)
    await aeventually(lambda: [p for p in finals if p["t"] == start], timeout=40,
                      what="the session's daily final")
    venue = [Bar(contract=cid, tf="1m", t=r[0], o=r[1], h=r[2], l=r[3], c=r[4], volume=r[5],
                 final=True) for r in session]
    want = aggregate(venue, day)[0]
    first = [p for p in finals if p["t"] == start][0]
    assert (first["o"], first["h"], first["l"], first["c"], first["volume"]) == (
        want.o, want.h, want.l, want.c, want.volume), f"held {sum(r[5] for r in held)} volume"
