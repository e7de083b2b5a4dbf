"""A page's queue: latest per key, a bound that drops the oldest and asks for a resync,
urgent messages at once and quotes held back to the quote interval (web/outbox.py)."""

from __future__ import annotations

import asyncio
import time

import orjson

from web.outbox import Hub, Outbox, encode


def frame(parts: list[bytes]) -> list[dict]:  # type: ignore[type-arg]
    return [orjson.loads(p) for p in parts]


async def test_a_newer_message_replaces_the_pending_one_of_its_key() -> None:
    box = Outbox(bound=10, quote_interval=0.0)
    box.put("q:ES", encode("quote", {"last": 1}), urgent=False)
    box.put("q:NQ", encode("quote", {"last": 2}), urgent=False)
    box.put("q:ES", encode("quote", {"last": 3}), urgent=False)
    assert [m["d"]["last"] for m in frame(box.take())] == [3, 2]
    assert box.dropped == 1 and box.pushed == 2


async def test_a_stalled_page_is_cut_at_its_bound_and_told_to_resync() -> None:
    box = Outbox(bound=3, quote_interval=0.0)
    for i in range(5):
        box.put(f"bar:{i}", encode("bar", {"t": i}), urgent=False)
    msgs = frame(box.take())
    assert msgs[0] == {"k": "resync"}
    assert [m["d"]["t"] for m in msgs[1:]] == [2, 3, 4]
    assert box.dropped == 2
    box.put("x", encode("panel", {}), urgent=True)
    assert frame(box.take())[0]["k"] == "panel"     # the resync is asked once


async def test_quotes_wait_for_the_interval_and_an_urgent_message_does_not() -> None:
    box = Outbox(bound=10, quote_interval=0.5)
    box.last_send = time.monotonic()
    box.put("q:ES", encode("quote", {}), urgent=False)
    waiting = asyncio.ensure_future(box.next_frame())
    await asyncio.sleep(0.05)
    assert not waiting.done()                       # a quote alone is held back
    box.put("fills", encode("fills", []), urgent=True)
    out = orjson.loads(await asyncio.wait_for(waiting, 0.3))   # a fill goes at once
    assert [m["k"] for m in out] == ["quote", "fills"]


async def test_the_hub_serves_a_snapshot_then_changes_and_counts() -> None:
    hub = Hub(bound=10, quote_interval=0.0)
    sent: list[list[dict]] = []  # type: ignore[type-arg]

    async def send(data: bytes) -> None:
        sent.append(orjson.loads(data))

    hub.push("q:ES", "quote", {"last": 1})          # no page yet: nothing kept
    task = asyncio.ensure_future(hub.serve([encode("meta", {"a": 1})], send))
    await asyncio.sleep(0)
    assert hub.counters()["clients"] == 1
    hub.push("fills", "fills", [1])
    for _ in range(50):
        await asyncio.sleep(0.01)
        if len(sent) == 2:
            break
    assert sent == [[{"k": "meta", "d": {"a": 1}}], [{"k": "fills", "d": [1]}]]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    c = hub.counters()
    assert c["clients"] == 0 and c["pushed"] == 2 and c["connections"] == 1
