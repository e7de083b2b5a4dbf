"""The bus client every process uses: publish, subscribe by topic prefix, request/reply.

It sits on a backend (`chillly.bus_backends`: ZeroMQ broker, in-memory, Redis) that only moves
frames, subscribes by prefix and vouches for senders where it can; every promise below is kept
here once, for all of them.

Design notes (why, not what):
- Publishing is synchronous and never blocks: a PUB socket drops at its high-water mark
  instead of waiting, which is what keeps a slow subscriber from slowing anyone else.
- `seq` counts per (publisher instance, topic), so a subscriber that takes only some of a
  publisher's topics can still tell a lost message from a filtered one. The instance (`inst`:
  name, pid, a random part) and not the name keys it, so two tools of one name, or an old and a
  new instance overlapping in a restart, are two streams and not one with false gaps. A new
  instance of a name already heard on a topic means the publisher restarted (`on_restart`); a
  seq that jumps means loss (`gaps` counter, optional `on_gap` callback).
- Malformed frames are counted and dropped; a handler that raises is logged and counted. The
  receive loop never dies of input.
- `ready()` proves the whole path through the broker (our subscription reached it and our own
  publication came back) instead of sleeping to beat ZeroMQ's slow-joiner window.
- Commands are idempotent on their request id: a resend gets the cached reply, a duplicate that
  arrives while the first is still running is ignored, and the handler runs once.
- ZeroMQ reconnects and resubscribes by itself, so a peer rides out a broker restart.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from chillly.bus_backends.base import Backend
from chillly.codec import DecodeError, Envelope, decode, encode_payload
from chillly.security import CurveKeys
from chillly import topics
from chillly.clock import Clock, SystemClock
from chillly.messages import Command, Message, Probe, Reply

log = logging.getLogger("bus")

Handler = Callable[[Envelope], Any]
CommandHandler = Callable[[dict[str, Any]], Awaitable[Any]]
GapCallback = Callable[[str, str, int, int], Any]
RestartCallback = Callable[[str, str], Any]
#: A topic's handlers: the sync ones to run at once, then (from the first async one) the rest.
Route = tuple[tuple[Handler, ...], "list[tuple[Handler, bool]] | None"]

#: BUS_MAX_MESSAGE_BYTES default: 1 MiB, some 40 times a 500-bar history batch.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20


class BusNotReady(RuntimeError):
    """The broker path could not be proven within the time allowed."""


class RequestTimeout(TimeoutError):
    """No reply to a command after every attempt."""


class CommandError(Exception):
    """Raised by a command handler to send a clean error reply (`ok: false`) to the requester."""


class Bus:
    """One process's connection to the broker."""

    def __init__(
        self,
        publish_addr: str,
        subscribe_addr: str,
        name: str,
        *,
        clock: Clock | None = None,
        hwm: int = 100_000,
        on_gap: GapCallback | None = None,
        curve: CurveKeys | None = None,
        on_restart: RestartCallback | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        backend: Backend | None = None,
    ) -> None:
        """A bus client on `backend`; without one, on the ZeroMQ broker at the two addresses
        (what every caller did before backends were pluggable: `Bus.over` names the backend)."""
        if backend is None:
            from chillly.bus_backends.zeromq import ZmqBackend

            backend = ZmqBackend(publish_addr, subscribe_addr, hwm=hwm, curve=curve,
                                 max_message_bytes=max_message_bytes)
        self.backend = backend
        self.name = name
        self.instance = f"{name}-{os.getpid()}-{secrets.token_hex(3)}"
        self.clock: Clock = clock or SystemClock()
        self.on_gap = on_gap
        self.on_restart = on_restart
        self.counters: dict[str, int] = {
            "published": 0, "received": 0, "malformed": 0, "gaps": 0, "lost": 0,
            "handler_errors": 0, "commands": 0, "duplicate_commands": 0,
            "commands_rejected": 0, "oversize_dropped": 0,
        }
        backend.counters = self.counters   # drops, reconnects: one set of counters per client
        self._send = backend.send
        self.max_message_bytes = max_message_bytes
        self._seq: dict[str, int] = {}
        # topic -> {inst or src: last seq}: a dict per topic, so the hot path hashes no tuple
        self._last_seen: dict[str, dict[str, int]] = {}
        self._streams = 0                                     # entries in _last_seen
        self._names_seen: set[tuple[str, str]] = set()       # (src, topic) heard with an inst
        self._handlers: list[tuple[str, Handler, bool]] = []
        self._routes: dict[str, Route] = {}
        self._subscribed: set[str] = set()
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._reply_cache: OrderedDict[str, Reply] = OrderedDict()
        self._inflight: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._recv_task: asyncio.Task[None] | None = None
        self._probe_seen: asyncio.Event | None = None
        self._rid_counter = itertools.count(1)
        self._closed = False
        self.on(topics.reply(self.instance), self._on_reply)

    @classmethod
    def over(cls, backend: Backend, name: str, **kwargs: Any) -> "Bus":
        """A bus client on a given backend (a `MemoryBackend` of a test's own hub, ...)."""
        return cls("", "", name, backend=backend, **kwargs)

    @classmethod
    def from_settings(cls, settings: Any, name: str, *, clock: Clock | None = None,
                      on_gap: GapCallback | None = None) -> "Bus":
        """The bus as configured (`BUS_BACKEND`, addresses or `REDIS_URL`, high-water mark,
        CURVE keys, size cap): what every process and tool uses."""
        from chillly.bus_backends import from_settings as backend_from_settings

        return cls.over(backend_from_settings(settings, name), name, clock=clock,
                        hwm=settings.bus_hwm, on_gap=on_gap,
                        max_message_bytes=settings.bus_max_message_bytes)

    # ------------------------------------------------------------------ publishing

    def publish(self, topic: str, msg: Message) -> None:
        """Send one message now. Never blocks; at its high-water mark the backend drops it."""
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        payload = encode_payload(msg.body(), self.name, seq, self.clock.now_ms(), self.instance)
        if len(payload) > self.max_message_bytes:
            # The broker would drop it and our connection with it (everything queued behind).
            self._seq[topic] = seq - 1
            self.counters["oversize_dropped"] += 1
            log.error("not sent: a %d-byte %s on %s is over BUS_MAX_MESSAGE_BYTES (%d)",
                      len(payload), msg.TYPE, topic, self.max_message_bytes)
            return
        self._send(topic, payload)
        self.counters["published"] += 1

    # ------------------------------------------------------------------ subscribing

    def on(self, prefix: str, handler: Handler) -> None:
        """Deliver every message whose topic starts with `prefix` to `handler` (sync or async).

        Handlers run in arrival order on the receive loop; an async handler is awaited before the
        next message is dispatched, so a handler that must not hold up the stream should hand
        work to a task or queue of its own.
        """
        self._handlers.append((prefix, handler, inspect.iscoroutinefunction(handler)))
        self._routes.clear()
        self.subscribe(prefix)

    def subscribe(self, prefix: str) -> None:
        if prefix not in self._subscribed:
            self._subscribed.add(prefix)
            self.backend.subscribe(prefix)

    def unsubscribe(self, prefix: str) -> None:
        """Stop receiving `prefix` and forget its handlers."""
        self._handlers = [h for h in self._handlers if h[0] != prefix]
        self._routes.clear()
        if prefix in self._subscribed:
            self._subscribed.discard(prefix)
            self.backend.unsubscribe(prefix)

    def start(self) -> asyncio.Task[None]:
        """Start the receive loop (idempotent); its task, which ends only on `close` or if the
        loop dies (the process lifecycle watches it: a dead receive loop faults the process)."""
        if self._recv_task is None:
            self._recv_task = asyncio.get_running_loop().create_task(self._recv_loop())
        return self._recv_task

    async def _recv_loop(self) -> None:
        await self.backend.receive(self._dispatch)

    def _route(self, topic: str) -> Route:
        """Handlers for a topic, cached: topics repeat, prefix scans need not. A route is the
        sync handlers before the first async one (run at once) and, from that async one on,
        the rest (run in order by `_dispatch_async`), or None when all are sync."""
        route = self._routes.get(topic)
        if route is None:
            matched = [(h, a) for prefix, h, a in self._handlers if topic.startswith(prefix)]
            first_async = next((i for i, (_, a) in enumerate(matched) if a), len(matched))
            route = (tuple(h for h, _ in matched[:first_async]),
                     matched[first_async:] or None)
            if len(self._routes) > 50_000:
                self._routes.clear()
            self._routes[topic] = route
        return route

    def _dispatch(self, frames: Sequence[bytes], sender: str | None = None
                  ) -> Awaitable[None] | None:
        """Decode and run sync handlers now; return a coroutine only if async handlers match.

        The hot path of every subscriber: the common case (seq in order, cached route, sync
        handlers) is kept inline; anything unusual goes to a helper."""
        try:
            env = decode(frames, sender)
        except DecodeError as exc:
            self._malformed(exc)
            return None
        counters = self.counters
        counters["received"] += 1
        topic, payload, _, _ = env
        inst = payload.get("inst") or payload["src"]
        seq = payload["seq"]
        streams = self._last_seen.get(topic)
        if streams is None:
            streams = self._last_seen[topic] = {}
        last = streams.get(inst)
        streams[inst] = seq
        if last is None:
            self._new_stream(inst, topic, payload["src"], seq)
        elif seq != last + 1:
            self._seq_break(topic, payload["src"], last, seq)
        now, later = self._routes.get(topic) or self._route(topic)
        for handler in now:
            try:
                handler(env)
            except Exception:
                counters["handler_errors"] += 1
                log.exception("handler failed on %s", topic)
        if later is not None:
            return self._dispatch_async(env, later)
        return None

    def _malformed(self, exc: DecodeError) -> None:
        self.counters["malformed"] += 1
        n = self.counters["malformed"]
        if n <= 10 or n % 1000 == 0:
            log.warning("dropped malformed message (%s), %d so far", exc, n)

    async def _dispatch_async(self, env: Envelope, routes: list[tuple[Handler, bool]]) -> None:
        for handler, is_async in routes:
            try:
                if is_async:
                    await handler(env)
                else:
                    handler(env)
            except Exception:
                self.counters["handler_errors"] += 1
                log.exception("handler failed on %s", env.topic)

    def _new_stream(self, inst: str, topic: str, src: str, seq: int) -> None:
        """The first message of a (publisher instance, topic): a restart if another instance of
        the same name was heard on that topic before."""
        self._streams += 1
        if self._streams > 200_000:
            # Bounded: every run of a CLI tool is a new instance. Forgetting costs at most one
            # undetected gap per stream, once.
            self._last_seen.clear()
            self._names_seen.clear()
            self._last_seen[topic] = {inst: seq}
            self._streams = 1
        if inst == src:
            return  # a publisher without `inst`: restarts show as a seq going backwards
        name_key = (src, topic)
        if name_key in self._names_seen:
            self._restarted(src, topic, f"new instance {inst}")
        else:
            self._names_seen.add(name_key)

    def _restarted(self, src: str, topic: str, how: str) -> None:
        # A restarted publisher may have lost what it had not yet sent: tell the consumer.
        log.info("%s restarted on %s (%s)", src, topic, how)
        self.counters["restarts"] = self.counters.get("restarts", 0) + 1
        if self.on_restart is not None:
            try:
                self.on_restart(src, topic)
            except Exception:
                log.exception("restart callback failed")

    def _seq_break(self, topic: str, src: str, last: int, seq: int) -> None:
        """A seq that is not last+1: a publisher restart (backwards) or lost messages (jump)."""
        if seq <= last:
            self._restarted(src, topic, f"seq {seq} after {last}")
            return
        if topic.startswith(topics.PROBES):
            # A later `ready()` sends probes again before its subscription is back at the
            # broker: losing some is how readiness works, not a loss to report.
            return
        self.counters["gaps"] += 1
        self.counters["lost"] += seq - last - 1
        if self.on_gap is not None:
            try:
                self.on_gap(src, topic, last + 1, seq - 1)
            except Exception:
                log.exception("gap callback failed")

    # ------------------------------------------------------------------ catch-up

    def keeps_history(self, family: str) -> bool:
        """Whether the backend keeps a history of a topic family (`bar`, `fill`, ...) that
        `replay` reads: Redis with streams on does, ZeroMQ and the memory hub keep nothing."""
        return self.backend.keeps(family)

    async def replay(self, family: str, after: str = "-", count: int = 1000
                     ) -> tuple[list[Envelope], str]:
        """What the backend kept of a topic family after the entry id `after` ("-": from the
        oldest kept), oldest first, decoded and checked by the codec (a malformed entry is
        counted and skipped), with the sender as the backend vouches for it; and the entry id
        to ask from next (`after` itself when nothing is left). Nothing is dispatched and no
        `seq` is booked: history is not the live stream, whose loss detection it would fool;
        a consumer de-duplicates what it also received live by the message's own key."""
        entries = await self.backend.replay(family, after, count)
        out: list[Envelope] = []
        for _, topic, payload, sender in entries:
            try:
                out.append(decode((topic, payload), sender))
            except DecodeError as exc:
                self._malformed(exc)
        return out, entries[-1][0] if entries else after

    # ------------------------------------------------------------------ readiness

    async def ready(self, timeout: float = 10.0) -> None:
        """Return once a message we publish comes back to us through the broker.

        That proves our publisher and subscriber are connected and that our subscriptions
        (sent before the probe's) have reached the broker. Raises BusNotReady on timeout.
        """
        self.start()
        seen = asyncio.Event()
        nonce = secrets.randbits(48)

        def got(env: Envelope) -> None:
            if env.payload.get("nonce") == nonce:
                seen.set()

        topic = topics.probe(self.instance)
        self.on(topic, got)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while not seen.is_set():
                if loop.time() > deadline:
                    raise BusNotReady(f"no loopback through the broker within {timeout}s")
                self.publish(topic, Probe(nonce=nonce))
                try:
                    await asyncio.wait_for(seen.wait(), 0.05)
                except asyncio.TimeoutError:
                    pass
        finally:
            self.unsubscribe(topic)

    # ------------------------------------------------------------------ request / reply

    def new_rid(self) -> str:
        return f"{self.instance}-{next(self._rid_counter)}"

    async def request(
        self,
        service: str,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float = 2.0,
        attempts: int = 3,
        rid: str | None = None,
    ) -> Reply:
        """Send a command and wait for its one reply, resending with the same id on time-out."""
        self.start()
        rid = rid or self.new_rid()
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        cmd = Command(rid=rid, service=service, name=name, reply_to=topics.reply(self.instance),
                      args=args or {})
        topic = topics.command(service, name)
        try:
            for _ in range(max(1, attempts)):
                self.publish(topic, cmd)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), timeout)
                except asyncio.TimeoutError:
                    continue
            raise RequestTimeout(f"no reply to {service}.{name} (rid {rid}) after {attempts} tries")
        finally:
            self._pending.pop(rid, None)

    def _on_reply(self, env: Envelope) -> None:
        fut = self._pending.get(env.payload["rid"])
        if fut is not None and not fut.done():
            fut.set_result(env.message())  # type: ignore[arg-type]

    def serve(self, service: str, handlers: dict[str, CommandHandler],
              *, with_sender: bool = False) -> None:
        """Answer commands for `service`; each handler takes the args map and returns a result.

        With `with_sender`, handlers are called as `handler(args, sender)`, sender being the
        requesting process's envelope `src` (the gateway attributes orders to their sender)."""

        prefix = topics.commands(service)

        async def on_command(env: Envelope) -> None:
            cmd = env.message()
            if not isinstance(cmd, Command):
                self._reject_command(env, "not a command")
                return
            self.counters["commands"] += 1
            # The topic says what is asked; the payload must agree (a subscriber's topic filter
            # is the only access check a command gets, so the payload may not widen it).
            if not cmd.reply_to.startswith(topics.REPLIES) or not cmd.reply_to.endswith("."):
                self._reject_command(env, f"reply_to {cmd.reply_to!r} is not a reply. topic")
                return
            name = env.topic[len(prefix):-1]
            if cmd.service != service or cmd.name != name:
                self._reject_command(env, f"payload names {cmd.service}.{cmd.name}, topic "
                                          f"{service}.{name}")
                self.publish(cmd.reply_to, Reply(
                    rid=cmd.rid, ok=False,
                    error=f"command {cmd.service}.{cmd.name} sent on topic {env.topic}"))
                return
            cached = self._reply_cache.get(cmd.rid)
            if cached is not None:
                self.counters["duplicate_commands"] += 1
                self.publish(cmd.reply_to, cached)
                return
            if cmd.rid in self._inflight:
                self.counters["duplicate_commands"] += 1
                return
            self._inflight.add(cmd.rid)
            self._spawn(self._run_command(cmd, handlers.get(cmd.name),
                                          env.src if with_sender else None))

        self.on(topics.commands(service), on_command)

    def _reject_command(self, env: Envelope, why: str) -> None:
        self.counters["commands_rejected"] += 1
        n = self.counters["commands_rejected"]
        if n <= 10 or n % 1000 == 0:
            log.warning("rejected a command on %s from %s: %s (%d so far)", env.topic,
                        env.payload.get("src"), why, n)

    async def _run_command(self, cmd: Command, handler: CommandHandler | None,
                           sender: str | None = None) -> None:
        try:
            if handler is None:
                reply = Reply(rid=cmd.rid, ok=False, error=f"unknown command {cmd.name!r}")
            else:
                try:
                    result = await (handler(dict(cmd.args)) if sender is None
                                    else handler(dict(cmd.args), sender))  # type: ignore[call-arg]
                    reply = Reply(rid=cmd.rid, ok=True, result=result)
                except CommandError as exc:
                    reply = Reply(rid=cmd.rid, ok=False, error=str(exc))
                except Exception as exc:
                    self.counters["handler_errors"] += 1
                    log.exception("command %s.%s failed", cmd.service, cmd.name)
                    reply = Reply(rid=cmd.rid, ok=False, error=f"internal error: {exc!r}")
            self._reply_cache[cmd.rid] = reply
            while len(self._reply_cache) > 10_000:
                self._reply_cache.popitem(last=False)
            self.publish(cmd.reply_to, reply)
        finally:
            self._inflight.discard(cmd.rid)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        """Stop receiving and let go of the backend at once (sockets with linger 0)."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks) + ([self._recv_task] if self._recv_task else []):
            task.cancel()
        for task in list(self._tasks) + ([self._recv_task] if self._recv_task else []):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self.backend.close()
