"""Found by the chaos run: the store SIGKILLed while a recovery is pending (a gap it saw on the
live stream, not yet backfilled) came back recovering only from its newest stored bar, so the
hole behind that bar stayed for good. The recovery it owes is now kept in the database with the
rows after the gap; a restarted store asks for the hole again.

A raw publisher (as feed-bars) sends a final bar, skips three sequence numbers, sends the next;
no feed answers the store's backfill (it stays owed); the store is killed and restarted; the
backfill the restarted store asks for must start at the hole, not at its newest bar.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import zmq

from chillly import topics
from chillly.bus import Bus
from chillly.clock import MINUTE_MS
from chillly.codec import encode_payload
from chillly.messages import Bar
from tests.support import START_TIMEOUT, Procs, aeventually

C = "CON.F.US.EP.Z26"


def owed(db: str) -> Any:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='recovery_owed'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


async def test_a_killed_store_still_recovers_the_hole_it_owed(procs: Procs, broker,
                                                              bus_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    env = {"STORE_REQUEST_TIMEOUT": "0.5"}
    store = procs.chillly("store", env=env)
    test = Bus(bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"], "test")
    asked: list[dict[str, Any]] = []
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(bus_env["BUS_PUBLISH_ADDR"])
    t0 = (int(time.time() * 1000) // MINUTE_MS - 20) * MINUTE_MS
    db = bus_env["DATABASE_PATH"]
    try:
        await test.ready(timeout=START_TIMEOUT)
        await aeventually(lambda: "running" in store.log(), START_TIMEOUT, what="store running")

        def send(seq: int, t: int) -> None:
            bar = Bar(contract=C, tf="1m", t=t, o=1.0, h=2.0, l=0.5, c=1.5, volume=1, final=True)
            raw.send_multipart([topics.bar("1m", C).encode(),
                                encode_payload(bar.body(), "feed-bars", seq, int(time.time() * 1000))])

        def stored(t: int) -> bool:
            try:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    return conn.execute("SELECT 1 FROM bars WHERE t=?", (t,)).fetchone() is not None
                finally:
                    conn.close()
            except sqlite3.Error:
                return False

        async def first_stored() -> bool:
            send(1, t0)
            return stored(t0)

        await aeventually(first_stored, 20, interval=0.2, what="the first bar stored")
        send(5, t0 + 4 * MINUTE_MS)   # seq 2..4 (three minutes) lost
        await aeventually(lambda: stored(t0 + 4 * MINUTE_MS) and owed(db), 20,
                          what="the bar after the gap and the owed recovery committed")
        store.kill()
        test.serve("feeds", {"backfill": lambda args: _answer(asked, args)})
        procs.chillly("store", env=env, name="store-again")
        await aeventually(lambda: asked, 30, what="the restarted store asking for a backfill")
        assert asked[0]["contract"] == C
        assert asked[0]["start"] <= t0 + MINUTE_MS, (asked[0], t0)
    finally:
        raw.close(0)
        await test.close()


async def _answer(asked: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
    asked.append(dict(args))
    return {"contract": args.get("contract"), "tf": "1m", "count": 0, "first": None,
            "last": None}
