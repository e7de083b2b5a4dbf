"""The broker: an XSUB/XPUB relay between every publisher and every subscriber.

Relaying is libzmq's own `zmq_proxy_steerable` running in a thread, so a message costs no Python
at all on its way through. The asyncio side of the process only does what every process does
(heartbeat with the proxy's own message counters, polled without blocking the loop; clean stop):
TERMINATE goes to the proxy over its control socket. The broker holds no state; peers reconnect and resubscribe when it restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import struct
import threading
import time
from typing import Any

import zmq
import zmq.asyncio

from chillly.security import (
    CurveKeys, curve_from_settings, require_safe, secure_server, start_authenticator,
)
from chillly.bus import DEFAULT_MAX_MESSAGE_BYTES
from chillly.errors import StartupError
from chillly.periodic import every
from chillly.process import Service

log = logging.getLogger("broker")

_CONTROL = "inproc://broker-control"


def check_ipc_free(addr: str) -> None:
    """ZeroMQ silently takes over an ipc path another broker is serving; refuse instead."""
    if not addr.startswith("ipc://"):
        return
    path = addr[len("ipc://"):]
    if not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            raise StartupError(f"cannot bind {addr}: directory {parent} does not exist")
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # stale socket file from a killed broker
        return
    finally:
        probe.close()
    raise StartupError(f"address in use: {addr} (another broker is serving it)")


_STAT_NAMES = ("pub_msgs_in", "pub_bytes_in", "pub_msgs_out", "pub_bytes_out",
               "sub_msgs_in", "sub_bytes_in", "sub_msgs_out", "sub_bytes_out")


class StatsClient:
    """Asks the proxy for its counters over its control socket without blocking the loop.

    One request is outstanding at most: a reply that comes late is still the answer to the
    request that is waiting for it, never taken for a later one's (which would leave every
    later count one reply behind)."""

    def __init__(self, control: zmq.asyncio.Socket) -> None:
        self.control = control
        self.waiting = False
        self.timeouts = 0

    async def poll(self, timeout: float = 0.5) -> dict[str, int] | None:
        """The proxy's counters, or None if it did not answer within `timeout` (the request
        stays outstanding; the next poll collects its answer first)."""
        if not self.waiting:
            await self.control.send(b"STATISTICS")
            self.waiting = True
        try:
            frames = await asyncio.wait_for(self.control.recv_multipart(), timeout)
        except asyncio.TimeoutError:
            self.timeouts += 1
            return None
        self.waiting = False
        return dict(zip(_STAT_NAMES, (struct.unpack("=Q", f)[0] for f in frames)))


class Relay:
    """XSUB (publishers connect) <-> XPUB (subscribers connect), relayed in C.

    It owns its ZeroMQ context, apart from the process's bus: stopping never waits on a
    context whose sockets a relay thread might still hold (ctx.term() would block on them)."""

    def __init__(self, publish_addr: str, subscribe_addr: str, hwm: int,
                 curve: CurveKeys | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._ctx: zmq.Context[Any] = zmq.Context()
        self.max_message_bytes = max_message_bytes
        self.curve = curve
        self._auth: object = None
        self.publish_addr = publish_addr
        self.subscribe_addr = subscribe_addr
        self.hwm = hwm
        self._bound = threading.Event()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._control: zmq.asyncio.Socket | None = None
        self.stats: StatsClient | None = None
        self.bind_wait = 3.0

    def start(self, timeout: float = 8.0) -> None:
        for addr in (self.publish_addr, self.subscribe_addr):
            require_safe(addr, self.curve)
            check_ipc_free(addr)
        self._auth = start_authenticator(self._ctx, self.curve)
        self._thread.start()
        if not self._bound.wait(timeout):
            raise StartupError("relay did not start")
        if self._error:
            raise StartupError(self._error)
        actx = zmq.asyncio.Context.shadow(self._ctx.underlying)
        self._control = actx.socket(zmq.PAIR)
        self._control.setsockopt(zmq.LINGER, 0)
        self._control.connect(_CONTROL)
        self.stats = StatsClient(self._control)

    def _run(self) -> None:
        xsub = self._ctx.socket(zmq.XSUB)
        xpub = self._ctx.socket(zmq.XPUB)
        ctl = self._ctx.socket(zmq.PAIR)
        for s in (xsub, xpub, ctl):
            s.setsockopt(zmq.LINGER, 0)
        # A publisher that sends a bigger frame is disconnected by libzmq before the frame is
        # read into memory, so nothing oversized reaches any subscriber (BUS_MAX_MESSAGE_BYTES).
        for s in (xsub, xpub):
            s.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        xsub.setsockopt(zmq.RCVHWM, self.hwm)
        xpub.setsockopt(zmq.SNDHWM, self.hwm)
        try:
            for s in (xsub, xpub):
                secure_server(s, self.curve)
            for sock, addr in ((xsub, self.publish_addr), (xpub, self.subscribe_addr)):
                error = self._bind(sock, addr)
                if error:
                    self._error = error
                    return
            ctl.bind(_CONTROL)
        finally:
            self._bound.set()
            if self._error:
                for s in (xsub, xpub, ctl):
                    s.close(linger=0)
        try:
            zmq.proxy_steerable(xsub, xpub, None, ctl)
        except zmq.ContextTerminated:
            pass
        finally:
            for s in (xsub, xpub, ctl):
                s.close(linger=0)

    def _bind(self, sock: zmq.Socket[Any], addr: str) -> str | None:
        """Bind, giving an old broker that is still stopping (a restart, or every program
        SIGTERMed when supervisord dies and starts again) its stop budget to let go of the
        address: exit 2 for "address in use" is not restarted. The error, or None."""
        deadline = time.monotonic() + self.bind_wait
        while True:
            try:
                sock.bind(addr)
                return None
            except zmq.ZMQError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    return f"cannot bind {addr}: {exc.strerror}"
                time.sleep(0.05)

    async def stop(self, timeout: float = 1.0) -> bool:
        """TERMINATE the proxy and wait for its thread off the loop, at most `timeout`. False
        if it did not end: its context is then left to the process exit (a daemon thread)
        rather than terminated, which would block until the thread let go of its sockets."""
        ended = True
        if self._control is not None:
            try:
                await asyncio.wait_for(self._control.send(b"TERMINATE"), 0.2)
            except (asyncio.TimeoutError, zmq.ZMQError):
                pass
            await asyncio.to_thread(self._thread.join, timeout)
            ended = not self._thread.is_alive()
            self._control.close(linger=0)
            self._control = None
        if self._auth is not None:
            self._auth.stop()  # type: ignore[attr-defined]
            self._auth = None
        if ended:
            self._ctx.term()
        else:
            log.error("the relay thread did not end within %.1fs; exiting without it", timeout)
        return ended


class BrokerService(Service):
    name = "broker"
    stats_every = 1.0
    relay: Relay | None

    async def on_start(self) -> None:
        if self.settings.bus_backend != "zmq":
            # Redis is the meeting point then: the program stays up (heartbeats, so
            # `chillly status` does not call it missing) and relays nothing.
            self.relay = None
            log.info("BUS_BACKEND=%s: the bus needs no broker; idling",
                     self.settings.bus_backend)
            return
        self.relay = Relay(self.settings.bus_publish_addr, self.settings.bus_subscribe_addr,
                           self.settings.bus_hwm, curve_from_settings(self.settings),
                           self.settings.bus_max_message_bytes)
        self.relay.start()
        self.counters.update({"relayed": 0, "relayed_bytes": 0, "stats_timeouts": 0})
        log.info("relaying: publishers -> %s (XSUB), subscribers <- %s (XPUB)",
                 self.settings.bus_publish_addr, self.settings.bus_subscribe_addr)

    async def run(self) -> None:
        if self.relay is None:
            await self.stopping.wait()
            return
        await every(self.stats_every, self._poll_stats, self.stopping)

    async def _poll_stats(self) -> None:
        assert self.relay is not None and self.relay.stats is not None
        stats = await self.relay.stats.poll()
        self.counters["stats_timeouts"] = self.relay.stats.timeouts
        if stats is not None:
            self.counters.update({"relayed": stats.get("sub_msgs_out", 0) // 2,
                                  "relayed_bytes": stats.get("sub_bytes_out", 0)})

    async def on_stop(self) -> None:
        relay = getattr(self, "relay", None)   # None when stopped before it started
        if relay is not None:
            await relay.stop()


def cli(args: argparse.Namespace) -> int:
    """`chillly broker` and `python -m broker`."""
    from chillly.process import run_service

    return run_service(BrokerService)
