"""The `redis` backend: a Redis server (6.2 or newer) takes the broker's place.

Wire layout, readable by any Redis client (docs/architecture.md, the bus):
- Live topics travel as Pub/Sub messages on the channel `<topic>@<publisher>`: the payload is
  the same msgpack map as on ZeroMQ, `<publisher>` the Redis user of the publishing connection
  (the bus client's name when it connects as the default user). A subscription to a topic
  prefix is the pattern `<prefix>*`, so `PSUBSCRIBE bar.1m.CON.F.US.EP.Z26.*` reads one
  contract's bars and never another's (the topic's trailing delimiter).
- Families whose history matters after a restart (bars, orders, fills, positions, account,
  risk, alarms, subscriptions, rolls, contracts, clock ticks) are also appended to one capped
  stream per family, `chillly:stream:<family>` (`MAXLEN ~ REDIS_STREAM_MAXLEN`, fields `c`: the
  channel, `p`: the payload): a consumer that was down reads what it missed with `replay`
  (XRANGE) and then goes live.
- Identity: Redis ACLs restrict the channels each user may publish to. With one user per
  program allowed only `&*@<program>` (and the default user unable to publish), the channel's
  suffix is vouched for by the server; this backend checks at start that an unauthenticated
  connection cannot publish, and reports the suffix as the sender only then (None otherwise).

Delivery: Pub/Sub is at-most-once like ZeroMQ. `send` never waits: messages queue (bounded by
the high-water mark, then dropped and counted) for one writer task that pipelines them. A
subscriber that stops reading is disconnected by the server at its pub/sub output-buffer limit,
reconnects, resubscribes and sees what it lost as a `seq` gap, never slowing the publisher.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chillly.bus_backends.base import BATCH, Backend, Deliver

log = logging.getLogger("bus.redis")

#: Topic families kept in a capped stream for catch-up (first topic segment).
STREAMED = frozenset({"bar", "order", "fill", "position", "account", "risk", "alarm", "subs",
                      "roll", "contract", "clock"})
STREAM_KEY = "chillly:stream:"
_SEND_BATCH = 1000
_LINK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.IncompleteReadError)


def pattern(prefix: str) -> str:
    """The Pub/Sub pattern of a topic prefix: glob characters taken literally, then `*`."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"


def stream_key(family: str) -> str:
    return STREAM_KEY + family


