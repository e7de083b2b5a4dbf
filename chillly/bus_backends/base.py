"""The seam under the bus client: what a bus backend does, and nothing more.

A backend moves frames (`[topic, payload]` bytes), subscribes by topic prefix, and says who sent
what when it can vouch for it. Everything the bus promises above that (one codec, per-instance
`seq` and loss detection, the size cap at the sender, request/reply exactly once per request id,
`ready()`) lives in `chillly.bus.Bus` once, so the backends cannot drift apart on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

#: What a backend hands each received frame set to: the frames and the sender the backend
#: vouches for (None: it cannot). It returns an awaitable only when an async handler must run
#: before the next frame set is delivered.
Deliver = Callable[[Sequence[bytes], "str | None"], "Awaitable[None] | None"]

#: Frame sets taken per wake-up of a receive loop before it yields to the event loop.
BATCH = 512


class Backend(ABC):
    """One bus client's transport. `send` never blocks: a backend drops (and counts) rather than
    wait, which is what keeps a slow subscriber from slowing a publisher."""

    #: The `BUS_BACKEND` value that selects it.
    kind: ClassVar[str]
    #: Counters the owning bus shares with it (the bus assigns its own dict).
    counters: dict[str, int]

    def __init__(self) -> None:
        self.counters = {}

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    @abstractmethod
    def send(self, topic: str, payload: bytes) -> None:
        """Publish one message now or drop it (counted); never wait."""

    @abstractmethod
    def subscribe(self, prefix: str) -> None:
        """Receive every topic that starts with `prefix` (a topic of `chillly.topics`, whose
        trailing delimiter keeps one contract's prefix from matching another's)."""

    @abstractmethod
    def unsubscribe(self, prefix: str) -> None:
        """Stop receiving `prefix` (other prefixes that match the same topics still do)."""

    @abstractmethod
    async def receive(self, deliver: Deliver) -> None:
        """Hand every received frame set to `deliver`, in arrival order, until `close`."""

    def kept_families(self) -> frozenset[str]:
        """The topic families (first segment of their topics) whose history this backend keeps
        for `replay`: only Redis, with streams on, keeps any."""
        return frozenset()

    def keeps(self, family: str) -> bool:
        return family in self.kept_families()

    async def replay(self, family: str, after: str = "-", count: int = 1000
                     ) -> list[tuple[str, bytes, bytes, str | None]]:
        """Up to `count` kept entries of `family` after the entry id `after` ("-": from the
        oldest kept), oldest first: (entry id, topic, payload, sender vouched for or None).
        A backend that keeps nothing has nothing to replay."""
        return []

    @abstractmethod
    async def close(self) -> None:
        """Let go of every connection at once (no linger)."""

    def describe(self) -> str:
        """Where this backend meets the others, for logs and tools."""
        return self.kind
