"""What each browser has still to receive: a bounded, latest-wins queue per page.

The bus must never wait for a browser, so the bus side only ever calls `Hub.push`, which
encodes a message once and files it in every page's `Outbox` without awaiting anything. Each
message has a key: a newer message with the same key replaces the pending one (a quote, a
panel, the forming bar of one minute), so a page that reads slowly gets the latest state, not a
backlog. A page that stalls for good fills its bound: then the oldest messages are dropped and
the page is told to resync (it reloads every panel from one snapshot), so nothing it shows is
silently wrong. Each page's writer task sends what is pending as one frame, quotes at most every
`quote_interval` seconds, anything urgent (a fill, an order, a panel) at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

RESYNC = orjson.dumps({"k": "resync"})


def encode(kind: str, data: Any) -> bytes:
    """One message as the page reads it: {"k": kind, "d": data}."""
    return orjson.dumps({"k": kind, "d": data}, option=orjson.OPT_NON_STR_KEYS)


class Outbox:
    """One page's pending messages (key -> encoded message, oldest first)."""

    def __init__(self, bound: int, quote_interval: float) -> None:
        self.bound = bound
        self.quote_interval = quote_interval
        self.pending: OrderedDict[str, bytes] = OrderedDict()
        self.wake = asyncio.Event()
        self.urgent = asyncio.Event()
        self.resync = False
        self.last_send = 0.0
        self.pushed = 0      # messages handed to the socket
        self.dropped = 0     # replaced by a newer one of the same key, or cut at the bound

    def put(self, key: str, msg: bytes, urgent: bool) -> None:
        if key in self.pending:
            self.dropped += 1
            self.pending[key] = msg
        else:
            self.pending[key] = msg
            if len(self.pending) > self.bound:
                self.pending.popitem(last=False)
                self.dropped += 1
                self.resync = True
                urgent = True
        self.wake.set()
        if urgent:
            self.urgent.set()

    def take(self) -> list[bytes]:
        """Everything pending, as the frame's parts (a resync first if anything was cut)."""
        parts = ([RESYNC] if self.resync else []) + list(self.pending.values())
        self.pending.clear()
        self.resync = False
        self.wake.clear()
        self.urgent.clear()
        self.pushed += len(parts)
        return parts

    async def next_frame(self) -> bytes:
        """Wait for something to send; hold back quote-only batches to `quote_interval`."""
        await self.wake.wait()
        if not self.urgent.is_set():
            delay = self.last_send + self.quote_interval - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self.urgent.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        parts = self.take()
        self.last_send = time.monotonic()
        return b"[" + b",".join(parts) + b"]"


class Hub:
    """Every open page's outbox; `push` files one message for all of them."""

    def __init__(self, bound: int, quote_interval: float) -> None:
        self.bound = bound
        self.quote_interval = quote_interval
        self.outboxes: set[Outbox] = set()
        self.closed_pushed = 0    # counters of pages that have gone, kept for the totals
        self.closed_dropped = 0
        self.connected = 0

    def push(self, key: str, kind: str, data: Any, urgent: bool = True) -> None:
        if not self.outboxes:
            return
        msg = encode(kind, data)
        for box in self.outboxes:
            box.put(key, msg, urgent)

    async def serve(self, first: list[bytes], send: Callable[[bytes], Awaitable[Any]]) -> None:
        """Run one page: send `first` (the snapshot), then whatever is pushed, until `send`
        fails or the task is cancelled."""
        box = Outbox(self.bound, self.quote_interval)
        self.outboxes.add(box)
        self.connected += 1
        try:
            box.pushed += len(first)
            await send(b"[" + b",".join(first) + b"]")
            while True:
                await send(await box.next_frame())
        finally:
            self.outboxes.discard(box)
            self.closed_pushed += box.pushed
            self.closed_dropped += box.dropped

    def counters(self) -> dict[str, int]:
        return {"clients": len(self.outboxes), "connections": self.connected,
                "pushed": self.closed_pushed + sum(b.pushed for b in self.outboxes),
                "dropped": self.closed_dropped + sum(b.dropped for b in self.outboxes)}
