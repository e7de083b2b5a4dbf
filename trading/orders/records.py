"""The typed records of the order path: what was asked (an intent), what the venue holds (an
order), what it filled (a fill). Plain mutable dataclasses: the blotter (trading/blotter/)
owns them and changes them as venue reports arrive; the gateway's journal maps them to and
from its rows (gateway/journal.py), so no other code ever sees a row keyed by strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from trading.venue_codes import OrderStatus, OrderType, Side

# OrderRecord.state: the gateway's states of a venue order (trading/orders/machine.py)
ACCEPTED, WORKING, PARTIAL = "accepted", "working", "partially_filled"
FILLED, CANCELLED, REJECTED, EXPIRED = "filled", "cancelled", "rejected", "expired"
STATES = (ACCEPTED, WORKING, PARTIAL, FILLED, CANCELLED, REJECTED, EXPIRED)
TERMINAL = frozenset({FILLED, CANCELLED, REJECTED, EXPIRED})

# IntentRecord.status: the outcome of the one place call (REJECTED is shared with the states)
SENDING, PLACED, NOT_PLACED = "sending", "placed", "not_placed"

#: The owner of an order the gateway did not place (adopted from the venue).
EXTERNAL = "external"


@dataclass
class IntentRecord:
    """An order the gateway asked for, committed to the journal before the venue sees it.

    `client_id` is the sender's name for it; `custom_tag` what the venue carries (the client
    id, or `<client_id>-E` for an entry re-sent without venue brackets). `order_type` is the
    command's name ("market", "limit", ...). `sl_ticks`/`tp_ticks` are unsigned distances;
    `parent_id` is set on the gateway's own protective legs (the entry's venue id). `status`
    stays SENDING until the venue's answer is clear (PLACED with `order_id`, REJECTED with
    `code` and `message`, or NOT_PLACED when a search by tag found nothing)."""

    client_id: str
    owner: str
    account: int
    contract: str
    side: int
    size: int
    order_type: str
    custom_tag: str = ""
    rid: str | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    trail_ticks: int | None = None
    sl_ticks: int | None = None
    tp_ticks: int | None = None
    parent_id: int | None = None
    managed: bool = False
    created_ms: int = 0
    status: str = SENDING
    order_id: int | None = None
    code: int | None = None
    message: str | None = None
    resolved_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.custom_tag:
            self.custom_tag = self.client_id

    def resolve(self, status: str, order_id: int | None, code: int | None,
                message: str | None, at_ms: int) -> None:
        """Record the venue's answer (an order id already known is kept)."""
        self.status, self.code, self.message, self.resolved_ms = status, code, message, at_ms
        self.order_id = order_id or self.order_id


@dataclass
class OrderRecord:
    """A venue order as the gateway knows it: the state machine's fields (trading/orders/
    machine.py decides them) and who it belongs to.

    `order_type` and `status` are the venue's codes, `state` the gateway's. `reported` is
    false for an order the gateway placed whose first venue report has not arrived yet (the
    state machine takes any first report as it is). `managed` marks an entry whose legs the
    gateway places itself (gateway/brackets.py). `reports` counts the venue reports applied,
    so a caller can tell whether the venue has spoken since it last looked."""

    order_id: int
    size: int
    state: str = ACCEPTED
    status: int = OrderStatus.PENDING
    fill_volume: int = 0
    filled_price: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    account: int = 0
    client_id: str | None = None
    owner: str = EXTERNAL
    contract: str = ""
    side: int = Side.BUY
    order_type: int = OrderType.UNKNOWN
    custom_tag: str | None = None
    parent_id: int | None = None
    created_ms: int | None = None
    updated_ms: int | None = None
    managed: bool = False
    reported: bool = True
    reports: int = 0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def remaining(self) -> int:
        return 0 if self.terminal else max(0, self.size - self.fill_volume)

    @property
    def protective(self) -> bool:
        """A bracket leg (the venue's child or the gateway's own)."""
        return self.parent_id is not None


@dataclass(frozen=True)
class FillRecord:
    """One venue half-trade of the account, attributed to the owner of its order. `fees` are
    the venue's fees plus commissions; `pnl` the venue's profitAndLoss (None on an opening
    trade); `vt` the venue's time, `at_ms` when the gateway took it."""

    trade_id: int
    account: int
    order_id: int
    owner: str
    client_id: str | None
    contract: str
    side: int
    size: int
    price: float
    fees: float
    pnl: float | None
    vt: int | None
    at_ms: int
    voided: bool = False
