"""The `zmq` backend: a PUB socket into the broker's XSUB side, a SUB socket out of its XPUB.

ZeroMQ vouches for no sender: anything that reached the broker's ports may publish any topic
under any name (docs/architecture.md, trust). PUB drops at its high-water mark instead of
blocking; SUB matches topic prefixes; ZMQ_MAXMSGSIZE makes libzmq drop an oversized frame (and
the peer that sent it) before reading it into memory; ZeroMQ reconnects and resubscribes by
itself after a broker restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import zmq
import zmq.asyncio

from chillly.bus_backends.base import BATCH, Backend, Deliver
from chillly.security import CurveKeys, require_safe, secure_client


class ZmqBackend(Backend):
    kind = "zmq"

    def __init__(self, publish_addr: str, subscribe_addr: str, *, hwm: int = 100_000,
                 curve: CurveKeys | None = None, max_message_bytes: int = 1 << 20) -> None:
        super().__init__()
        for addr in (publish_addr, subscribe_addr):
            require_safe(addr, curve)
        self.publish_addr, self.subscribe_addr = publish_addr, subscribe_addr
        # The process's one context, never terminated by us: a context of our own would be
        # terminated by its __del__ when a Bus is dropped unclosed, and in a cyclic collection
        # that can run before its sockets close, so zmq_ctx_term waited for them for ever
        # (it hung a test worker inside an unrelated import). Sockets close with linger 0.
        self._ctx = zmq.asyncio.Context.instance()
        # Async sockets own the handles; sync shadows do the non-blocking sends and drains.
        self._pub_async = self._ctx.socket(zmq.PUB)
        self._pub: zmq.Socket[Any] = zmq.Socket.shadow(self._pub_async.underlying)
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub_sync: zmq.Socket[Any] = zmq.Socket.shadow(self._sub.underlying)
        for sock in (self._pub, self._sub_sync):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
            # Reconnect quickly after a broker restart, backing off to one second.
            sock.setsockopt(zmq.RECONNECT_IVL, 50)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
            secure_client(sock, curve)
        self._pub.setsockopt(zmq.SNDHWM, hwm)
        self._sub_sync.setsockopt(zmq.RCVHWM, hwm)
        self._pub.connect(publish_addr)
        self._sub_sync.connect(subscribe_addr)
        send = self._pub.send
        noblock, more = zmq.NOBLOCK, zmq.NOBLOCK | zmq.SNDMORE

        # Two sends, not send_multipart: pyzmq's send_multipart checks every frame in Python
        # first and cost 3 us against 1 us for the two calls (bench/bus.py). The topic is bytes
        # and the payload is msgpack's bytes, so there is nothing for it to check; a PUB socket
        # still drops a multipart message whole at its high-water mark. copy=True: for
        # messages this small, zero-copy's Frame bookkeeping costs more than the copy.
        def send_now(topic: str, payload: bytes) -> None:
            send(topic.encode(), more)
            send(payload, noblock)

        self.send = send_now  # type: ignore[method-assign]  # one call less per publish
        self._closed = False
        self._drain: Callable[[], None] | None = None    # while receiving
        self._loop: asyncio.AbstractEventLoop | None = None

    def send(self, topic: str, payload: bytes) -> None:  # replaced per instance in __init__
        self._pub.send(topic.encode(), zmq.NOBLOCK | zmq.SNDMORE)
        self._pub.send(payload, zmq.NOBLOCK)

    def subscribe(self, prefix: str) -> None:
        self._sub_sync.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self._kick()

    def unsubscribe(self, prefix: str) -> None:
        self._sub_sync.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())
        self._kick()

    def _kick(self) -> None:
        """A setsockopt on the SUB socket may process its pending commands, taking the very
        signal that would have made ZMQ_FD readable: drain once more so nothing waits for a
        signal that already went (zmq.asyncio does the same after every operation)."""
        if self._drain is not None and self._loop is not None:
            self._loop.call_soon(self._drain)

    async def receive(self, deliver: Deliver) -> None:
        """Drains the SUB socket from a reader callback on its file descriptor: the event loop
        calls it as soon as ZeroMQ signals, with no task or future woken per batch (that hop
        cost more than decoding a message; bench/bus.py). Up to BATCH messages per call, then
        the rest after the loop's other callbacks had a turn. An async handler's awaitable
        pauses the draining until it is done, so messages are still handled in order."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        # Frame by frame, not recv_multipart (a Python loop with a list: 3 us against 1.5 us
        # for these calls): a bus message is two frames; any other count still arrives whole
        # (ZeroMQ delivers a multipart message atomically) and the codec refuses it.
        recv, more = self._sub_sync.recv, self._sub_sync.get
        noblock, again, rcvmore = zmq.NOBLOCK, zmq.Again, zmq.RCVMORE
        fd = self._sub_sync.fileno()   # ZMQ_FD
        paused = False

        def resume(task: asyncio.Future[Any]) -> None:
            nonlocal paused
            paused = False
            if task.cancelled() or ended.done():
                return
            exc = task.exception()
            if exc is not None:
                ended.set_exception(exc)
                return
            drain()

        def drain() -> None:
            nonlocal paused
            if paused or self._closed or ended.done():
                return
            try:
                for _ in range(BATCH):
                    try:
                        first = recv(noblock)
                    except again:
                        return          # the descriptor signals again when more arrives
                    if not more(rcvmore):
                        frames: Sequence[bytes] = (first,)
                    else:
                        frames = (first, recv(noblock))
                        if more(rcvmore):
                            rest = [*frames, recv(noblock)]
                            while more(rcvmore):
                                rest.append(recv(noblock))
                            frames = rest
                    pending = deliver(frames, None)
                    if pending is not None:
                        paused = True
                        loop.create_task(pending).add_done_callback(resume)  # type: ignore[arg-type]
                        return
                loop.call_soon(drain)   # more may be queued; ZeroMQ would not signal it
            except BaseException as exc:   # a closed socket, or a bug below: the loop dies
                if not ended.done():       # (and the process lifecycle sees it die)
                    ended.set_exception(exc)

        loop.add_reader(fd, drain)
        loop.call_soon(drain)           # whatever arrived before the reader was registered
        self._loop, self._drain = loop, drain
        try:
            await ended
        finally:
            self._drain = None
            loop.remove_reader(fd)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pub_async.close(linger=0)
        self._sub.close(linger=0)

    def describe(self) -> str:
        return f"zmq {self.publish_addr} / {self.subscribe_addr}"
