"""How the trading tools show orders: the legs of an unfilled entry, and the day's refusals.


A bracketed entry's legs exist at the venue from the moment the entry is placed, suspended
(status 8) and without prices, until the entry fills: shown as `working` with no price, they
read as two live orders at nowhere. Here they are `waiting`, priced where they will be
placed if the entry fills at its own price (a fill elsewhere moves them with it). Only the
tools' view changes: the bus keeps the venue's status and the gateway's state.

An order the gateway refuses (bad request, a risk rule, the venue's own refusal) often never
becomes a venue order, so the order table never holds it: `Refusals` keeps the day's (the last
MAX of them; the gateway's log has them all), shaped like an order message with `state:
"rejected"`, no `order_id`, and `reason` naming the rule, for `orders --all`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from trading.orders.requests import TYPE_NAME, leg_prices, owner_of
from trading.orders.records import IntentRecord, OrderRecord
from trading.venue_codes import OrderStatus, Side

WAITING = "waiting"
MAX = 500
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_TYPES = {name: code for code, name in TYPE_NAME.items() if code}   # command name -> venue code


def show_waiting_legs(bodies: list[dict[str, Any]], orders: Mapping[int, OrderRecord],
                      intents: Mapping[str, IntentRecord],
                      tick_of: Callable[[str], float]) -> list[dict[str, Any]]:
    """`bodies` (order messages) with each suspended leg of an unfilled entry marked waiting
    and priced from the entry's price and its bracket's ticks; `tick_of(contract)` its tick."""
    out = []
    for body in bodies:
        parent = orders.get(body.get("parent_id") or -1)
        if (parent is None or body.get("status") != OrderStatus.SUSPENDED
                or parent.fill_volume or parent.terminal):
            out.append(body)
            continue
        rec = intents.get(parent.client_id or "")
        base = parent.limit_price or parent.stop_price
        tick = tick_of(body["contract"])
        sl = tp = None
        if rec is not None and base and tick:
            sl, tp = leg_prices(parent.side, base, tick, rec.sl_ticks, rec.tp_ticks)
        tag = body.get("client_id") or body.get("custom_tag") or ""
        body = {**body, "state": WAITING}
        if tag.endswith("-SL") and sl is not None:
            body["stop_price"] = sl
        elif tag.endswith("-TP") and tp is not None:
            body["limit_price"] = tp
        out.append(body)
    return out


class Refusals:
    """The day's refused submits, for `orders --all`."""

    def __init__(self) -> None:
        self.rows: deque[dict[str, Any]] = deque(maxlen=MAX)

    def add(self, args: dict[str, Any], sender: str, reply: dict[str, Any], at_ms: int) -> None:
        """One refused submit: the request as sent, the reply's rule and message."""
        side, kind = args.get("side"), args.get("type", "market")
        rule = reply.get("rule")
        size = args.get("size")
        self.rows.append({
            "order_id": None, "client_id": reply.get("client_id") or args.get("client_id"),
            "owner": owner_of(sender), "contract": str(args.get("contract", "")),
            "side": _SIDES.get(side, side) if isinstance(side, str) else side,
            "size": size if isinstance(size, int) else 0,
            "order_type": _TYPES.get(kind, kind) if isinstance(kind, str) else kind,
            "state": "rejected", "fill_volume": 0, "filled_price": None,
            "limit_price": args.get("limit_price"), "stop_price": args.get("stop_price"),
            "parent_id": None, "rule": rule,
            "reason": f"{rule}: {reply.get('message')}" if rule else reply.get("message"),
            "created_ms": at_ms})

    def of(self, owner: str | None) -> list[dict[str, Any]]:
        return [r for r in self.rows if owner is None or r["owner"] == owner]
