"""What the page passes on from the bus: an impossible bar or quote (NaN, a low above the
high, a price <= 0) is counted and never reaches a page; a good one is pushed to every page."""

from __future__ import annotations

import math
from typing import Any

import orjson

from chillly.bus import Bus
from chillly.codec import decode, encode_payload
from chillly.messages import Bar, Message, Quote
from chillly.settings import load_settings
from web.board import Board
from web.live import Live
from web.outbox import Hub, Outbox
from web.settings import WebSettings


def envelope(topic: str, msg: Message) -> Any:
    return decode([topic.encode(), encode_payload(msg.body(), "feed", 1, 0, "feed-1-x")])


async def test_impossible_bars_and_quotes_are_counted_not_shown() -> None:
    bus = Bus("tcp://127.0.0.1:9", "tcp://127.0.0.1:9", "web")   # never connected: not used
    try:
        hub = Hub(100, 0.0)
        box = Outbox(100, 0.0)
        hub.outboxes.add(box)
        counters: dict[str, int] = {}
        live = Live(load_settings(WebSettings), bus, hub, Board({}), counters)
        good = Bar(contract="CON.F.US.EP.Z26", tf="1m", t=60_000, o=1.0, h=2.0, l=0.5, c=1.5,
                   volume=3, final=True)
        bad = Bar(contract="CON.F.US.EP.Z26", tf="1m", t=120_000, o=1.0, h=0.5, l=2.0, c=1.5,
                  volume=3, final=True)
        nan = Quote(contract="CON.F.US.EP.Z26", bid=math.nan, ask=6000.25, last=6000.0)
        neg = Quote(contract="CON.F.US.EP.Z26", bid=-1.0, ask=6000.25, last=6000.0)
        ok = Quote(contract="CON.F.US.EP.Z26", bid=6000.0, ask=6000.25, last=6000.0)
        for topic, msg in (("bar.1m.CON.F.US.EP.Z26.", good), ("bar.1m.CON.F.US.EP.Z26.", bad),
                           ("quote.CON.F.US.EP.Z26.", nan), ("quote.CON.F.US.EP.Z26.", neg),
                           ("quote.CON.F.US.EP.Z26.", ok)):
            env = envelope(topic, msg)
            (live._on_bar if topic.startswith("bar.") else live._on_quote)(env)
        sent = [orjson.loads(p) for p in box.take()]
        assert [(m["k"], m["d"].get("t", m["d"].get("bid"))) for m in sent] == \
            [("bar", 60_000), ("quote", 6000.0)]
        assert counters["rejected_bars"] == 1 and counters["rejected_quotes"] == 2
    finally:
        await bus.close()
