"""Defects 16 and 17 end to end: schema-valid but impossible bars (NaN, volume 2**63, open
outside low..high, a negative price, an injected final with a huge rev and high=inf, a bar dated
ten days ahead) published on the real bus among real ones. Store, aggregator and series reject
each alone and count it; every real bar is stored, the higher timeframes equal the aggregation
of the real bars (no inf spread, no stall behind the future bar), the series serves no garbage.
"""

from __future__ import annotations

import math
import time

from chillly import topics
from chillly.clock import DAY_MS
from chillly.messages import Bar, BarBatch
from chillly.timeframes import BucketSpec
from trading.aggregator import aggregate
from tests.integration.test_store_support import (
    C, Heartbeats, serve_history, db_rows, key, publish_bars, synthetic_bars,
)
from tests.support import START_TIMEOUT, aeventually

ENV = {"AGGREGATOR_GRACE": "1", "STORE_FLUSH_INTERVAL": "0.05", "STORE_RECOVER": "false"}


def poison(b: Bar) -> list[Bar]:
    def like(**kw: object) -> Bar:
        fields = dict(contract=C, tf="1m", t=b.t, o=b.o, h=b.h, l=b.l, c=b.c, volume=b.volume,
                      final=True, rev=b.rev, origin="poll")
        fields.update(kw)
        return Bar(**fields)  # type: ignore[arg-type]

    future = (int(time.time() * 1000) + 10 * DAY_MS) // 60_000 * 60_000
    return [like(o=math.nan), like(volume=2**63), like(o=b.h + 1), like(l=-5.0),
            like(h=math.inf, rev=10**9),                 # "overwrites" a real row
            like(t=future, o=1.0, h=1.0, l=1.0, c=1.0)]  # dated ten days ahead


async def test_poison_bars_are_rejected_alone_by_every_consumer(procs, bus, bus_env) -> None:
    serve_history(bus, synthetic_bars())
    hb = Heartbeats(bus)
    for name in ("store", "aggregator", "series"):
        procs.chillly(name, env=ENV)
    await aeventually(lambda: hb.running("store", "aggregator", "series"), timeout=START_TIMEOUT,
                      what="store, aggregator and series running")
    bars = synthetic_bars()
    first, rest = bars[:40], bars[40:]
    publish_bars(bus, first)
    bad = poison(first[-1])
    for b in bad:
        bus.publish(topics.bar("1m", C), b)
    # A history batch with one poison row among good ones (re-sends of real minutes).
    rows = [[b.t, b.o, b.h, b.l, b.c, b.volume] for b in first[:3]]
    rows.insert(1, [first[1].t, 1.0, 2.0, 0.5, 1.5, 2**63])
    bus.publish(topics.history_bar("1m", C), BarBatch(contract=C, tf="1m", rows=rows))
    publish_bars(bus, rest)   # real bars after the future one: not "too late"

    def counter(name: str, key_: str) -> int:
        return int(hb.last.get(name, {}).get("counters", {}).get(key_, 0))

    await aeventually(lambda: counter("store", "rejected") == len(bad) + 1
                      and counter("aggregator", "rejected") == len(bad)
                      and counter("series", "rejected") == len(bad) + 1,
                      timeout=15, what="each poison bar rejected and counted by each consumer")
    db = bus_env["DATABASE_PATH"]
    await aeventually(lambda: db_rows(db, "1m") == [key(b) for b in bars], timeout=15,
                      what="every real 1m bar stored, none overwritten")
    for tf in ("5m", "1h", "4h"):
        expected = [key(b) for b in aggregate(bars, BucketSpec.of(tf))]
        await aeventually(lambda tf=tf, e=expected: db_rows(db, tf) == e, timeout=15,
                          what=f"{tf} bars equal the aggregation of the real bars")
    assert hb.last["aggregator"]["counters"].get("too_late", 0) == 0
    reply = await bus.request("series", "window", {"contract": C, "tf": "1m", "last": 5000},
                              timeout=3)
    assert reply.ok, reply.error
    assert [tuple(r[:6]) for r in reply.result["bars"]] == [key(b) for b in bars]
    assert hb.running("store", "aggregator", "series")
