"""The socketpair between a strategy host's trusted parent and its sandboxed child.

The child runs the strategy's code and has no bus socket at all (its sandbox refuses every new
socket): its `Bus` runs over `PipeBackend`, whose frames go to the parent over an inherited
socketpair, and the parent (strategy_host/parent.py) decides what goes on: it stamps the
instance's name on what it forwards and subscribes only to the instance's own topics.

A frame is `>IBH` (length of what follows the 4 bytes, kind, topic length), the UTF-8 topic and
the payload (bytes as on the bus). Kinds: PUB (child -> parent: publish), SUB / UNSUB (child ->
parent: a topic prefix), MSG (parent -> child: a bus message). Neither side ever blocks on the
other: a side that does not read has its frames buffered up to `MAX_BUFFERED` bytes, then
dropped and counted (the bus's own loss detection by `seq` shows it to the receiver).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable, Iterator

from chillly.bus_backends.base import Backend, Deliver

PUB, SUB, UNSUB, MSG = 1, 2, 3, 4
_HEAD = struct.Struct(">IBH")
MAX_FRAME = 300 << 20                 # above any BUS_MAX_MESSAGE_BYTES
MAX_BUFFERED = 64 << 20
FD_ENV = "CHILLLY_PIPE_FD"            # the child's end, inherited
ALARM_FD_ENV = "CHILLLY_ALARM_FD"     # the watchdog thread's own end (blocking writes)


def frame(kind: int, topic: str, payload: bytes = b"") -> bytes:
    t = topic.encode()
    return _HEAD.pack(len(t) + len(payload) + 3, kind, len(t)) + t + payload


class Frames:
    """Splits a byte stream into (kind, topic, payload) frames."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, str, bytes]]:
        buf = self.buf
        buf += data
        pos = 0
        while len(buf) - pos >= _HEAD.size:
            n, kind, tlen = _HEAD.unpack_from(buf, pos)
            if n > MAX_FRAME or tlen > n - 3:
                raise ValueError(f"bad frame (length {n}, topic {tlen})")
            if len(buf) - pos < 4 + n:
                break
            start = pos + _HEAD.size
            topic = bytes(buf[start:start + tlen]).decode("utf-8", "replace")
            payload = bytes(buf[start + tlen:pos + 4 + n])
            pos += 4 + n
            yield kind, topic, payload
        del buf[:pos]


class Writer:
    """Non-blocking, ordered writes of whole frames to a socket from the event loop's thread:
    what the socket does not take now is sent when it is writable; past `MAX_BUFFERED` a frame
    is dropped and counted."""

    def __init__(self, sock: socket.socket, count: Callable[[str], None]) -> None:
        sock.setblocking(False)
        self.sock, self.count = sock, count
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.out:
            if len(self.out) + len(data) > MAX_BUFFERED:
                self.count("pipe_dropped")
                return
            self.out += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.count("pipe_dropped")
            return
        if n < len(data):
            self.out += data[n:]
            asyncio.get_running_loop().add_writer(self.sock.fileno(), self._flush)

    def _flush(self) -> None:
        try:
            n = self.sock.send(self.out)
        except BlockingIOError:
            return
        except OSError:
            n = len(self.out)
            self.count("pipe_dropped")
        del self.out[:n]
        if not self.out:
            asyncio.get_running_loop().remove_writer(self.sock.fileno())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.out:
                try:
                    asyncio.get_running_loop().remove_writer(self.sock.fileno())
                except (RuntimeError, ValueError):
                    pass


async def receive_frames(sock: socket.socket,
                         handle: Callable[[int, str, bytes], "object"]) -> None:
    """Read frames until the other side closes (returns) and hand each to `handle`; an
    awaitable it returns is awaited before the next frame (ordered async handlers)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    frames = Frames()
    while True:
        data = await loop.sock_recv(sock, 1 << 18)
        if not data:
            return
        for kind, topic, payload in frames.feed(data):
            r = handle(kind, topic, payload)
            if r is not None:
                await r  # type: ignore[misc]


class PipeBackend(Backend):
    """The child's bus transport: everything goes through the parent, which vouches for no one
    but the instance it runs (so the child's `Bus` knows no sender either)."""

    kind = "pipe"

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.writer = Writer(sock, self.count)

    def send(self, topic: str, payload: bytes) -> None:
        self.writer.write(frame(PUB, topic, payload))

    def subscribe(self, prefix: str) -> None:
        self.writer.write(frame(SUB, prefix))

    def unsubscribe(self, prefix: str) -> None:
        self.writer.write(frame(UNSUB, prefix))

    async def receive(self, deliver: Deliver) -> None:
        def handle(kind: int, topic: str, payload: bytes) -> object:
            if kind != MSG:
                self.count("pipe_bad_frames")
                return None
            return deliver([topic.encode(), payload], None)
        await receive_frames(self.sock, handle)
        raise ConnectionError("the host's parent closed the pipe")

    async def close(self) -> None:
        self.writer.close()
        self.sock.close()

    def describe(self) -> str:
        return "pipe to the host's trusted parent"


def send_blocking(sock: socket.socket, kind: int, topic: str, payload: bytes,
                  lock: threading.Lock) -> None:
    """One whole frame from a thread that is not the event loop's (the hook watchdog, whose
    loop may be the one that is stuck): its own socket, a plain blocking send."""
    with lock:
        sock.sendall(frame(kind, topic, payload))

