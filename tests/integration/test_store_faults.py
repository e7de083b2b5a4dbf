"""Defect 4: a store whose disk fails says so and heals. The real store process gets a file-size
limit (RLIMIT_FSIZE set on the child with prlimit, so SQLite's next WAL append fails as on a
full disk) while bars keep coming: its heartbeat says FAULTED, an alarm goes out on
`alarm.store.`, its queue stays bounded (what it refuses is counted, never silently dropped
after being taken), it backs off instead of retrying every 0.2 s. When the limit is lifted it
writes again, clears the alarm, and fetches what it refused through the feeds backfill, so the
database ends with every bar."""

from __future__ import annotations

import os
import resource
import time
from typing import Any

from chillly import topics
from tests.integration.test_store_support import (
    C, Heartbeats, db_rows, key, publish_bars, synthetic_bars,
)
from tests.support import START_TIMEOUT, aeventually

MAX_QUEUED = 50


async def test_a_failing_disk_faults_the_store_bounds_its_queue_and_heals(procs, bus, bus_env
                                                                          ) -> None:
    bars = synthetic_bars()
    db = bus_env["DATABASE_PATH"]

    async def backfill(args: dict[str, Any]) -> dict[str, Any]:
        sent = [b for b in bars if args["start"] <= b.t <= args["end"]]
        for b in sent:
            bus.publish(topics.history_bar("1m", C), b)
        return {"contract": C, "tf": "1m", "count": len(sent), "first": None, "last": None}

    async def reconcile(args: dict[str, Any]) -> dict[str, Any]:
        return {"contract": C, "published": 0}

    bus.serve("feeds", {"backfill": backfill})
    bus.serve("aggregator", {"reconcile": reconcile})
    alarms: list[dict[str, Any]] = []
    bus.on(topics.alarm("store"), lambda env: alarms.append(env.payload))
    hb = Heartbeats(bus)
    store = procs.chillly("store", env={
        "STORE_FLUSH_INTERVAL": "0.05", "STORE_RECOVER_DAYS": "3650", "STORE_RETRY_MAX": "0.8",
        "STORE_MAX_QUEUED": str(MAX_QUEUED), "STORE_BATCH_ROWS": "10", "LOG_LEVEL": "WARNING"})
    await aeventually(lambda: hb.running("store"), timeout=START_TIMEOUT, what="store running")
    first, rest = bars[:30], bars[30:]
    publish_bars(bus, first)
    await aeventually(lambda: db_rows(db, "1m") == [key(b) for b in first], timeout=15,
                      what="the first bars stored")

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    wal = os.path.getsize(db + "-wal")
    resource.prlimit(store.pid, resource.RLIMIT_FSIZE, (wal, hard))   # the disk is "full"
    try:
        publish_bars(bus, rest)

        def counters() -> dict[str, Any]:
            return hb.last.get("store", {}).get("counters", {})

        await aeventually(lambda: hb.last["store"]["state"] == "FAULTED", timeout=10,
                          what="the store reports FAULTED")
        await aeventually(lambda: any(a["active"] for a in alarms), timeout=5,
                          what="an alarm on alarm.store.")
        assert alarms[-1]["code"] == "store_write_failed" and alarms[-1]["name"] == "store"
        await aeventually(lambda: counters().get("refused", 0) > 0, timeout=10,
                          what="a full queue refuses (and counts) instead of growing")
        assert counters()["queued"] <= MAX_QUEUED
        # Backing off (0.05 s doubling to 0.8 s): once at the cap, three more failed attempts
        # take 2.4 s (seen here through counters up to 0.7 s late: >= 1.7 s); a fixed 0.2 s
        # retry took 0.6 s (<= 1.3 s seen).
        await aeventually(lambda: counters()["write_errors"] >= 5, timeout=10,
                          what="the back-off at its cap")
        seen = counters()["write_errors"]
        await aeventually(lambda: counters()["write_errors"] > seen, timeout=10,
                          what="the next attempt")
        first, t0 = counters()["write_errors"], time.monotonic()   # just after an attempt
        await aeventually(lambda: counters()["write_errors"] >= first + 3, timeout=10,
                          what="the writer still retries")
        assert time.monotonic() - t0 >= 1.5, "retrying without back-off"
        assert store.alive()
    finally:
        resource.prlimit(store.pid, resource.RLIMIT_FSIZE, (soft, hard))  # the cause goes

    await aeventually(lambda: hb.last["store"]["state"] == "RUNNING", timeout=10,
                      what="the store RUNNING again")
    await aeventually(lambda: alarms and not alarms[-1]["active"], timeout=5,
                      what="the alarm cleared")
    await aeventually(lambda: db_rows(db, "1m") == [key(b) for b in bars], timeout=20,
                      what="every bar stored, the refused ones fetched again")
    assert store.terminate() == 0


async def test_a_refused_reconcile_is_retried_until_the_aggregator_acknowledges(procs, bus,
                                                                                 bus_env) -> None:
    """Defect 12: a recovery whose reconcile the aggregator refused (or never answered) was
    counted as done, so the higher-timeframe hole was forgotten."""
    from chillly.bus import CommandError
    from tests.integration.test_store_support import RawPublisher

    bars = synthetic_bars()[:60]
    reconciles: list[dict[str, Any]] = []

    async def backfill(args: dict[str, Any]) -> dict[str, Any]:
        sent = [b for b in bars if args["start"] <= b.t <= args["end"]]
        for b in sent:
            bus.publish(topics.history_bar("1m", C), b)
        return {"contract": C, "tf": "1m", "count": len(sent), "first": None, "last": None}

    async def reconcile(args: dict[str, Any]) -> dict[str, Any]:
        reconciles.append(args)
        if len(reconciles) <= 2:
            raise CommandError("warming up")        # refused twice, then acknowledged
        return {"contract": C, "published": 0}

    bus.serve("feeds", {"backfill": backfill})
    bus.serve("aggregator", {"reconcile": reconcile})
    hb = Heartbeats(bus)
    procs.chillly("store", env={"STORE_FLUSH_INTERVAL": "0.05", "STORE_RECOVER_DAYS": "3650",
                                "STORE_REQUEST_TIMEOUT": "2"})
    await aeventually(lambda: hb.running("store"), timeout=START_TIMEOUT, what="store running")
    raw = RawPublisher(bus_env["BUS_PUBLISH_ADDR"])
    try:
        await raw.connect(bus)
        for seq, b in enumerate(bars, start=1):
            if not 20 <= seq < 30:                    # a sequence gap: recovery
                raw.send(topics.bar("1m", C), b, seq)
        await aeventually(lambda: hb.last["store"]["counters"].get("recoveries") == 1,
                          timeout=20, what="the recovery acknowledged")
    finally:
        raw.close()
    assert len(reconciles) == 3
    assert hb.last["store"]["counters"]["reconcile_failures"] == 2
    assert all(r["start"] == reconciles[0]["start"] for r in reconciles)   # same window
    assert db_rows(bus_env["DATABASE_PATH"], "1m") == [key(b) for b in bars]
