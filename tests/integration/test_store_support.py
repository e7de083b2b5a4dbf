"""Helpers for the store/aggregator integration tests: synthetic 1m series, waits, DB reads.

The synthetic series is test data (deterministic prices at market-open minutes), published by
the test on the real bus exactly as the feed publishes final 1m bars.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chillly import topics
from chillly.calendar import is_market_open
from chillly.clock import MINUTE_MS
from chillly.messages import Bar

C = "CON.F.US.EP.Z26"

# Wednesday 2026-01-14 20:00 UTC (14:00 CT) to Thursday 00:30 UTC: crosses the 16:00 CT halt
# and the 17:00 CT session open, so daily and 4h buckets of two sessions are involved.
START = int(datetime(2026, 1, 14, 20, tzinfo=timezone.utc).timestamp() * 1000)
END = int(datetime(2026, 1, 15, 0, 30, tzinfo=timezone.utc).timestamp() * 1000)


def synthetic_bars(start: int = START, end: int = END, contract: str = C) -> list[Bar]:
    out = []
    t = start
    while t < end:
        if is_market_open(t):
            i = (t - start) // MINUTE_MS
            base = 5000 + round(20 * math.sin(i / 17.0)) * 0.25
            o = base
            c = base + ((i % 7) - 3) * 0.25
            out.append(Bar(contract=contract, tf="1m", t=t, o=o, h=max(o, c) + 0.5,
                           l=min(o, c) - 0.25 * (i % 3), c=c, volume=10 + (i * 37) % 90,
                           final=True, rev=1, origin="poll"))
        t += MINUTE_MS
    return out


def publish_bars(bus: Any, bars: list[Bar], partial_too: bool = True) -> None:
    """As the feed does: a partial revision, then the one final, per minute."""
    for b in bars:
        topic = topics.bar("1m", b.contract)
        if partial_too:
            bus.publish(topic, Bar(contract=b.contract, tf="1m", t=b.t, o=b.o, h=b.h, l=b.l,
                                   c=b.o, volume=1, final=False, rev=0, origin="poll"))
        bus.publish(topic, b)


def serve_history(bus: Any, bars: list[Bar]) -> list[dict[str, Any]]:
    """Answer service "feeds" `backfill` from `bars` as feed-bars does (the bars on
    `hist.1m.<contract>.`, then the reply); returns the requests seen. The aggregator asks for
    the head of a bucket it joined mid-way (defect 18); here the venue has nothing before the
    series starts, so such a bucket is then final with what it has."""
    from chillly.messages import BarBatch

    requests: list[dict[str, Any]] = []

    async def backfill(args: dict[str, Any]) -> dict[str, Any]:
        requests.append(args)
        sent = [b for b in bars if args["start"] <= b.t < args["end"]]
        rows = [[b.t, b.o, b.h, b.l, b.c, b.volume] for b in sent]
        if rows:
            bus.publish(topics.history_bar("1m", args["contract"]),
                        BarBatch(contract=args["contract"], tf="1m", rows=rows))
        return {"contract": args["contract"], "tf": "1m", "count": len(sent),
                "first": sent[0].t if sent else None, "last": sent[-1].t if sent else None}

    bus.serve("feeds", {"backfill": backfill})
    return requests


class Heartbeats:
    """Latest heartbeat per process name, from the test's bus."""

    def __init__(self, bus: Any) -> None:
        self.last: dict[str, dict[str, Any]] = {}
        bus.on(topics.HEARTBEATS, self._on)

    def _on(self, env: Any) -> None:
        self.last[env.payload["name"]] = env.payload

    def running(self, *names: str) -> bool:
        return all(self.last.get(n, {}).get("state") == "RUNNING" for n in names)

    def pid(self, name: str) -> int | None:
        return self.last.get(name, {}).get("pid")


def db_rows(path: str | Path, tf: str, contract: str = C) -> list[tuple]:
    """(t, o, h, l, c, volume) of stored bars, oldest first; [] while the file is not there."""
    try:
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return []
    try:
        return conn.execute("SELECT t, o, h, l, c, volume FROM bars WHERE contract=? AND tf=? "
                            "ORDER BY t", (contract, tf)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def key(b: Bar) -> tuple:
    return (b.t, b.o, b.h, b.l, b.c, b.volume)


class RawPublisher:
    """A second publisher with its own `src` and hand-set `seq`, through the real codec: lets a
    test lose messages on purpose (a seq jump) as a congested bus would."""

    def __init__(self, addr: str, src: str = "feed-bars") -> None:
        import zmq

        self.src = src
        self.sock = zmq.Context.instance().socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(addr)

    async def connect(self, bus: Any, timeout: float = 10.0) -> None:
        """Send probes until `bus` sees one: the broker has our subscriber's subscriptions."""
        import asyncio

        from chillly.messages import Probe

        seen = asyncio.Event()
        topic = f"_rawprobe.{self.src}."
        bus.on(topic, lambda env: seen.set())
        for i in range(1, int(timeout / 0.02)):
            self.send(topic, Probe(nonce=i), i)
            try:
                await asyncio.wait_for(seen.wait(), 0.02)
                return
            except asyncio.TimeoutError:
                continue
        raise AssertionError("raw publisher never reached the broker")

    def send(self, topic: str, msg: Any, seq: int) -> None:
        from chillly.codec import encode

        self.sock.send_multipart(encode(topic, msg, self.src, seq, 0))

    def close(self) -> None:
        self.sock.close()
