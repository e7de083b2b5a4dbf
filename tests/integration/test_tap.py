"""`chillly tap` as a process: readable lines, JSON lines, --count, undecodable frames shown."""

from __future__ import annotations

import json

import msgpack
import zmq

from chillly.bus import Bus
from chillly import topics
from chillly.messages import Bar, Quote
from tests.support import START_TIMEOUT, Procs, aeventually

EP = "CON.F.US.EP.Z26"


def bar(i: int) -> Bar:
    return Bar(contract=EP, tf="1m", t=i * 60_000, o=1.25, h=2.0, l=1.0, c=1.5, volume=i,
               final=False, rev=i)


async def test_tap_prints_matching_messages_and_marks_bad_ones(procs: Procs, bus: Bus, bus_env) -> None:  # type: ignore[no-untyped-def]
    tap = procs.chillly("tap", "bar.1m.", "--count", "4", stdout_pipe=True)
    await aeventually(lambda: "listening" in tap.log(), START_TIMEOUT, what="tap listening")
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(bus_env["BUS_PUBLISH_ADDR"])
    try:
        async def send_until_seen() -> bool:
            # Keep the raw socket's frames flowing until they cross the broker; the bus client
            # proved its own path already.
            raw.send_multipart([b"bar.1m.junk.", b"\xc1\xc1"])
            return tap.popen.poll() is not None

        # The bars must cross the broker before the junk does (the broker relays in arrival
        # order to every subscriber): wait until they came back to our own bus.
        back: list[object] = []
        bus.on(topics.bars("1m"), back.append)
        bus.publish(topics.quote(EP), Quote(contract=EP, bid=1.0))  # not matching: not shown
        for i in range(3):
            bus.publish(topics.bar("1m", EP), bar(i))
        await aeventually(lambda: len(back) == 3, 10, what="the bars through the broker")
        await aeventually(send_until_seen, 20, interval=0.05, what="tap exits after --count 4")
    finally:
        raw.close(0)
    out = tap.popen.stdout.read().decode()  # type: ignore[union-attr]
    lines = out.strip().splitlines()
    assert len(lines) == 4 and tap.popen.returncode == 0
    assert not any("quote" in line for line in lines)
    good = [line for line in lines if not line.startswith("UNDECODABLE")]
    assert len(good) == 3
    assert f"bar.1m.{EP}. test #1 bar contract={EP} tf=1m t=0 o=1.25" in good[0]
    assert "UNDECODABLE bar.1m.junk." in out


async def test_tap_json_lines(procs: Procs, bus: Bus) -> None:
    tap = procs.chillly("tap", "bar.", "--json", "--count", "2", stdout_pipe=True)
    await aeventually(lambda: "listening" in tap.log(), START_TIMEOUT, what="tap listening")

    def published_and_done() -> bool:
        bus.publish(topics.bar("1m", EP), bar(1))
        return tap.popen.poll() is not None

    await aeventually(published_and_done, 20, interval=0.05, what="tap done")
    rows = [json.loads(line) for line in tap.popen.stdout.read().decode().splitlines()]  # type: ignore[union-attr]
    assert len(rows) == 2
    assert rows[0]["topic"] == f"bar.1m.{EP}."
    assert rows[0]["payload"]["contract"] == EP and rows[0]["payload"]["src"] == "test"
    assert "invalid" not in rows[0]


async def test_tap_marks_schema_invalid_messages(procs: Procs, bus: Bus, bus_env) -> None:  # type: ignore[no-untyped-def]
    tap = procs.chillly("tap", "bar.", "--count", "1", stdout_pipe=True)
    await aeventually(lambda: "listening" in tap.log(), START_TIMEOUT, what="tap listening")
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(bus_env["BUS_PUBLISH_ADDR"])
    try:
        def send() -> bool:
            raw.send_multipart([b"bar.1m.x.", msgpack.packb(
                {"type": "bar", "v": 1, "src": "raw", "seq": 1, "ts": 0})])
            return tap.popen.poll() is not None

        await aeventually(send, 20, interval=0.05, what="tap done")
    finally:
        raw.close(0)
    out = tap.popen.stdout.read().decode()  # type: ignore[union-attr]
    assert out.startswith("INVALID(bar: missing field 'contract')")
