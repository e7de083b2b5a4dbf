"""The bus contract's rig: one fixture that stands up each backend for real.

- `zmq`: a real broker process on this test's ports (BUS_HWM=1000, so a stalled reader
  overflows soon, as in test_bus.py);
- `memory`: a fresh `MemoryHub` of this test (clients in this process);
- `redis`: a real `redis-server` on a free port, with a small pub/sub output-buffer limit (a
  stalled reader is cut off soon) and `proto-max-bulk-len` 2mb (an oversized frame is refused
  by the server, as libzmq's MAXMSGSIZE refuses it at the broker).

`BusRig.make` builds a `Bus` on the backend; `BusRig.inject` sends raw bytes as a foreign
publisher would (a raw ZeroMQ socket, the hub itself, a plain redis-py client).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from chillly.bus import Bus
from chillly.bus_backends import MemoryBackend, MemoryHub
from tests.support import Proc, Procs, eventually, free_port

HWM = 1000
REDIS_MISSING = ("redis-server is not installed: scripts/test installs Debian's redis-server "
                 "when run as root; elsewhere `apt-get install redis-server`")


def start_redis(procs: Procs, tmp: Path, *extra: str, name: str = "redis") -> tuple[Proc, str]:
    """A real redis-server on a free loopback port; (process, REDIS_URL)."""
    if shutil.which("redis-server") is None:
        pytest.skip(REDIS_MISSING)
    port = free_port()
    data = tmp / f"{name}-data"
    data.mkdir(exist_ok=True)
    proc = procs.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no", "--dir", str(data),
                        "--client-output-buffer-limit", "pubsub 4mb 2mb 10",
                        "--proto-max-bulk-len", "2mb", *extra], name=name)
    eventually(lambda: "Ready to accept connections" in proc.log() or not proc.alive(), 20,
               what="redis-server ready")
    assert proc.alive(), proc.log()
    return proc, f"redis://127.0.0.1:{port}/0"


class BusRig:
    def __init__(self, kind: str, procs: Procs, env: dict[str, str], tmp: Path) -> None:
        self.kind = kind
        self.procs = procs
        self.env = env
        self.hub = MemoryHub()
        self.redis_url = ""
        self.buses: list[Bus] = []
        self._raw: Any = None
        if kind == "zmq":
            procs.spawn(["-m", "broker"], name="broker", env={"BUS_HWM": str(HWM)})
        elif kind == "redis":
            _, self.redis_url = start_redis(procs, tmp)
            env["BUS_BACKEND"] = "redis"
            env["REDIS_URL"] = self.redis_url

    def make(self, name: str, *, hwm: int = 100_000, max_message_bytes: int = 1 << 20,
             **kwargs: Any) -> Bus:
        if self.kind == "zmq":
            bus = Bus(self.env["BUS_PUBLISH_ADDR"], self.env["BUS_SUBSCRIBE_ADDR"], name, hwm=hwm,
                      max_message_bytes=max_message_bytes, **kwargs)
        elif self.kind == "memory":
            bus = Bus.over(MemoryBackend(self.hub, name, hwm=hwm,
                                         max_message_bytes=max_message_bytes),
                           name, max_message_bytes=max_message_bytes, **kwargs)
        else:
            from chillly.bus_backends.redis_pubsub import RedisBackend

            bus = Bus.over(RedisBackend(self.redis_url, name, hwm=hwm,
                                        max_message_bytes=max_message_bytes),
                           name, max_message_bytes=max_message_bytes, **kwargs)
        self.buses.append(bus)
        return bus

    async def inject(self, topic: str, payload: bytes) -> None:
        """One raw message from a foreign publisher that speaks no CHILLLY."""
        if self.kind == "zmq":
            if self._raw is None:
                self._raw = zmq.Context.instance().socket(zmq.PUB)
                self._raw.setsockopt(zmq.LINGER, 0)
                self._raw.connect(self.env["BUS_PUBLISH_ADDR"])
            self._raw.send_multipart([topic.encode(), payload])
        elif self.kind == "memory":
            self.hub.inject([topic.encode(), payload])
        else:
            import redis.asyncio as aioredis
            from redis.exceptions import RedisError

            if self._raw is None:
                self._raw = aioredis.Redis.from_url(self.redis_url)
            try:
                await self._raw.publish(topic + "@raw", payload)
            except RedisError:
                await self._raw.aclose()   # refused (too big): a fresh link for the next one
                self._raw = None

    async def close(self) -> None:
        for bus in self.buses:
            await bus.close()
        if self._raw is not None:
            if self.kind == "zmq":
                self._raw.close(0)
            elif self.kind == "redis":
                await self._raw.aclose()


@pytest.fixture(params=["zmq", "memory", "redis"])
def backend_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "redis" and shutil.which("redis-server") is None:
        pytest.skip(REDIS_MISSING)
    yield request.param


@pytest.fixture
async def rig(backend_kind: str, procs: Procs, bus_env: dict[str, str],
              tmp_path: Path) -> AsyncIterator[BusRig]:
    r = BusRig(backend_kind, procs, bus_env, tmp_path)
    try:
        yield r
    finally:
        await r.close()
