"""The day's refused orders, so `chillly orders --all` lists them with their reason.

An order the gateway refuses (bad request, a risk rule, the venue's own refusal) often never
becomes a venue order, so the order table never holds it; a trader looking at `orders --all`
saw nothing of it. Kept in memory (the last MAX of them; the gateway's log has them all), shaped
like an order message with `state: "rejected"`, no `order_id`, and `reason` naming the rule.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gateway.requests import owner_of

MAX = 500
_SIDES = {"buy": 0, "sell": 1}
_TYPES = {"limit": 1, "market": 2, "stop_limit": 3, "stop": 4, "trailing_stop": 5,
          "join_bid": 6, "join_ask": 7}


class Refusals:
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
