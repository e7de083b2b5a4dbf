"""The trading engine's wire shapes: the venue's enums and its Order, Position and Trade models.

Each model renders in two forms (projectx-api.md §3, §6): the REST form keeps explicit nulls and
stamps times with microseconds and `+00:00`; the user hub form drops nulls and stamps times with
`Z`. Everything here is data: no clock, no I/O, no decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from chillly.clock import ms_to_iso
from sim.market.contracts import SimContract
from trading.venue_codes import HubAction, OrderStatus, OrderType, PositionType, Side

# The venue's codes (projectx-api.md §4) are the trading core's enums (trading/venue_codes.py),
# under the short names the engine reads.
LIMIT, MARKET, STOP_LIMIT, STOP = (OrderType.LIMIT, OrderType.MARKET, OrderType.STOP_LIMIT,
                                   OrderType.STOP)
TRAILING_STOP, JOIN_BID, JOIN_ASK = OrderType.TRAILING_STOP, OrderType.JOIN_BID, OrderType.JOIN_ASK
TYPE_NAMES: dict[int, str] = {
    OrderType.UNKNOWN: "Unknown", LIMIT: "Limit", MARKET: "Market", STOP_LIMIT: "StopLimit",
    STOP: "Stop", TRAILING_STOP: "TrailingStop", JOIN_BID: "JoinBid", JOIN_ASK: "JoinAsk"}
BUY, SELL = Side.BUY, Side.SELL
OPEN, FILLED, CANCELLED, EXPIRED, REJECTED = (OrderStatus.OPEN, OrderStatus.FILLED,
                                              OrderStatus.CANCELLED, OrderStatus.EXPIRED,
                                              OrderStatus.REJECTED)
PENDING, PENDING_CANCEL, SUSPENDED = (OrderStatus.PENDING, OrderStatus.PENDING_CANCELLATION,
                                      OrderStatus.SUSPENDED)
WORKING = (OPEN, PENDING, PENDING_CANCEL, SUSPENDED)
FLAT, LONG, SHORT = PositionType.FLAT, PositionType.LONG, PositionType.SHORT
# Hub envelope actions (§4: 0 create, 1 update, 2 remove; positions open with 1 live)
ACT_CREATE, ACT_UPDATE, ACT_REMOVE = HubAction.CREATE, HubAction.UPDATE, HubAction.REMOVE

EV_ACCOUNT = "GatewayUserAccount"
EV_ORDER = "GatewayUserOrder"
EV_POSITION = "GatewayUserPosition"
EV_TRADE = "GatewayUserTrade"

#: One user-hub event waiting to leave: (event name, account id, {"action", "data"}).
Event = tuple[str, int, dict[str, Any]]


class TradingError(Exception):
    """A business failure: the endpoint's own errorCode and errorMessage (HTTP 200)."""

    def __init__(self, code: int, message: str | None) -> None:
        super().__init__(message or f"errorCode {code}")
        self.code = code
        self.message = message


def rest_iso(ms: int) -> str:
    """REST timestamp form: microseconds and +00:00 ("2025-07-18T21:00:01.268000+00:00")."""
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}000+00:00"


def _ts(ms: int | None, hub: bool) -> str | None:
    if ms is None:
        return None
    return ms_to_iso(ms) if hub else rest_iso(ms)


def _drop_nones(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class Bracket:
    """A bracket as sent on Order/place: signed ticks from the entry's fill price."""

    ticks: int
    type: int


@dataclass(frozen=True)
class PlaceRequest:
    account_id: int
    contract_id: str
    type: int | None
    side: int | None
    size: int | None
    limit_price: float | None = None
    stop_price: float | None = None
    trail_price: float | None = None
    custom_tag: str | None = None
    stop_loss: Bracket | None = None
    take_profit: Bracket | None = None


@dataclass
class Order:
    id: int
    account_id: int
    contract_id: str
    symbol_id: str | None
    created_ms: int
    updated_ms: int
    status: int
    type: int
    side: int
    size: int
    limit_price: float | None = None
    stop_price: float | None = None
    fill_volume: int = 0
    filled_price: float | None = None
    custom_tag: str | None = None
    trail_distance: int | None = None
    trail_price: float | None = None
    parent_order_id: int | None = None
    linked_order_id: int | None = None
    # engine-only state
    contract: SimContract | None = None
    leg: str | None = None            # "SL" / "TP" on bracket children
    bracket_ticks: int | None = None  # signed offset of a bracket child
    trail_ticks: int | None = None    # distance of a trailing stop
    anchor: float | None = None       # best print seen by a trailing stop
    triggered: bool = False           # a stop-limit whose stop has been hit

    def to_api(self, hub: bool = False) -> dict[str, Any]:
        d = {"id": self.id, "accountId": self.account_id, "contractId": self.contract_id,
             "symbolId": self.symbol_id, "creationTimestamp": _ts(self.created_ms, hub),
             "updateTimestamp": _ts(self.updated_ms, hub), "status": self.status,
             "type": self.type, "side": self.side, "size": self.size,
             "limitPrice": self.limit_price, "stopPrice": self.stop_price,
             "fillVolume": self.fill_volume, "filledPrice": self.filled_price,
             "customTag": self.custom_tag, "trailDistance": self.trail_distance,
             "trailPrice": self.trail_price, "parentOrderId": self.parent_order_id,
             "linkedOrderId": self.linked_order_id}
        return _drop_nones(d) if hub else d


@dataclass
class Position:
    id: int
    account_id: int
    contract: SimContract
    created_ms: int
    type: int
    size: int
    average_price: float

    def to_api(self, hub: bool = False) -> dict[str, Any]:
        return {"id": self.id, "accountId": self.account_id, "contractId": self.contract.id,
                "contractDisplayName": self.contract.name,
                "creationTimestamp": _ts(self.created_ms, hub), "type": self.type,
                "size": self.size, "averagePrice": self.average_price}


@dataclass
class HalfTrade:
    id: int
    account_id: int
    contract_id: str
    created_ms: int
    price: float
    profit_and_loss: float | None
    fees: float
    side: int
    size: int
    order_id: int
    voided: bool = False
    commissions: float | None = None

    def to_api(self, hub: bool = False) -> dict[str, Any]:
        d = {"id": self.id, "accountId": self.account_id, "contractId": self.contract_id,
             "creationTimestamp": _ts(self.created_ms, hub), "price": self.price,
             "profitAndLoss": self.profit_and_loss, "fees": self.fees,
             "commissions": self.commissions, "side": self.side, "size": self.size,
             "voided": self.voided, "orderId": self.order_id}
        return _drop_nones(d) if hub else d
