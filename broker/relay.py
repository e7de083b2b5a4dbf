"""The broker: an XSUB/XPUB relay between every publisher and every subscriber.

Relaying is libzmq's own `zmq_proxy_steerable` running in a thread, so a message costs no Python
at all on its way through. The asyncio side of the process only does what every process does
(heartbeat with the proxy's own message counters, clean stop): TERMINATE goes to the proxy over
its control socket. The broker holds no state; peers reconnect and resubscribe when it restarts.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
from typing import Any

import zmq

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


class Relay:
    """XSUB (publishers connect) <-> XPUB (subscribers connect), relayed in C."""

    def __init__(self, ctx: zmq.Context, publish_addr: str, subscribe_addr: str, hwm: int,
                 curve: CurveKeys | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._ctx = ctx
        self.max_message_bytes = max_message_bytes
        self.curve = curve
        self._auth: object = None
        self.publish_addr = publish_addr
        self.subscribe_addr = subscribe_addr
        self.hwm = hwm
        self._bound = threading.Event()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._control: zmq.Socket | None = None

    def start(self, timeout: float = 5.0) -> None:
        for addr in (self.publish_addr, self.subscribe_addr):
            require_safe(addr, self.curve)
            check_ipc_free(addr)
        self._auth = start_authenticator(self._ctx, self.curve)
        self._thread.start()
        if not self._bound.wait(timeout):
            raise StartupError("relay did not start")
        if self._error:
            raise StartupError(self._error)
        self._control = self._ctx.socket(zmq.PAIR)
        self._control.setsockopt(zmq.LINGER, 0)
        self._control.connect(_CONTROL)

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
                try:
                    sock.bind(addr)
                except zmq.ZMQError as exc:
                    self._error = f"cannot bind {addr}: {exc.strerror}"
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

    def statistics(self) -> dict[str, int]:
        """Messages and bytes in/out on both sides, counted by libzmq inside the proxy."""
        if self._control is None:
            return {}
        self._control.send(b"STATISTICS")
        if not self._control.poll(50):
            return {}
        frames = self._control.recv_multipart()
        values = [struct.unpack("=Q", f)[0] for f in frames]
        names = ("pub_msgs_in", "pub_bytes_in", "pub_msgs_out", "pub_bytes_out",
                 "sub_msgs_in", "sub_bytes_in", "sub_msgs_out", "sub_bytes_out")
        return dict(zip(names, values))

    def stop(self) -> None:
        if self._control is not None:
            self._control.send(b"TERMINATE")
            self._thread.join(1.0)
            self._control.close(linger=0)
            self._control = None
        if self._auth is not None:
            self._auth.stop()  # type: ignore[attr-defined]
            self._auth = None


class BrokerService(Service):
    name = "broker"
    stats_every = 1.0

    async def on_start(self) -> None:
        ctx: zmq.Context[Any] = zmq.Context.shadow(self.bus._ctx.underlying)
        self.relay = Relay(ctx, self.settings.bus_publish_addr, self.settings.bus_subscribe_addr,
                           self.settings.bus_hwm, curve_from_settings(self.settings),
                           self.settings.bus_max_message_bytes)
        self.relay.start()
        log.info("relaying: publishers -> %s (XSUB), subscribers <- %s (XPUB)",
                 self.settings.bus_publish_addr, self.settings.bus_subscribe_addr)

    async def run(self) -> None:
        await every(self.stats_every, self._poll_stats, self.stopping)

    def _poll_stats(self) -> None:
        stats = self.relay.statistics()
        self.counters.update({"relayed": stats.get("sub_msgs_out", 0) // 2,
                              "relayed_bytes": stats.get("sub_bytes_out", 0)})

    async def on_stop(self) -> None:
        relay = getattr(self, "relay", None)   # None when stopped before it started
        if relay is not None:
            relay.stop()


def main() -> int:
    from chillly.process import run_service

    return run_service(BrokerService)


def cli(args: object) -> int:
    return main()