class RedisBackend(Backend):
    kind = "redis"

    def __init__(self, url: str, name: str, *, hwm: int = 100_000,
                 max_message_bytes: int = 1 << 20, stream_maxlen: int = 10_000) -> None:
        super().__init__()
        self.url = url
        parts = urlsplit(url)
        self.user = parts.username or None
        self.suffix = "@" + (self.user or name)
        self.hwm = max(1, hwm)
        self.max_message_bytes = max_message_bytes
        self.stream_maxlen = stream_maxlen
        self.vouched = False
        self._pool = aioredis.ConnectionPool.from_url(url, socket_timeout=None,
                                                       socket_connect_timeout=5)
        self._patterns: set[str] = set()
        self._out: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._control: deque[tuple[str, str]] = deque()   # (PSUBSCRIBE|PUNSUBSCRIBE, pattern)
        self._sub_conn: Any = None
        self._sub_ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ publishing

    def send(self, topic: str, payload: bytes) -> None:
        if len(self._out) >= self.hwm:
            self.count("send_dropped")
            return
        self._out.append((topic, payload))
        if self._writer is None:
            self._start_writer()
        self._wake.set()

    def _start_writer(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return   # no loop yet: the first receive() starts it
        self._writer = loop.create_task(self._write_loop())

    async def _write_loop(self) -> None:
        """Pipelines what `send` queued: one round trip per batch, replies checked (a
        publication the server's ACL refuses is counted and logged, not retried)."""
        conn = self._pool.make_connection()
        backoff = 0.05
        while not self._closed:
            if not self._out:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._out.popleft() for _ in range(min(len(self._out), _SEND_BATCH))]
            commands: list[tuple[Any, ...]] = []
            maxlen = self.stream_maxlen
            suffix = self.suffix
            for topic, payload in batch:
                channel = topic + suffix
                commands.append(("PUBLISH", channel, payload))
                if maxlen and topic.partition(".")[0] in STREAMED:
                    commands.append(("XADD", stream_key(topic.partition(".")[0]), "MAXLEN",
                                     "~", maxlen, "*", "c", channel, "p", payload))
            try:
                if not conn.is_connected:
                    await conn.connect()
                await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
                for _ in commands:
                    try:
                        await conn.read_response(disconnect_on_error=True)
                    except ResponseError as exc:
                        self.count("send_refused")
                        n = self.counters["send_refused"]
                        if n <= 10 or n % 1000 == 0:
                            log.error("Redis refused a publication (%s), %d so far", exc, n)
                backoff = 0.05
            except _LINK_ERRORS as exc:
                self.count("send_lost", len(batch))
                log.warning("Redis publish link down (%s); %d messages lost", exc, len(batch))
                await conn.disconnect()
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)
        await conn.disconnect()

    # ------------------------------------------------------------------ subscribing

    def subscribe(self, prefix: str) -> None:
        pat = pattern(prefix)
        if pat not in self._patterns:
            self._patterns.add(pat)
            self._control.append(("PSUBSCRIBE", pat))
            self._flush_control()

    def unsubscribe(self, prefix: str) -> None:
        pat = pattern(prefix)
        if pat in self._patterns:
            self._patterns.discard(pat)
            self._control.append(("PUNSUBSCRIBE", pat))
            self._flush_control()

    def _flush_control(self) -> None:
        """Send queued (un)subscriptions in order on the subscriber connection, if it is up
        (otherwise the connect sends the whole current set)."""
        if self._sub_conn is None or not self._sub_ready.is_set():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        commands = list(self._control)
        self._control.clear()
        if commands:
            loop.create_task(self._send_control(commands))

    async def _send_control(self, commands: list[tuple[str, str]]) -> None:
        try:
            await self._sub_conn.send_packed_command(
                self._sub_conn.pack_commands(commands), check_health=False)
        except _LINK_ERRORS:
            pass   # the receive loop reconnects and sends the whole set again

    async def _connect_subscriber(self) -> None:
        conn = self._pool.make_connection()
        await conn.connect()
        self._control.clear()
        if self._patterns:
            await conn.send_packed_command(
                conn.pack_commands([("PSUBSCRIBE", p) for p in sorted(self._patterns)]),
                check_health=False)
        self._sub_conn = conn
        self._sub_ready.set()

    async def check_vouched(self) -> bool:
        """True when the server refuses publications from an unauthenticated connection: then
        channel suffixes are what ACLs allowed each user (the deployment gives every user only
        `&*@<user>`), and this backend reports them as senders."""
        kwargs = {k: v for k, v in self._pool.connection_kwargs.items()
                  if k not in ("username", "password")}
        pool = aioredis.ConnectionPool(connection_class=self._pool.connection_class, **kwargs)
        probe = aioredis.Redis(connection_pool=pool)
        try:
            await probe.publish("_probe.vouch.@nobody", b"")
            return False
        except (AuthenticationError, ResponseError):
            return True          # NOAUTH, WRONGPASS, NOPERM: the default user cannot publish
        except RedisError:
            return False         # unknown: vouch for nothing
        finally:
            await probe.aclose()
            await pool.disconnect()

    async def receive(self, deliver: Deliver) -> None:
        if self._writer is None and self._out:
            self._start_writer()
        if self.user is not None:
            self.vouched = await self.check_vouched()
        cap = self.max_message_bytes
        vouched = self.vouched
        backoff = 0.05
        while not self._closed:
            try:
                if self._sub_conn is None:
                    await self._connect_subscriber()
                    backoff = 0.05
                read = self._sub_conn.read_response
                n = 0
                while not self._closed:
                    # A reply already buffered is parsed without waiting on the socket.
                    reply = await read(disconnect_on_error=True, push_request=True)
                    if isinstance(reply, list) and len(reply) == 4 and reply[0] == b"pmessage":
                        channel, data = reply[2], reply[3]
                        topic, at, who = channel.rpartition(b"@")
                        if not at:
                            topic, who = channel, b""
                        if len(data) > cap:
                            self.count("oversize_dropped")
                        else:
                            pending = deliver((topic, data),
                                              who.decode() if vouched and who else None)
                            if pending is not None:
                                await pending
                    n += 1
                    if n >= BATCH:   # a subscriber that never waits still lets others run
                        n = 0
                        await asyncio.sleep(0)
            except _LINK_ERRORS as exc:
                if self._closed:
                    return
                self.count("reconnects")
                log.warning("Redis subscriber link down (%s); reconnecting", exc)
                self._sub_ready.clear()
                if self._sub_conn is not None:
                    await self._sub_conn.disconnect()
                self._sub_conn = None
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)

    # ------------------------------------------------------------------ catch-up

    def kept_families(self) -> frozenset[str]:
        return STREAMED if self.stream_maxlen > 0 else frozenset()

    async def replay(self, family: str, after: str = "-", count: int = 1000
                     ) -> list[tuple[str, bytes, bytes, str | None]]:
        """Up to `count` entries of a family's stream after the entry id `after` ("-": from
        the oldest kept): (entry id, topic, payload, sender), oldest first; the sender is the
        channel's `@<user>` suffix when the server vouches for it (as for live messages).
        `Bus.replay` decodes them with the codec; a consumer remembers the last id it handled
        and asks again from there."""
        client = aioredis.Redis(connection_pool=self._pool)
        start = after if after == "-" else "(" + after
        rows: Any = await client.xrange(stream_key(family), start, "+", count=count)
        out: list[tuple[str, bytes, bytes, str | None]] = []
        for entry_id, fields in rows or ():
            channel = bytes(fields.get(b"c", b""))
            topic, at, who = channel.rpartition(b"@")
            if not at:
                topic, who = channel, b""
            out.append((entry_id.decode(), topic, bytes(fields.get(b"p", b"")),
                        who.decode() if self.vouched and who else None))
        return out

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.wait({self._writer}, timeout=1)
        if self._sub_conn is not None:
            await self._sub_conn.disconnect()
        await self._pool.disconnect()

    def describe(self) -> str:
        parts = urlsplit(self.url)
        where = parts.hostname or parts.path
        return f"redis {where}{':' + str(parts.port) if parts.port else ''}{parts.path if parts.hostname else ''}"
