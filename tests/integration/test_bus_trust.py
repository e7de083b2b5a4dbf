"""Defect 21: what a command may claim and how big a message may be.

- The topic says which command runs: a payload naming another command is refused and counted
  (before: `unsubscribe` ran from `cmd.subscriptions.list.`).
- `reply_to` must be a `reply.` topic: a reply aimed at a bar topic is never sent.
- Every socket caps message size (BUS_MAX_MESSAGE_BYTES, ZMQ_MAXMSGSIZE): a 10 MB message sent
  to the broker reaches nobody and is never held in the broker's memory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgpack
import zmq

from chillly import topics
from chillly.bus import Bus
from chillly.messages import Command, Probe
from tests.support import START_TIMEOUT, aeventually

EP = "CON.F.US.EP.Z26"


async def served(bus: Bus, bus_env: dict[str, str]) -> tuple[Bus, list[str]]:
    """A second peer on the broker serving `svc.list` and `svc.unsubscribe`; calls recorded."""
    ran: list[str] = []

    async def listing(args: dict[str, Any]) -> str:
        ran.append("list")
        return "listed"

    async def unsubscribe(args: dict[str, Any]) -> str:
        ran.append("unsubscribe")
        return "unsubscribed"

    server = Bus(bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"], "server")
    server.serve("svc", {"list": listing, "unsubscribe": unsubscribe})
    await server.ready(timeout=START_TIMEOUT)
    return server, ran


async def test_the_topic_names_the_command_not_the_payload(bus, bus_env) -> None:
    server, ran = await served(bus, bus_env)
    try:
        replies: list[dict[str, Any]] = []
        bus.on(topics.reply(bus.instance), lambda env: replies.append(env.payload))
        forged = Command(rid="forged-1", service="svc", name="unsubscribe",
                         reply_to=topics.reply(bus.instance), args={"contract": "ES"})
        bus.publish(topics.command("svc", "list"), forged)
        await aeventually(lambda: replies, timeout=5, what="a reply")
        assert ran == [], "the payload's command ran"
        assert replies[0]["ok"] is False and "cmd.svc.list." in replies[0]["error"]
        assert server.counters["commands_rejected"] == 1
        # The honest form still works.
        reply = await bus.request("svc", "list", {}, timeout=2)
        assert reply.ok and reply.result == "listed" and ran == ["list"]
    finally:
        await server.close()


async def test_reply_to_must_be_a_reply_topic(bus, bus_env) -> None:
    server, ran = await served(bus, bus_env)
    try:
        on_bars: list[dict[str, Any]] = []
        bus.on(topics.bars(), lambda env: on_bars.append(env.payload))
        aimed = Command(rid="aimed-1", service="svc", name="list",
                        reply_to=topics.bar("1m", EP), args={})
        bus.publish(topics.command("svc", "list"), aimed)
        # Decided either way: refused, or the handler ran (its reply is published in the same
        # step as it returns).
        await aeventually(lambda: server.counters.get("commands_rejected") or ran, timeout=5,
                          what="the command decided")
        # A marker from the server on the bar topic after any reply it sent: once it is here,
        # a reply sent there before it would be here too (one publisher, one topic, in order).
        server.publish(topics.bar("1m", EP), Probe(nonce=7))
        await aeventually(lambda: any(p["type"] == "probe" for p in on_bars), timeout=5,
                          what="the marker on the bar topic")
        assert [p["type"] for p in on_bars] == ["probe"], "a reply was aimed at a bar topic"
        assert ran == [] and server.counters["commands_rejected"] == 1
    finally:
        await server.close()


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_a_10_mb_message_is_dropped_by_libzmq(broker, bus, bus_env) -> None:
    got: list[dict[str, Any]] = []
    bus.on("test.big.", lambda env: got.append(env.payload))
    await bus.ready(timeout=START_TIMEOUT)
    before = peak_rss_kb(broker.pid)
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(bus_env["BUS_PUBLISH_ADDR"])
    try:
        big = msgpack.packb({"type": "probe", "v": 1, "src": "raw", "seq": 1, "ts": 0,
                             "nonce": 1, "pad": b"x" * (10 << 20)}, use_bin_type=True)
        for _ in range(30):   # until the broker has surely heard it: a slow joiner drops some
            raw.send_multipart([b"test.big.x.", big])
            await asyncio.sleep(0.05)
        bus.publish("test.big.marker.", Probe(nonce=2))
        await aeventually(lambda: any(p["nonce"] == 2 for p in got), timeout=5,
                          what="the small marker after the big messages")
        assert [p["nonce"] for p in got] == [2], "an oversized message got through"
        assert bus.counters["malformed"] == 0
        grown_mb = (peak_rss_kb(broker.pid) - before) / 1024
        assert grown_mb < 8, f"broker peak memory grew {grown_mb:.0f} MB"
    finally:
        raw.close(0)
        ctx.term()


async def test_an_oversized_publish_is_refused_at_the_sender(bus, bus_env) -> None:
    small = Bus(bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"], "small",
                max_message_bytes=64 * 1024)
    try:
        small.publish("test.big.", Command(rid="r", service="s", name="n", reply_to="reply.x.",
                                           args={"pad": "y" * 100_000}))
        assert small.counters["oversize_dropped"] == 1 and small.counters["published"] == 0
    finally:
        await small.close()
