"""Bus backends (`BUS_BACKEND`): `zmq` (the broker, default), `memory` (one process), `redis`.

`from_settings` is the one place a backend is chosen; `chillly.bus.Bus.from_settings` and the
tools (`chillly tap`) go through it. The Redis client is imported only when `redis` is chosen.
"""

from __future__ import annotations

from typing import Any

from chillly.bus_backends.base import BATCH, Backend, Deliver
from chillly.bus_backends.memory import MemoryBackend, MemoryHub

KINDS = ("zmq", "memory", "redis")

__all__ = ["BATCH", "Backend", "Deliver", "KINDS", "MemoryBackend", "MemoryHub",
           "from_settings"]


def from_settings(settings: Any, name: str, *, hwm: int | None = None) -> Backend:
    """The backend `settings` choose, for a bus client called `name`."""
    kind = getattr(settings, "bus_backend", "zmq")
    hwm = settings.bus_hwm if hwm is None else hwm
    cap = settings.bus_max_message_bytes
    if kind == "memory":
        return MemoryBackend(MemoryHub.default(), name, hwm=hwm, max_message_bytes=cap)
    if kind == "redis":
        from chillly.bus_backends.redis_pubsub import RedisBackend

        return RedisBackend(settings.redis_url, name, hwm=hwm, max_message_bytes=cap,
                            stream_maxlen=settings.redis_stream_maxlen)
    from chillly.bus_backends.zeromq import ZmqBackend
    from chillly.security import curve_from_settings

    return ZmqBackend(settings.bus_publish_addr, settings.bus_subscribe_addr, hwm=hwm,
                      curve=curve_from_settings(settings), max_message_bytes=cap)
