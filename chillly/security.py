"""Bus transport security: loopback and ipc by default, ZeroMQ CURVE for anything remote.

The broker refuses to bind, and a client refuses to connect, a tcp endpoint that is not on
the loopback interface unless CURVE keys are configured: the bus carries order commands, so an
open port on a network interface would let anyone on that network trade. With keys set, the
broker is a CURVE server and admits only the configured client key (ZAP), and every client
encrypts with it. `chillly keys` prints a fresh set for `.env`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import zmq

from chillly.errors import StartupError

_LOOPBACK = re.compile(r"^tcp://(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$")


@dataclass(frozen=True)
class CurveKeys:
    server_public: bytes
    server_secret: bytes | None  # the broker's only
    client_public: bytes
    client_secret: bytes


def is_local(addr: str) -> bool:
    """ipc, inproc and loopback tcp need no encryption: nothing leaves the machine."""
    return addr.startswith(("ipc://", "inproc://")) or bool(_LOOPBACK.match(addr))


def curve_from_settings(settings: Any) -> CurveKeys | None:
    """The CURVE keys configured (BUS_CURVE_*), or None when the bus runs without them."""
    server_public = getattr(settings, "bus_curve_server_key", "")
    client_public = getattr(settings, "bus_curve_client_key", "")
    client_secret = getattr(settings, "bus_curve_client_secret", None)
    server_secret = getattr(settings, "bus_curve_server_secret", None)
    if not server_public:
        return None
    if not client_public or client_secret is None:
        raise StartupError("BUS_CURVE_SERVER_KEY is set: BUS_CURVE_CLIENT_KEY and "
                           "BUS_CURVE_CLIENT_SECRET are needed too (chillly keys)")
    return CurveKeys(
        server_public=server_public.encode(),
        server_secret=server_secret.get_secret_value().encode() if server_secret else None,
        client_public=client_public.encode(),
        client_secret=client_secret.get_secret_value().encode(),
    )


def require_safe(addr: str, curve: CurveKeys | None) -> None:
    if curve is None and not is_local(addr):
        raise StartupError(f"refusing remote endpoint {addr} without CURVE: set "
                           "BUS_CURVE_SERVER_KEY and the client keys (chillly keys), or use "
                           "127.0.0.1 or ipc://")


def secure_client(sock: zmq.Socket, curve: CurveKeys | None) -> None:  # type: ignore[type-arg]
    if curve is not None:
        sock.curve_serverkey = curve.server_public
        sock.curve_publickey = curve.client_public
        sock.curve_secretkey = curve.client_secret


def secure_server(sock: zmq.Socket, curve: CurveKeys | None) -> None:  # type: ignore[type-arg]
    if curve is not None:
        if curve.server_secret is None:
            raise StartupError("the broker needs BUS_CURVE_SERVER_SECRET to serve CURVE")
        sock.curve_server = True
        sock.curve_secretkey = curve.server_secret
        sock.curve_publickey = curve.server_public


def start_authenticator(ctx: zmq.Context, curve: CurveKeys | None) -> Any:  # type: ignore[type-arg]
    """ZAP handler admitting only the configured client key (None when CURVE is off)."""
    if curve is None:
        return None
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_Allow(curve.client_public))
    return auth


class _Allow:
    def __init__(self, key: bytes) -> None:
        self.z85 = key

    def callback(self, domain: str, key: bytes) -> bool:
        return zmq.utils.z85.encode(key) == self.z85 if len(key) == 32 else key == self.z85


def keys_cli(args: object) -> int:
    """`chillly keys`: print a fresh server and client CURVE key set as .env lines."""
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    print(f"BUS_CURVE_SERVER_KEY={server_public.decode()}")
    print(f"BUS_CURVE_SERVER_SECRET={server_secret.decode()}")
    print(f"BUS_CURVE_CLIENT_KEY={client_public.decode()}")
    print(f"BUS_CURVE_CLIENT_SECRET={client_secret.decode()}")
    return 0
