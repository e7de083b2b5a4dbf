"""The store catches up from the bus's bar history on Redis (a real redis-server, real store
processes, a real SQLite file): final bars published while it was stopped are stored when it
starts again, each once. Without the history (REDIS_STREAM_MAXLEN=0: the backend keeps none, as
on zmq and memory) the same restart stores none of them and says why, once. Nothing here
answers the feed's `backfill`, so the history is the only way those bars can reach the database.
"""

from __future__ import annotations

from pathlib import Path

from chillly.bus import Bus
from chillly.bus_backends.redis_pubsub import RedisBackend
from tests.integration.bus_rig import start_redis
from tests.integration.test_store_support import (
    Heartbeats, db_rows, key, publish_bars, synthetic_bars,
)
from tests.support import START_TIMEOUT, Procs, aeventually

ENV = {"STORE_FLUSH_INTERVAL": "0.05"}


async def test_a_restarted_store_stores_the_bars_it_missed_from_the_redis_history(
        procs: Procs, bus_env: dict[str, str], tmp_path: Path) -> None:
    _, url = start_redis(procs, tmp_path)
    bus_env.update({"BUS_BACKEND": "redis", "REDIS_URL": url})
    db = bus_env["DATABASE_PATH"]
    bars = synthetic_bars()[:120]
    before, missed, after = bars[:40], bars[40:100], bars[100:]
    # The feed's stand-in: publishes as feed-bars does, the bar stream on (the default).
    feed = Bus.over(RedisBackend(url, "feed-bars"), "feed-bars")
    test = Bus.over(RedisBackend(url, "test"), "test")
    hb = Heartbeats(test)
    try:
        await feed.ready(timeout=START_TIMEOUT)
        await test.ready(timeout=START_TIMEOUT)

        async def store_running(name: str, env: dict[str, str]) -> object:
            old = hb.pid("store")
            proc = procs.chillly("store", name=name, env={**ENV, **env})
            await aeventually(lambda: hb.running("store") and hb.pid("store") == proc.pid, 30,
                              what=f"{name} running (not {old})")
            return proc

        first = await store_running("store", {})
        publish_bars(feed, before)                      # a partial and the final, per minute
        await aeventually(lambda: len(db_rows(db, "1m")) == len(before), 15,
                          what="the live bars stored")
        assert first.terminate() == 0                   # type: ignore[attr-defined]
        publish_bars(feed, missed)                      # nobody stores these live

        # Without history: the restart says so once, and the missed bars stay missing.
        blind = await store_running("store-blind", {"REDIS_STREAM_MAXLEN": "0"})
        assert blind.log().count("no bar history to catch up from") == 1   # type: ignore[attr-defined]
        assert blind.terminate() == 0                   # type: ignore[attr-defined]
        assert db_rows(db, "1m") == [key(b) for b in before]

        # With it: the restart stores every missed final once, then the live ones.
        again = await store_running("store-again", {})
        publish_bars(feed, after)
        await aeventually(lambda: len(db_rows(db, "1m")) == len(bars), 15,
                          what="missed and later bars stored")
        assert db_rows(db, "1m") == [key(b) for b in bars]   # partials never, each final once
        assert f"caught up {len(missed)} final bar(s)" in again.log()   # type: ignore[attr-defined]
    finally:
        await feed.close()
        await test.close()
