"""Defect 6: sequence numbers are per publisher instance, not per name. Two publishers of one
name (two runs of a CLI tool, or an old and a new instance overlapping in a restart) on one
topic are two streams: no false gap, no loss counted; the newcomer is one restart, once."""

from __future__ import annotations

from typing import Any

from chillly.bus import Bus
from chillly.messages import Probe
from tests.support import START_TIMEOUT, aeventually

TOPIC = "test.tool."


async def test_two_instances_of_one_name_make_no_false_gaps(bus, bus_env) -> None:
    got: list[dict[str, Any]] = []
    restarts: list[tuple[str, str]] = []
    bus.on(TOPIC, lambda env: got.append(env.payload))
    bus.on_restart = lambda src, topic: restarts.append((src, topic))
    old, new = (Bus(bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"], "chillly-tool")
                for _ in range(2))
    try:
        for b in (old, new):
            await b.ready(timeout=START_TIMEOUT)
        n = 0
        for _ in range(3):          # the old instance alone first, then both interleaved
            n += 1
            old.publish(TOPIC, Probe(nonce=n))
        for _ in range(20):
            for b in (new, old):
                n += 1
                b.publish(TOPIC, Probe(nonce=n))
        await aeventually(lambda: len(got) == n, timeout=10, what="every message")
        assert bus.counters["gaps"] == 0 and bus.counters["lost"] == 0, bus.counters
        assert restarts == [("chillly-tool", TOPIC)]   # the new instance, once
        assert {p["src"] for p in got} == {"chillly-tool"}
        assert len({p["inst"] for p in got}) == 2
    finally:
        await old.close()
        await new.close()


async def test_a_real_gap_within_one_instance_is_still_seen(bus, bus_env) -> None:
    gaps: list[tuple[str, str, int, int]] = []
    bus.on(TOPIC, lambda env: None)
    bus.on_gap = lambda src, topic, first, last: gaps.append((src, topic, first, last))
    pub = Bus(bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"], "chillly-tool")
    try:
        await pub.ready(timeout=START_TIMEOUT)
        pub.publish(TOPIC, Probe(nonce=1))
        pub._seq[TOPIC] += 3        # three messages lost on the way
        pub.publish(TOPIC, Probe(nonce=2))
        await aeventually(lambda: gaps, timeout=10, what="the gap")
        assert gaps == [("chillly-tool", TOPIC, 2, 4)] and bus.counters["lost"] == 3
    finally:
        await pub.close()
