"""Validating order commands: who may act for whom, and what reaches the gate (pure).

Every field of a submit is checked here before anything else happens, so a malformed command,
an unknown order type, a size of 0 or a price off the tick grid is rejected with a sentence and
never reaches the journal or the venue. Contract resolution (symbol -> venue contract) is the
caller's (it needs the venue); `build_intent` takes the resolved contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from trading.risk.types import BUY, ORDER_TYPES, SELL, Intent
from trading.venue_codes import OrderType

#: the venue's OrderType per command type (projectx-api.md §4)
VENUE_TYPE = {"limit": OrderType.LIMIT, "market": OrderType.MARKET, "stop": OrderType.STOP,
              "trailing_stop": OrderType.TRAILING_STOP, "join_bid": OrderType.JOIN_BID,
              "join_ask": OrderType.JOIN_ASK}
TYPE_NAME = {int(v): k for k, v in VENUE_TYPE.items()} | {OrderType.STOP_LIMIT: "stop_limit",
                                                          OrderType.UNKNOWN: "unknown"}
#: the venue wants a Stop stop-loss and a Limit take-profit
SL_TYPE, TP_TYPE = OrderType.STOP, OrderType.LIMIT
MAX_TICKS = 1000

_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


class Invalid(ValueError):
    """A command the gateway refuses before the gate: `rule` "invalid" or "duplicate"."""

    def __init__(self, message: str, rule: str = "invalid") -> None:
        super().__init__(message)
        self.rule = rule


def owner_of(sender: str | None) -> str:
    """Whose orders a sender may place: a strategy host `strategy-NAME` acts for NAME; the
    trading tools (and any other process) act as "manual"."""
    if sender and sender.startswith("strategy-") and len(sender) > len("strategy-"):
        return sender[len("strategy-"):]
    return "manual"


@dataclass(frozen=True)
class SubmitArgs:
    client_id: str
    contract: str
    side: int
    size: int
    order_type: str
    limit_price: float | None
    stop_price: float | None
    trail_ticks: int | None
    sl_ticks: int | None
    tp_ticks: int | None


def _num(args: dict[str, Any], key: str) -> float | None:
    v = args.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Invalid(f"{key} must be a number, got {v!r}")
    if v != v or v in (float("inf"), float("-inf")) or v <= 0:
        raise Invalid(f"{key} must be a positive price, got {v!r}")
    return float(v)


def _ticks(args: dict[str, Any], key: str, minimum: int = 1) -> int | None:
    v = args.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise Invalid(f"{key} must be a whole number of ticks, got {v!r}")
    if v < minimum or v > MAX_TICKS:
        raise Invalid(f"{key} must be between {minimum} and {MAX_TICKS} ticks, got {v}")
    return v


def parse_submit(args: dict[str, Any], owner: str, *, max_client_id: int = 50,
                 min_bracket_ticks: int = 4) -> SubmitArgs:
    """Check a submit's fields (docs/wire-format.md, `submit`); raise Invalid with the reason."""
    if not isinstance(args, dict):
        raise Invalid("args must be a map")
    cid = args.get("client_id")
    if not isinstance(cid, str) or not cid:
        raise Invalid("client_id is required (a string)")
    if len(cid) > max_client_id or not _CLIENT_ID_RE.match(cid):
        raise Invalid(f"client_id {cid!r}: at most {max_client_id} characters of "
                      "A-Z a-z 0-9 _ . : -")
    if not cid.startswith(f"{owner}-"):
        raise Invalid(f"client_id {cid!r} must start with {owner + '-'!r} (the sender's owner)")
    if cid.endswith(("-SL", "-TP", "-E")):
        raise Invalid(f"client_id {cid!r}: the endings -SL, -TP and -E are the gateway's")
    contract = args.get("contract")
    if not isinstance(contract, str) or not contract.strip():
        raise Invalid("contract is required (a symbol like ES or an id like CON.F.US.EP.Z26)")
    side_text = args.get("side")
    if side_text not in ("buy", "sell"):
        raise Invalid(f"side must be 'buy' or 'sell', got {side_text!r}")
    size = args.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise Invalid(f"size must be a whole number > 0, got {size!r}")
    otype = args.get("type", "market")
    if otype not in ORDER_TYPES:
        raise Invalid(f"type must be one of {', '.join(ORDER_TYPES)}, got {otype!r}")
    limit, stop = _num(args, "limit_price"), _num(args, "stop_price")
    trail = _ticks(args, "trail_ticks")
    if otype == "limit" and limit is None:
        raise Invalid("a limit order needs limit_price")
    if otype == "stop" and stop is None:
        raise Invalid("a stop order needs stop_price")
    if otype == "trailing_stop" and trail is None:
        raise Invalid("a trailing stop needs trail_ticks")
    if otype != "limit" and limit is not None:
        raise Invalid(f"limit_price does not apply to a {otype} order")
    if otype != "stop" and stop is not None:
        raise Invalid(f"stop_price does not apply to a {otype} order")
    if otype != "trailing_stop" and trail is not None:
        raise Invalid(f"trail_ticks does not apply to a {otype} order")
    sl = _ticks(args, "sl_ticks", min_bracket_ticks)
    tp = _ticks(args, "tp_ticks", min_bracket_ticks)
    return SubmitArgs(cid, contract.strip(), BUY if side_text == "buy" else SELL, size, otype,
                      limit, stop, trail, sl, tp)


