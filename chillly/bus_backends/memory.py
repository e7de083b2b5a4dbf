"""The `memory` backend: every bus client of one process meets in a `MemoryHub`.

For tests that compose several services in one process and for in-process runs of the strategy
engine. Same promises as the other backends:
- prefix matching on topic strings (the topics' trailing delimiter keeps one contract from
  matching another), routes cached per topic;
- each subscriber has its own bounded queue (the bus's high-water mark): a full queue drops
  the new message for that subscriber alone and counts it (`dropped`), so a slow reader never
  slows the publisher or anyone else, and sees the loss as a `seq` gap;
- frames go through the same codec as on the wire (no object is shared between clients);
- the sender is the publishing client itself, which nothing else in the process can act as.
All clients of a hub must run on one event loop (the hub wakes readers with plain futures).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import ClassVar

from chillly.bus_backends.base import BATCH, Backend, Deliver


class MemoryHub:
    """Where in-process bus clients meet. `MemoryHub.default()` is the process's own."""

    _default: ClassVar["MemoryHub | None"] = None

    def __init__(self) -> None:
        self._clients: list[MemoryBackend] = []
        self._routes: dict[str, list[MemoryBackend]] = {}

    @classmethod
    def default(cls) -> "MemoryHub":
        if cls._default is None:
            cls._default = cls()
        return cls._default

    def join(self, client: "MemoryBackend") -> None:
        self._clients.append(client)
        self._routes.clear()

    def leave(self, client: "MemoryBackend") -> None:
        if client in self._clients:
            self._clients.remove(client)
        self._routes.clear()

    def changed(self) -> None:
        """A client's prefixes changed: routes are worked out again on the next message."""
        self._routes.clear()

    def publish(self, topic: str, frames: Sequence[bytes], sender: str | None) -> None:
        """Offer one frame set to every client subscribed to a prefix of `topic`."""
        routes = self._routes.get(topic)
        if routes is None:
            routes = [c for c in self._clients if any(topic.startswith(p) for p in c.prefixes)]
            if len(self._routes) > 50_000:
                self._routes.clear()
            self._routes[topic] = routes
        for client in routes:
            client.offer(frames, sender)

    def inject(self, frames: Sequence[bytes]) -> None:
        """Raw frames from no client (a test's malformed input): routed by the first frame."""
        topic = frames[0].decode("utf-8", errors="replace") if frames else ""
        self.publish(topic, frames, None)


class MemoryBackend(Backend):
    kind = "memory"

    def __init__(self, hub: MemoryHub, name: str, *, hwm: int = 100_000,
                 max_message_bytes: int = 1 << 20) -> None:
        super().__init__()
        self.hub, self.name = hub, name
        self.hwm = max(1, hwm)
        self.max_message_bytes = max_message_bytes
        self.prefixes: set[str] = set()
        self._queue: deque[tuple[Sequence[bytes], str | None]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        hub.join(self)

    def send(self, topic: str, payload: bytes) -> None:
        self.hub.publish(topic, (topic.encode(), payload), self.name)

    def offer(self, frames: Sequence[bytes], sender: str | None) -> None:
        """One frame set for this subscriber: queued, or dropped when its queue is full."""
        if len(self._queue) >= self.hwm:
            self.count("dropped")
            return
        if len(frames) == 2 and len(frames[1]) > self.max_message_bytes:
            self.count("oversize_dropped")
            return
        self._queue.append((frames, sender))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def subscribe(self, prefix: str) -> None:
        self.prefixes.add(prefix)
        self.hub.changed()

    def unsubscribe(self, prefix: str) -> None:
        self.prefixes.discard(prefix)
        self.hub.changed()

    async def receive(self, deliver: Deliver) -> None:
        queue = self._queue
        popleft = queue.popleft
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not queue:
                self._waiter = loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            for _ in range(min(len(queue), BATCH)):
                frames, sender = popleft()
                pending = deliver(frames, sender)
                if pending is not None:
                    await pending
            await asyncio.sleep(0)   # a busy publisher in this loop gets its turn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.hub.leave(self)
        self._queue.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()

    def describe(self) -> str:
        return "memory (this process only)"
