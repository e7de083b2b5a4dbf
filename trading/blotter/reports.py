"""What goes into the blotter and what comes out of it: the venue's reports (from the user hub or
a REST read, already decoded into plain records with the venue's integers) and the typed
changes the gateway journals, publishes and acts on. Records only, so the gateway's decoders
and the blotter agree on one shape without importing each other's logic.
"""

from __future__ import annotations

from dataclasses import dataclass

from trading.orders.records import FillRecord, IntentRecord, OrderRecord


# --------------------------------------------------------------------------- what goes in


@dataclass(frozen=True)
class OrderReport:
    """The venue's report of one order (venue codes as the venue's integers; None: absent)."""

    order_id: int
    account_id: int | None = None
    contract: str | None = None
    side: int | None = None
    size: int | None = None
    order_type: int | None = None
    status: int | None = None
    fill_volume: int | None = None
    filled_price: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    custom_tag: str | None = None
    parent_id: int | None = None
    created_ms: int | None = None
    updated_ms: int | None = None


@dataclass(frozen=True)
class TradeReport:
    """One venue half-trade. `fees` = the venue's fees plus commissions."""

    trade_id: int
    order_id: int | None
    account_id: int | None = None
    contract: str | None = None
    side: int | None = None
    size: int | None = None
    price: float | None = None
    fees: float = 0.0
    pnl: float | None = None
    created_ms: int | None = None
    voided: bool = False


@dataclass(frozen=True)
class PositionReport:
    """The venue's net position of one contract (`side` PositionType; flat: 0 and size 0)."""

    contract: str | None
    side: int | None
    size: int | None
    avg_price: float | None = None
    account_id: int | None = None
    created_ms: int | None = None


@dataclass(frozen=True)
class AccountReport:
    account_id: int
    balance: float | None = None
    can_trade: bool | None = None
    simulated: bool | None = None


# --------------------------------------------------------------------------- what comes out


@dataclass(frozen=True)
class OrderChange:
    """The outcome of one order report.

    `changed`: something the gateway journals and publishes changed (or the order is new to
    it). `refused`: why the state machine refused the report ("" if applied). `adopted`: an
    order the gateway did not place, seen for the first time (owner "external"). `late`: an
    intent recorded as not placed that the venue holds after all (the gateway records it
    placed and reports the difference). `was`: the order's state before the report."""

    order: OrderRecord
    changed: bool
    refused: str = ""
    adopted: bool = False
    late: IntentRecord | None = None
    was: str | None = None
    #: fills taken before this order was known (booked to "external"), now its owner's
    reattributed: tuple[FillRecord, ...] = ()


@dataclass(frozen=True)
class TradeTaken:
    """A half-trade taken: the fill as the venue reported it (its `pnl` is against the
    account's average) and the owner's P&L of it against the owner's own average (fees apart;
    None when it opens or adds, or is not of today): what the owner is told."""

    fill: FillRecord
    owner_pnl: float | None