def parse_modify(args: dict[str, Any], size_now: int, tick_size: float
                 ) -> tuple[int, dict[str, float]]:
    """Check a modify's fields (docs/wire-format.md, `modify`): the size after it (the order's
    own when not given) and the prices given, on the contract's tick grid; raise Invalid."""
    size = args.get("size", size_now)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise Invalid(f"size must be a whole number > 0, got {size!r}")
    prices = {}
    for key in ("limit_price", "stop_price"):
        v = args.get(key)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise Invalid(f"{key} must be a positive number")
            if tick_size and abs(v / tick_size - round(v / tick_size)) > 1e-6:
                raise Invalid(f"{key} {v} is not on the tick grid ({tick_size})")
            prices[key] = float(v)
    return size, prices


def on_tick(price: float, tick: float) -> bool:
    steps = price / tick
    return abs(steps - round(steps)) < 1e-6


def build_intent(req: SubmitArgs, owner: str, contract_id: str, symbol: str, tick_size: float,
                 tick_value: float, net_qty: int, now_ms: int) -> Intent:
    """The gate's Intent for a checked request on its resolved contract (prices on the grid)."""
    if not tick_size or tick_size <= 0:
        raise Invalid(f"{contract_id}: the venue gives no tick size")
    for name, px in (("limit_price", req.limit_price), ("stop_price", req.stop_price)):
        if px is not None and not on_tick(px, tick_size):
            raise Invalid(f"{name} {px} is not on the tick grid of {symbol} ({tick_size})")
    signed = req.size if req.side == BUY else -req.size
    reduces = net_qty != 0 and (net_qty > 0) != (signed > 0) and req.size <= abs(net_qty) \
        and req.sl_ticks is None and req.tp_ticks is None
    return Intent(client_id=req.client_id, owner=owner, contract=contract_id, symbol=symbol,
                  tick_size=tick_size, tick_value=tick_value, side=req.side, size=req.size,
                  order_type=req.order_type, limit_price=req.limit_price,
                  stop_price=req.stop_price, trail_ticks=req.trail_ticks, sl_ticks=req.sl_ticks,
                  tp_ticks=req.tp_ticks, reduces=reduces, ts=now_ms)


def venue_brackets(side: int, sl_ticks: int | None, tp_ticks: int | None
                   ) -> tuple[dict[str, int] | None, dict[str, int] | None]:
    """Unsigned distances -> the venue's signed brackets: a long's stop-loss is below the fill
    (negative ticks) and its take-profit above (positive); a short's the reverse. SL type Stop,
    TP type Limit (projectx-api.md §3)."""
    sign = 1 if side == BUY else -1
    sl = None if sl_ticks is None else {"ticks": -sign * sl_ticks, "type": SL_TYPE}
    tp = None if tp_ticks is None else {"ticks": sign * tp_ticks, "type": TP_TYPE}
    return sl, tp


def leg_prices(side: int, fill_price: float, tick: float, sl_ticks: int | None,
               tp_ticks: int | None) -> tuple[float | None, float | None]:
    """Absolute stop-loss / take-profit prices for an entry of `side` filled at `fill_price`
    (the gateway's own OCO, when the venue refuses brackets)."""
    sign = 1 if side == BUY else -1
    sl = None if sl_ticks is None else round(fill_price - sign * sl_ticks * tick, 10)
    tp = None if tp_ticks is None else round(fill_price + sign * tp_ticks * tick, 10)
    return sl, tp
