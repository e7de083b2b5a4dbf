"""The bus contract on every backend (zmq broker, memory hub, real redis-server): delivery in
order, prefixes that never leak another contract, loss seen by seq, a stalled subscriber that
slows nobody, commands answered once per request id, the size cap, malformed input survived.

Every bus here lives in the test process (the memory backend meets nobody else); the zmq and
redis cases still cross a real broker process or a real Redis server. test_bus.py keeps the
ZeroMQ-only cases that need separate processes (broker restart, ipc, SIGTERM).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest

from chillly import topics
from chillly.bus import Bus, RequestTimeout
from chillly.codec import Envelope
from chillly.messages import Bar, Command, Probe
from tests.integration import bus_rig
from tests.integration.bus_rig import BusRig
from tests.support import START_TIMEOUT, aeventually

backend_kind, rig = bus_rig.backend_kind, bus_rig.rig   # the rig's fixtures, for this module

EP = "CON.F.US.EP.Z26"
EP_LOOKALIKE = "CON.F.US.EP.Z261"   # shares EP's prefix: must never leak into EP's stream
NQ = "CON.F.US.ENQ.Z26"


def bar(contract: str, i: int) -> Bar:
    return Bar(contract=contract, tf="1m", t=i * 60_000, o=1.0, h=2.0, l=0.5, c=1.5, volume=i,
               final=True)


async def ready(*buses: Bus) -> None:
    for b in buses:
        await b.ready(timeout=START_TIMEOUT)


async def test_delivery_in_order_prefixes_and_contract_isolation(rig: BusRig) -> None:
    ep_sub, all_sub, pub = rig.make("sub-ep"), rig.make("sub-all"), rig.make("pub")
    ep_got: list[Envelope] = []
    all_got: list[Envelope] = []
    ep_sub.on(topics.bar("1m", EP), ep_got.append)
    all_sub.on(topics.bars(), all_got.append)
    await ready(ep_sub, all_sub, pub)
    n = 1500
    for i in range(n):
        for c in (EP, EP_LOOKALIKE, NQ):
            pub.publish(topics.bar("1m", c), bar(c, i))
        if i % 100 == 99:   # paced by the readers here: this test judges order, not speed
            await aeventually(lambda: len(all_got) >= 3 * (i + 1), 20, what="the chunk")
    await aeventually(lambda: len(all_got) >= 3 * n and len(ep_got) >= n, 20, what="all")
    assert {e.topic for e in ep_got} == {topics.bar("1m", EP)}
    assert [e.seq for e in ep_got] == list(range(1, n + 1))
    assert [e.payload["t"] for e in ep_got] == [i * 60_000 for i in range(n)]
    assert len(all_got) == 3 * n
    for c in (EP, EP_LOOKALIKE, NQ):
        assert [e.seq for e in all_got if e.topic == topics.bar("1m", c)] == list(range(1, n + 1))
    assert all_sub.counters["gaps"] == 0 and ep_sub.counters["malformed"] == 0


async def test_the_sender_is_what_the_backend_vouches_for(rig: BusRig) -> None:
    sub, pub = rig.make("sub"), rig.make("feed-bars")
    got: list[Envelope] = []
    sub.on(topics.bars(), got.append)
    await ready(sub, pub)
    # The payload's src is the publisher's own claim; the sender is the backend's word.
    pub.name = "gateway"
    pub.publish(topics.bar("1m", EP), bar(EP, 1))
    await aeventually(lambda: got, 10, what="the bar")
    assert got[0].src == "gateway"
    # memory: the client object that published; zmq and an ACL-less Redis vouch for nobody.
    assert got[0].sender == ("feed-bars" if rig.kind == "memory" else None)


async def test_loss_within_one_publisher_is_seen_by_seq(rig: BusRig) -> None:
    sub, pub = rig.make("sub"), rig.make("pub")
    gaps: list[tuple[str, str, int, int]] = []
    sub.on("test.loss.", lambda env: None)
    sub.on_gap = lambda src, topic, first, last: gaps.append((src, topic, first, last))
    await ready(sub, pub)
    pub.publish("test.loss.", Probe(nonce=1))
    pub._seq["test.loss."] += 3         # three messages lost on the way
    pub.publish("test.loss.", Probe(nonce=2))
    await aeventually(lambda: gaps, 10, what="the gap")
    assert gaps == [("pub", "test.loss.", 2, 4)] and sub.counters["lost"] == 3


@pytest.mark.serial
async def test_a_stalled_subscriber_slows_neither_the_publisher_nor_the_others(
        rig: BusRig) -> None:
    stalled = rig.make("stalled", hwm=200)
    fast, pub = rig.make("fast"), rig.make("pub")
    release = asyncio.Event()
    stalled_got: list[Envelope] = []
    fast_got: list[Envelope] = []

    async def stuck(env: Envelope) -> None:   # the receive loop waits on it: reads nothing
        stalled_got.append(env)
        await release.wait()

    stalled.on("test.flood.", stuck)
    fast.on("test.flood.", fast_got.append)
    await ready(stalled, fast, pub)
    pad = "x" * 2000          # 2 kB messages: past socket buffers and server limits soon
    n = 12_000
    before = pub.counters["published"]
    for i in range(1, n + 1):
        pub.publish("test.flood.", Command(rid=str(i), service="s", name="n", reply_to="reply.x.",
                                           args={"pad": pad}))
        if i % 500 == 0:      # the fast reader keeps up; the publisher never waits on the stalled
            await aeventually(lambda: len(fast_got) >= i, 30, what="the fast subscriber")
    assert [e.seq for e in fast_got] == list(range(1, n + 1))
    assert pub.counters["published"] == before + n
    release.set()

    async def resumed() -> bool:
        pub.publish("test.flood.", Probe(nonce=0))
        return bool(stalled_got) and stalled_got[-1].seq > n

    await aeventually(resumed, 60, interval=0.1, what="the stalled subscriber reads again")
    # It lost what overflowed its queues, and knows exactly how much (seq).
    last = stalled_got[-1].seq
    assert len(stalled_got) < last
    assert stalled.counters["lost"] == last - len(stalled_got)


async def test_commands_are_answered_once_per_request_id(rig: BusRig) -> None:
    client, server = rig.make("client"), rig.make("server")
    runs: list[Any] = []

    async def add(args: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.5)
        runs.append(args["x"])
        return {"served": len(runs), "echo": args["x"]}

    async def fail(args: dict[str, Any]) -> None:
        from chillly.bus import CommandError
        raise CommandError("refused on purpose")

    server.serve("peer", {"add": add, "fail": fail})
    await ready(client, server)
    # A short time-out makes the client resend the same id while the first is still running.
    reply = await client.request("peer", "add", {"x": 7}, timeout=0.15, attempts=20)
    assert reply.ok and reply.result == {"served": 1, "echo": 7}
    again = await client.request("peer", "add", {"x": 7}, rid=reply.rid, timeout=1, attempts=3)
    assert again.result == {"served": 1, "echo": 7} and runs == [7]   # cached, not run again
    failed = await client.request("peer", "fail", timeout=2)
    assert not failed.ok and failed.error == "refused on purpose"
    unknown = await client.request("peer", "nosuch", timeout=2)
    assert not unknown.ok and "unknown command" in (unknown.error or "")
    # The topic names the command, not the payload.
    replies: list[dict[str, Any]] = []
    client.on(topics.reply(client.instance), lambda env: replies.append(env.payload))
    client.publish(topics.command("peer", "fail"), Command(
        rid="forged-1", service="peer", name="add", reply_to=topics.reply(client.instance),
        args={"x": 9}))
    await aeventually(lambda: any(r["rid"] == "forged-1" for r in replies), 10,
                      what="the forged command's reply")
    assert runs == [7] and server.counters["commands_rejected"] == 1
    with pytest.raises(RequestTimeout):
        await client.request("nobody", "add", timeout=0.1, attempts=2)


async def test_the_size_cap_holds_at_sender_and_receiver(rig: BusRig) -> None:
    sub = rig.make("sub")
    small = rig.make("small", max_message_bytes=64 * 1024)
    got: list[dict[str, Any]] = []
    sub.on("test.big.", lambda env: got.append(env.payload))
    await ready(sub, small)
    before = small.counters["published"]
    small.publish("test.big.", Command(rid="r", service="s", name="n", reply_to="reply.x.",
                                       args={"pad": "y" * 100_000}))
    assert small.counters["oversize_dropped"] == 1 and small.counters["published"] == before
    big = msgpack.packb({"type": "probe", "v": 1, "src": "raw", "seq": 1, "ts": 0, "nonce": 1,
                         "pad": b"x" * (10 << 20)}, use_bin_type=True)

    async def marker_seen() -> bool:
        await rig.inject("test.big.x.", big)     # a foreign publisher ignores our cap
        small.publish("test.big.marker.", Probe(nonce=2))
        return any(p.get("nonce") == 2 for p in got)

    await aeventually(marker_seen, 20, interval=0.05, what="the marker after the big ones")
    assert all(p["nonce"] == 2 for p in got), "an oversized message got through"
    assert sub.counters["malformed"] == 0


async def test_malformed_input_is_counted_and_dropped_without_dying(rig: BusRig) -> None:
    sub, pub = rig.make("sub"), rig.make("pub")
    got: list[Envelope] = []
    sub.on(topics.bars(), got.append)
    await ready(sub, pub)

    async def sent_and_seen() -> bool:
        await rig.inject("bar.1m.x.", b"\xc1\xc1not msgpack")
        await rig.inject("bar.1m.x.", msgpack.packb({"type": "bar", "v": 1}))
        pub.publish(topics.bar("1m", EP), bar(EP, 0))
        return sub.counters["malformed"] >= 2 and bool(got)

    await aeventually(sent_and_seen, 20, interval=0.1, what="malformed counted")
    assert sub._recv_task is not None and not sub._recv_task.done()
    assert all(e.topic == topics.bar("1m", EP) for e in got)
