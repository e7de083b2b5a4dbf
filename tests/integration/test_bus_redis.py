"""The redis backend beyond the shared contract: real processes on a real redis-server (the
broker idles, `chillly tap` and `chillly status` read through Redis), senders vouched by Redis
ACLs (and not without them), and the per-family streams a restarted consumer catches up from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, ResponseError

from chillly import topics
from chillly.bus import Bus
from chillly.bus_backends.redis_pubsub import RedisBackend
from chillly.codec import Envelope, decode
from chillly.messages import Bar
from tests.integration.bus_rig import start_redis
from tests.integration.test_status import programs, write_conf
from tests.support import START_TIMEOUT, Procs, aeventually, eventually

EP = "CON.F.US.EP.Z26"


def bar(i: int) -> Bar:
    return Bar(contract=EP, tf="1m", t=i * 60_000, o=1.0, h=2.0, l=0.5, c=1.5, volume=i,
               final=True)


async def test_processes_tap_and_status_run_on_redis(procs: Procs, bus_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    _, url = start_redis(procs, tmp_path)
    bus_env.update({"BUS_BACKEND": "redis", "REDIS_URL": url})
    broker = procs.spawn(["-m", "broker"], name="broker")
    out = tmp_path / "sub.jsonl"
    sub = procs.spawn(["-m", "tests.integration.peer"], name="sub", env={
        "PEER_MODE": "sub", "PEER_NAME": "sub", "PEER_PREFIXES": "bar.", "PEER_OUT": str(out)})
    eventually(lambda: "READY" in sub.log(), 30, what="the subscriber ready on redis")
    tap = procs.chillly("tap", "bar.1m.", "--json", "--count", "5", stdout_pipe=True)
    await aeventually(lambda: "listening" in tap.log(), START_TIMEOUT, what="tap listening")
    procs.spawn(["-m", "tests.integration.peer"], name="pub", env={
        "PEER_MODE": "pub", "PEER_NAME": "pub", "PEER_CONTRACTS": EP, "PEER_INTERVAL": "0.02"})
    await aeventually(lambda: tap.popen.poll() is not None, 30, what="tap done after 5")
    rows = [json.loads(line) for line in tap.popen.stdout.read().decode().splitlines()]  # type: ignore[union-attr]
    assert tap.popen.returncode == 0 and len(rows) == 5
    assert {r["topic"] for r in rows} == {topics.bar("1m", EP)}   # the topic, not the channel
    got = lambda: [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []  # noqa: E731
    await aeventually(lambda: len(got()) >= 20, 30, what="bars at the subscriber process")
    seqs = [m["seq"] for m in got()]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert "the bus needs no broker" in broker.log()
    # `chillly status` hears every program through Redis, the idle broker included.
    conf = write_conf(tmp_path, ["sub", "pub"], [])
    rc, rows_by_name = programs(bus_env, conf)
    assert {"broker", "sub", "pub"} <= set(rows_by_name), rows_by_name
    assert rows_by_name["broker"]["state"] == "RUNNING"


ACL = """user default off
user feed on >pw-feed resetchannels &*@feed resetkeys ~chillly:stream:* -@all +@connection +publish +xadd +xrange (+psubscribe +punsubscribe allchannels)
user store on >pw-store resetchannels &*@store resetkeys ~chillly:stream:* -@all +@connection +publish +xadd +xrange (+psubscribe +punsubscribe allchannels)
user evil on >pw-evil resetchannels &*@evil resetkeys ~chillly:stream:* -@all +@connection +publish +xadd +xrange (+psubscribe +punsubscribe allchannels)
"""


async def test_redis_acls_make_the_sender_unforgeable(procs: Procs, tmp_path: Path) -> None:
    # Without ACLs anyone may publish as anyone: the backend then vouches for nobody.
    _, open_url = start_redis(procs, tmp_path, name="redis-open")
    reader = Bus.over(RedisBackend(open_url, "reader"), "reader")
    got_open: list[Envelope] = []
    reader.on(topics.bars(), got_open.append)
    forger = aioredis.Redis.from_url(open_url)
    try:
        await reader.ready(timeout=START_TIMEOUT)
        assert not await reader.backend.check_vouched()        # type: ignore[attr-defined]

        async def forged_arrives() -> bool:
            await forger.publish(topics.bar("1m", EP) + "@feed", _encoded(bar(1)))
            return bool(got_open)

        await aeventually(forged_arrives, 10, interval=0.1, what="the forged bar")
        assert got_open[0].sender is None   # "@feed" is only a claim here
    finally:
        await forger.aclose()
        await reader.close()

    # With one ACL user per program, the server enforces the channel suffix: it is the sender.
    acl = tmp_path / "users.acl"
    acl.write_text(ACL)
    _, url = start_redis(procs, tmp_path, "--aclfile", str(acl), name="redis-acl")
    as_user = lambda user: url.replace("//", f"//{user}:pw-{user}@")  # noqa: E731
    store = Bus.over(RedisBackend(as_user("store"), "store"), "store")
    feed = Bus.over(RedisBackend(as_user("feed"), "feed"), "feed")
    evil = Bus.over(RedisBackend(as_user("evil"), "evil"), "evil")
    got: list[Envelope] = []
    store.on(topics.bars(), got.append)
    raw_evil = aioredis.Redis.from_url(as_user("evil"))
    try:
        for b in (store, feed, evil):
            await b.ready(timeout=START_TIMEOUT)
        assert store.backend.vouched                                # type: ignore[attr-defined]
        with pytest.raises((NoPermissionError, ResponseError)):
            await raw_evil.publish(topics.bar("1m", EP) + "@feed", _encoded(bar(2)))
        evil.backend.suffix = "@feed"   # type: ignore[attr-defined]  # its client lies too
        evil.publish(topics.bar("1m", EP), bar(3))
        await aeventually(lambda: evil.counters.get("send_refused"), 10, what="refused, counted")
        evil.backend.suffix = "@evil"   # type: ignore[attr-defined]
        feed.publish(topics.bar("1m", EP), bar(4))
        evil.publish(topics.bar("1m", EP), bar(5))
        await aeventually(lambda: len(got) >= 2, 10, what="the honest bars")
        assert sorted((e.sender, e.payload["t"]) for e in got) == [("evil", 300_000),
                                                                   ("feed", 240_000)]
        # An anonymous connection cannot publish at all.
        with pytest.raises(Exception):
            anon = aioredis.Redis.from_url(url)
            try:
                await anon.publish(topics.bar("1m", EP) + "@feed", b"")
            finally:
                await anon.aclose()
    finally:
        await raw_evil.aclose()
        for b in (store, feed, evil):
            await b.close()


def _encoded(msg: Bar) -> bytes:
    from chillly.codec import encode
    return encode(topics.bar("1m", EP), msg, "forger", 1, 0)[1]


async def test_a_restarted_consumer_catches_up_from_the_family_stream(
        procs: Procs, tmp_path: Path) -> None:
    _, url = start_redis(procs, tmp_path)
    pub = Bus.over(RedisBackend(url, "feed-bars", stream_maxlen=1000), "feed-bars")
    try:
        await pub.ready(timeout=START_TIMEOUT)
        for i in range(1, 51):            # nobody is subscribed: Pub/Sub alone would lose them
            pub.publish(topics.bar("1m", EP), bar(i))
        pub.publish(topics.quote(EP), bar(0))   # quotes are live only: no stream
        backend: RedisBackend = pub.backend   # type: ignore[assignment]
        await aeventually(lambda: _count(backend) , 10, what="the stream written")
        first = await backend.replay("bar", count=20)
        rest = await backend.replay("bar", after=first[-1][0], count=1000)
        entries = first + rest
        assert len(entries) == 50
        envs = [decode([topic, payload]) for _, topic, payload, _ in entries]
        assert {e.topic for e in envs} == {topics.bar("1m", EP)}
        assert [e.payload["t"] for e in envs] == [i * 60_000 for i in range(1, 51)]
        assert await backend.replay("quote") == []
        # Through the bus: decoded by the codec, a malformed entry counted and skipped.
        raw = aioredis.Redis.from_url(url)
        try:
            await raw.xadd("chillly:stream:bar", {"c": topics.bar("1m", EP) + "@x",
                                                  "p": b"\xc1 not msgpack"})
        finally:
            await raw.aclose()
        envs, last = await pub.replay("bar", after=first[-1][0])
        assert [e.payload["t"] for e in envs] == [i * 60_000 for i in range(21, 51)]
        assert pub.counters["malformed"] == 1 and last != first[-1][0]
        assert await pub.replay("bar", after=last) == ([], last)
        assert pub.keeps_history("bar") and not pub.keeps_history("quote")
    finally:
        await pub.close()


async def test_tap_replays_the_newest_kept_messages_then_goes_live(
        procs: Procs, bus_env: dict[str, str], tmp_path: Path) -> None:
    _, url = start_redis(procs, tmp_path)
    bus_env.update({"BUS_BACKEND": "redis", "REDIS_URL": url})
    pub = Bus.over(RedisBackend(url, "feed-bars"), "feed-bars")
    try:
        await pub.ready(timeout=START_TIMEOUT)
        for i in range(1, 31):            # before any tap runs
            pub.publish(topics.bar("1m", EP), bar(i))
        pub.publish(topics.bar("1m", "CON.F.US.ENQ.Z26"), bar(99))   # another contract, newest
        await aeventually(lambda: _count(pub.backend, 31), 10,          # type: ignore[arg-type]
                          what="the stream written")
        tap = procs.chillly("tap", topics.bar("1m", EP), "--json", "--replay", "5", "--count",
                            "6", stdout_pipe=True)
        await aeventually(lambda: "listening" in tap.log(), START_TIMEOUT, what="tap listening")
        # One more, live: the tap prints it after the five kept ones, and exits at six.
        async def sixth_printed() -> bool:
            pub.publish(topics.bar("1m", EP), bar(31))
            return tap.popen.poll() is not None
        await aeventually(sixth_printed, 30, interval=0.5, what="tap done after 6")
        rows = [json.loads(x) for x in tap.popen.stdout.read().decode().splitlines()]  # type: ignore[union-attr]
        assert tap.popen.returncode == 0
        assert [r["payload"]["t"] for r in rows] == [i * 60_000 for i in range(26, 32)]
        # Without streams there is nothing to replay, and the tap says so.
        blind = procs.chillly("tap", "bar.", "--replay", "5", "--timeout", "1", name="tap-blind",
                              env={"REDIS_STREAM_MAXLEN": "0"})
        assert blind.wait(60) == 1
        assert "keeps no history of these topics" in blind.log()
    finally:
        await pub.close()


async def _count(backend: RedisBackend, n: int = 50) -> bool:
    return len(await backend.replay("bar", count=1000)) >= n
