"""How the trading tools show orders that the venue's own states would mislead a trader about.

A bracketed entry's legs exist at the venue from the moment the entry is placed, suspended
(status 8) and without prices, until the entry fills: shown as `working` with no price, they
read as two live orders at nowhere. Here they are `waiting`, priced where they will be
placed if the entry fills at its own price (a fill elsewhere moves them with it). Only the
tools' view changes: the bus keeps the venue's status and the gateway's state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.requests import leg_prices
from trading.orders.records import IntentRecord, OrderRecord
from trading.venue_codes import OrderStatus

WAITING = "waiting"


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
