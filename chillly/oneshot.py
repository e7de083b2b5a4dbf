"""One command from a short-lived tool (`chillly subscribe`, `chillly buy`, ...).

Every CLI tool that asks a service something goes through `ask`, so they all handle a missing
broker, a silent service and resends the same way. The tool's bus instance is unique per run
(the bus adds a random suffix), so two tools at once never share sequence numbers or replies.
The gateway is asked over the trader's tools socket instead (chillly/tools_socket.py), where
the kernel vouches for the caller's user: on the bus it serves reads and strategies only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chillly.bus import Bus, RequestTimeout
from chillly.settings import Settings, load_settings
from chillly.tools_socket import ask as ask_tools
from chillly.tools_socket import socket_path

TOOLS_SERVICE = "gateway"   # the one service that answers on the tools socket


async def ask(service: str, name: str, args: dict[str, Any] | None = None, *,
              timeout: float = 10.0, settings: Settings | None = None,
              tool: str | None = None) -> tuple[bool, Any, str | None]:
    """Send one command and wait for its reply: (ok, result, error).

    Resends every 2 s with the same request id until `timeout`: a command lost while the
    service was still joining the bus is retried soon, and a long-running one is not run twice
    (handlers are idempotent on the id; the reply is cached)."""
    settings = settings or load_settings()
    if service == TOOLS_SERVICE:
        return await ask_tools(socket_path(settings.venue_run_dir), name, args,
                               timeout=timeout)
    bus = Bus.from_settings(settings, f"cli-{tool or name}")
    try:
        try:
            await bus.ready(timeout=min(5.0, timeout))
        except Exception:
            return False, None, "no broker: is `chillly broker` running?"
        per_try = min(2.0, timeout)
        attempts = max(1, int(timeout / per_try))
        try:
            reply = await bus.request(service, name, args or {}, timeout=per_try,
                                      attempts=attempts)
        except RequestTimeout:
            return False, None, f"no reply from {service} within {timeout:.0f}s: is it running?"
        return reply.ok, reply.result, reply.error
    finally:
        await bus.close()


def ask_sync(service: str, name: str, args: dict[str, Any] | None = None, *,
             timeout: float = 10.0, settings: Settings | None = None,
             tool: str | None = None) -> tuple[bool, Any, str | None]:
    """`ask` for a synchronous CLI entry point."""
    return asyncio.run(ask(service, name, args, timeout=timeout, settings=settings, tool=tool))
