"""The venue's numeric codes as enums equal to the venue's numbers (projectx-api.md §4).

TopstepX sends and accepts these as bare integers ("Enums travel as integers", §2). An
`IntEnum` member *is* that integer (`Side.SELL == 1`, it serializes as 1 in JSON and msgpack),
so a model field typed `int` holds either, and code reads `order.type == OrderType.STOP`
instead of `order.type == 4`. Decode a venue integer with `OrderStatus(n)` only where an unknown
value must fail; a report from the venue keeps its int until then.
"""

from __future__ import annotations

from enum import IntEnum


class Side(IntEnum):
    """OrderSide: the venue calls them Bid (buy) and Ask (sell)."""

    BUY = 0
    SELL = 1

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(IntEnum):
    """OrderType. StopLimit exists in the enum; its placeability is undocumented."""

    UNKNOWN = 0
    LIMIT = 1
    MARKET = 2
    STOP_LIMIT = 3
    STOP = 4
    TRAILING_STOP = 5
    JOIN_BID = 6
    JOIN_ASK = 7


class OrderStatus(IntEnum):
    """OrderStatus. PendingCancellation and Suspended (a bracket child waiting for its entry
    to fill) appear only in the venue's swagger, and `searchOpen` never returns Suspended."""

    NONE = 0
    OPEN = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    REJECTED = 5
    PENDING = 6
    PENDING_CANCELLATION = 7
    SUSPENDED = 8


#: Statuses of an order that may still fill, and of one that never changes again (§4).
WORKING_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.PENDING,
                              OrderStatus.PENDING_CANCELLATION, OrderStatus.SUSPENDED})
TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED,
                               OrderStatus.REJECTED})


class PositionType(IntEnum):
    """PositionType: the direction of a position (its `size` is always positive). The venue
    names 0 Undefined; a position report with type 0 and size 0 is a closed position."""

    FLAT = 0
    LONG = 1
    SHORT = 2


class HubAction(IntEnum):
    """The user hub's `{action, data}` envelope (§4: create, update, remove)."""

    CREATE = 0
    UPDATE = 1
    REMOVE = 2


class DomType(IntEnum):
    """GatewayDepth entry type (market hub)."""

    UNKNOWN = 0
    ASK = 1
    BID = 2
    BEST_ASK = 3
    BEST_BID = 4
    TRADE = 5
    RESET = 6
    LOW = 7
    HIGH = 8
    NEW_BEST_BID = 9
    NEW_BEST_ASK = 10
    FILL = 11


class TradeLogType(IntEnum):
    """GatewayTrade print type: the aggressor's side."""

    BUY = 0
    SELL = 1


class PlaceError(IntEnum):
    """`errorCode` of a refused Order/place (docs/sim-trading.md, "Rejections")."""

    ACCOUNT_NOT_FOUND = 1
    ORDER_REJECTED = 2
    ACCOUNT_VIOLATION = 4
    OUTSIDE_TRADING_HOURS = 5
    CONTRACT_NOT_FOUND = 8
    CONTRACT_NOT_ACTIVE = 9


#: Refusals that no order can pass now (the market shut, the account locked): a close refused
#: so must leave the position's stop and target working, never cancel them.
CLOSE_IMPOSSIBLE = frozenset({PlaceError.ACCOUNT_VIOLATION, PlaceError.OUTSIDE_TRADING_HOURS})

#: Order/cancel's errorCode on an account whose orders the venue will not withdraw ("Live
#: accounts not supported", "Follower accounts cannot cancel orders").
CANCEL_UNSUPPORTED = 6
