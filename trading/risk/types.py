"""The risk gate's types: what it is asked, what it knows, what it answers, and its rule names.

The seam every order passes before the venue is `Gate.check` and `Gate.due`.

The gateway calls `check(intent, view)` once for every submit and modify, after the request is
validated (contract resolved, prices on the tick grid, size > 0) and before the intent is
journaled or sent. It calls `due(view, now_ms)` after every quote, fill, venue position or
account change and on a clock tick (at least once a second), and executes the actions returned
in order. A gate is a pure core: no I/O, no clock of its own (time is `view.now_ms` / `now_ms`),
no mutation of the view; the gateway owns the book and the venue calls.

`RiskGate` (trading/risk/gate.py) is the gate. `AllowAll` allows everything and never acts:
the baseline the risk gate's benchmark measures against (bench/risk.py, the seam's call cost
alone); the gateway always runs the risk gate.

Everything here is plain frozen data so a gate can be unit-tested by building a `BookView` by
hand (ManualClock time, no gateway, no sim).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from trading.marks import QuoteView
from trading.venue_codes import PositionType, Side

# The venue's codes (trading/venue_codes.py) under the short names the gate's callers use.
BUY, SELL = Side.BUY, Side.SELL
FLAT, LONG, SHORT = PositionType.FLAT, PositionType.LONG, PositionType.SHORT

#: Order types as the gateway's commands name them (docs/wire-format.md, `submit`).
ORDER_TYPES = ("market", "limit", "stop", "trailing_stop", "join_bid", "join_ask")

#: Rule names: what a rejection or a risk event carries in `rule`, so a trader (and a test) can
#: tell which limit spoke (numbers as in topstep-rules.md).
RULE_MLL = "mll"                        # 1: maximum loss limit (floor + buffer)
RULE_MAX_POSITION = "max_position"      # 2: maximum position size
RULE_SCALING = "scaling"                # 3: XFA scaling plan tier of the day
RULE_FLAT = "flat_by"                   # 4: entry cut-off / flatten window / flat-by
RULE_DAILY_LOSS = "daily_loss"          # 5: daily loss limit
RULE_HOURS = "hours"                    # 6: outside the session
RULE_CONTRACT = "contract"              # 6: not the front month / unknown
RULE_HEDGING = "hedging"                # 7: opposite positions in one family
RULE_RATE = "order_rate"                # 8: orders per minute
RULE_DAILY_CONTRACTS = "daily_contracts"   # 8: contracts a day
RULE_HALT = "halt"                      # `chillly halt`
RULE_VENUE = "venue_lock"               # canTrade false
RULE_STRATEGY = "strategy_limit"        # a strategy's own limits (strategies.toml)
RULE_BLIND = "blind"                    # a held contract has no fresh price: equity unknown


#: Trading states (ARCHITECTURE.md §5).
ACTIVE, REDUCING, HALTED = "ACTIVE", "REDUCING", "HALTED"
TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]


# --------------------------------------------------------------------------- what is asked


@dataclass(frozen=True)
class Intent:
    """One validated order request, as the gate sees it before anything reaches the venue.

    `kind` is "submit" for a new order and "modify" for a change to a working one (then
    `order_id` is the venue id and size/prices are the order's values AFTER the change).
    Prices are absolute and already on the tick grid; `trail_ticks` is the trailing distance in
    ticks; `sl_ticks`/`tp_ticks` are the UNSIGNED bracket distances in ticks (the gateway signs
    them for the venue). `reduces` is true when the order can only bring the account's net
    position in `contract` towards flat (opposite side, size <= the open size, counting the
    other working reducing orders); a gate in REDUCING state allows exactly those.
    `protective` marks the gateway's own stop-loss / take-profit legs (managed OCO): a gate
    should never refuse them, they reduce risk by construction.
    """

    client_id: str
    owner: str               # strategy name, "manual", "external" (never for new orders)
    contract: str            # venue contract id, e.g. "CON.F.US.EP.Z26"
    symbol: str              # our symbol ("ES", "MNQ")
    tick_size: float
    tick_value: float        # dollars per tick per contract
    side: int                # BUY / SELL
    size: int                # contracts, > 0
    order_type: str          # one of ORDER_TYPES
    limit_price: float | None = None
    stop_price: float | None = None
    trail_ticks: int | None = None
    sl_ticks: int | None = None
    tp_ticks: int | None = None
    reduces: bool = False
    protective: bool = False
    kind: Literal["submit", "modify"] = "submit"
    order_id: int | None = None
    ts: int = 0              # when the gateway received it, epoch ms (market clock)

    @property
    def signed_size(self) -> int:
        """+size for a buy, -size for a sell."""
        return self.size if self.side == BUY else -self.size


@dataclass(frozen=True)
class Verdict:
    """A gate's answer to one intent.

    - `allow`: send it.
    - `reject`: refuse it; `rule` names the rule (e.g. "max_contracts", "daily_loss") and
      `reason` is the sentence the trader sees.
    - `reduce_only`: send it only if `intent.reduces`; otherwise the gateway rejects it with
      this verdict's `rule` and `reason`.
    """

    decision: Literal["allow", "reject", "reduce_only"]
    rule: str | None = None
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def permits(self, intent: Intent) -> bool:
        """Whether the gateway may send `intent` under this verdict."""
        return self.decision == "allow" or (self.decision == "reduce_only" and intent.reduces)


ALLOW = Verdict("allow")


def reject(rule: str, reason: str) -> Verdict:
    return Verdict("reject", rule, reason)


def reduce_only(rule: str, reason: str) -> Verdict:
    return Verdict("reduce_only", rule, reason)


# --------------------------------------------------------------------------- what is known


@dataclass(frozen=True)
class PositionView:
    """Net position of one contract, of the account (owner "_account") or of one owner.

    `side` is FLAT/LONG/SHORT and `size` is always >= 0 (the venue's convention). P&L in
    dollars: `realized_pnl` for the trading day with fees deducted, `open_pnl` marked at the
    bid for longs and the ask for shorts (0.0 when there is no quote yet).
    """

    contract: str
    owner: str
    side: int
    size: int
    avg_price: float | None
    realized_pnl: float = 0.0
    open_pnl: float = 0.0
    symbol: str = ""
    tick_size: float = 0.0
    tick_value: float = 0.0

    @property
    def signed_size(self) -> int:
        return self.size if self.side == LONG else -self.size if self.side == SHORT else 0


@dataclass(frozen=True)
class WorkingOrder:
    """An order the venue holds that may still fill (statuses Open, Pending, Suspended ...).

    `remaining` = size - fill volume. `parent_id` is set on bracket children (the venue's) and
    on the gateway's own protective legs; `protective` is true for both kinds.
    """

    order_id: int
    client_id: str | None
    owner: str
    contract: str
    side: int
    size: int
    remaining: int
    order_type: str
    status: int
    limit_price: float | None = None
    stop_price: float | None = None
    parent_id: int | None = None
    protective: bool = False


@dataclass(frozen=True)
class BookView:
    """The gateway's read-only picture of the account at `now_ms`.

    `balance` is the venue's (it moves with realized P&L and fees); `equity` = balance +
    open P&L. `positions` holds the account's net positions (owner "_account") and every
    owner's share (attributed from the fills of the owner's orders), `orders` every working
    order, `quotes` the last quote of every held contract. `trading_state` is the state the
    gateway is in (changed only by `SetTradingState` actions and the halt/resume commands).
    """

    account_id: int
    account_name: str
    now_ms: int
    balance: float
    realized_pnl: float
    open_pnl: float
    can_trade: bool = True
    trading_state: str = ACTIVE
    positions: tuple[PositionView, ...] = ()
    orders: tuple[WorkingOrder, ...] = ()
    quotes: dict[str, QuoteView] = field(default_factory=dict)

    @property
    def equity(self) -> float:
        return self.balance + self.open_pnl

    def net_positions(self) -> list[PositionView]:
        """The account's positions (owner "_account"), flat ones left out."""
        return [p for p in self.positions if p.owner == "_account" and p.size > 0]

    def position(self, contract: str, owner: str = "_account") -> PositionView | None:
        for p in self.positions:
            if p.contract == contract and p.owner == owner:
                return p
        return None

    def working(self, contract: str | None = None, owner: str | None = None
                ) -> list[WorkingOrder]:
        return [o for o in self.orders
                if (contract is None or o.contract == contract)
                and (owner is None or o.owner == owner)]


# --------------------------------------------------------------------------- what to do


@dataclass(frozen=True)
class CancelEntries:
    """Cancel working orders that could open or add to a position (protective legs stay).
    `contract`/`owner` None = every contract / every owner."""

    reason: str
    rule: str | None = None
    contract: str | None = None
    owner: str | None = None


@dataclass(frozen=True)
class Flatten:
    """Cancel every working order (legs included) and close the position(s) at market.
    `contract` None = every contract. `owner` set: only that owner's orders and its share of
    the position (a strategy halted alone by its own limits); None = the account's."""

    reason: str
    rule: str | None = None
    contract: str | None = None
    owner: str | None = None


@dataclass(frozen=True)
class CancelOrders:
    """Cancel these working orders by venue id, legs included: a bracket leg left working after
    its position was closed by another order would open a new position if it filled."""

    order_ids: tuple[int, ...]
    reason: str
    rule: str | None = None


@dataclass(frozen=True)
class SetTradingState:
    """Move the account to ACTIVE, REDUCING or HALTED (published on `risk.<account>.`)."""

    state: TradingState
    reason: str
    rule: str | None = None


Action = CancelEntries | CancelOrders | Flatten | SetTradingState


class Gate(Protocol):
    """What the gateway needs from a risk gate. Both calls are pure and must be fast (they run
    on the gateway's event loop, `due` on every quote)."""

    def check(self, intent: Intent, view: BookView) -> Verdict:
        """Decide one intent against the current book."""
        ...

    def due(self, view: BookView, now_ms: int) -> list[Action]:
        """What must happen now (e.g. flat-by time reached, loss limit crossed); [] if nothing.
        Called repeatedly: a gate must not return the same action again once the view shows it
        was carried out (e.g. return SetTradingState only when the state differs)."""
        ...


class AllowAll:
    """The gate that allows everything and never acts: the order path without risk rules."""

    def check(self, intent: Intent, view: BookView) -> Verdict:
        return ALLOW

    def due(self, view: BookView, now_ms: int) -> list[Action]:
        return []
