"""Who may ask the gateway what, decided by the transport that carried the command.

Two doors (docs/architecture.md, "Trust"):
- the trader's tools socket (chillly/tools_socket.py): the kernel vouches that the peer runs
  as the trader's own user, so everything is served there, for any owner ("manual" orders);
- the bus: a command's sender is the envelope's `src`, which only our own processes can set
  (strategy code has no bus socket: its trusted parent stamps `strategy-NAME`). Served there:
  the reads (`orders`, `positions`, `account`, `risk` without a setting), and a strategy's own
  order commands (`submit`, `cancel`, `modify`, `cancel_all`, `flatten`) about its own orders.
  Everything else is the trader's (halt, resume, risk settings, manual orders, another owner's
  order): refused, counted and alarmed, and the gateway goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chillly.bus import CommandError
from chillly.tools_socket import ToolsError
from gateway.requests import Invalid, owner_of

log = logging.getLogger("gateway")

READS = frozenset({"orders", "positions", "account", "risk"})
STRATEGY_COMMANDS = frozenset({"submit", "cancel", "modify", "cancel_all", "flatten"})
ABOUT_AN_ORDER = frozenset({"cancel", "modify"})
TOOLS_SENDER = "tools"          # owner_of() makes it "manual"
ALARM = "refused_command"
QUIET_S = 60.0                  # the alarm clears after this long without a refusal

Handler = Callable[[dict[str, Any], str], Awaitable[Any]]
Alarm = Callable[[str, bool, str], None]


def bus_refusal(name: str, args: dict[str, Any], sender: str) -> str | None:
    """Why `sender` may not send `name` over the bus, or None when it may."""
    if name in READS and not (name == "risk" and args.get("set_high_water") is not None):
        return None
    if name in STRATEGY_COMMANDS and owner_of(sender) != "manual":
        return None
    what = "risk --set-high-water" if name == "risk" else name
    return (f"{what} from {sender!r} over the bus: that is the trader's, served only on the "
            "tools socket")


class Authority:
    """Wraps the gateway's command handlers for each door and counts what it refuses."""

    def __init__(self, handlers: dict[str, Handler], counters: dict[str, Any], alarm: Alarm,
                 owner_of_order: Callable[[dict[str, Any]], str | None]) -> None:
        self.handlers = handlers
        self.counters = counters
        self.alarm = alarm
        self.owner_of_order = owner_of_order
        self._quiet: asyncio.TimerHandle | None = None
        counters.update(refused_bus=0, refused_not_owner=0, refused_peer=0)

    def bus_handlers(self) -> dict[str, Any]:
        return {name: self._bus(name, h) for name, h in self.handlers.items()}

    def _bus(self, name: str, handler: Handler) -> Handler:
        async def guarded(args: dict[str, Any], sender: str) -> Any:
            why = bus_refusal(name, args, sender)
            if why is not None:
                self.refused("refused_bus", why)
                raise CommandError(why)
            if name in ABOUT_AN_ORDER:
                try:
                    owner = self.owner_of_order(args)
                except Invalid:
                    owner = None      # unknown order: the handler says so
                if owner is not None and owner != owner_of(sender):
                    why = (f"{name} from {sender!r}: order {args.get('order_id') or args.get('client_id')} "
                           f"belongs to {owner}")
                    self.refused("refused_not_owner", why)
                    return {"status": "rejected", "order_id": args.get("order_id"),
                            "rule": "not_owner", "message": why}
            return await handler(args, sender)
        return guarded

    async def tools(self, name: str, args: dict[str, Any]) -> Any:
        """A command from the tools socket: the trader, any owner."""
        handler = self.handlers.get(name)
        if handler is None:
            raise ToolsError(f"unknown command {name!r}")
        try:
            return await handler(args, TOOLS_SENDER)
        except CommandError as exc:
            raise ToolsError(str(exc)) from None

    def refused_peer(self, pid: int, uid: int, gid: int) -> None:
        self.refused("refused_peer", f"tools socket: pid {pid} runs as uid {uid}, not the "
                                     "trader's user")

    def refused(self, counter: str, why: str) -> None:
        self.counters[counter] = self.counters.get(counter, 0) + 1
        log.warning("refused: %s (%s %d)", why, counter, self.counters[counter])
        self.alarm(ALARM, True, why)
        if self._quiet is not None:
            self._quiet.cancel()
        self._quiet = asyncio.get_running_loop().call_later(
            QUIET_S, lambda: self.alarm(ALARM, False, "no refused command for a minute"))
