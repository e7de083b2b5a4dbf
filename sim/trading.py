"""The sim's trading engine: accounts, orders, brackets, positions, fills, P&L. Pure core.

No I/O: time comes from the injected clock, prices from the injected market view, contracts
from the catalogue, and every user-hub event leaves through the injected `emit` callback
(`emit(event_name, account_id, {"action": N, "data": {...}})`, nulls already removed). The REST
layer (`sim/trading_api.py`) parses bodies and calls the methods here; the sim server wires
both (docs/sim-trading.md and /work/briefs/sim-interface.md describe the seam).

Behaviour follows projectx-api.md (§3 models and rejection messages, §6 event sequences, §8
gotchas). Where the live venue's behaviour is unknown (§11) the choice made here is written in
docs/sim-trading.md. In short:

- every order fills whole (no partial fills, no queue position): market orders at the best
  opposite quote (the last print when there is no quote); resting limits at their own price
  when a print trades at or through it, or when the opposite quote touches it; stops and
  trailing stops trigger on prints and fill at the triggering print;
- brackets are signed tick offsets from the entry's fill price; their children exist from the
  start as Suspended (status 8) orders and become Open with absolute prices when the entry
  fills; when one leg fills the other is cancelled (OCO);
- one aggregated position per account and contract; a fill that crosses zero closes the old
  position (a P&L half-trade, position event action 2) and opens a new one;
- events of one fill leave in the order the live venue showed: order updates first (the fill,
  bracket activations, the OCO cancel), then trades, then the position, then the account.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from chillly.clock import Clock, ms_to_iso
from sim.contracts import SimContract
from sim.fees import fees_for

log = logging.getLogger("sim.trading")

# OrderType (projectx-api.md §4)
LIMIT, MARKET, STOP_LIMIT, STOP, TRAILING_STOP, JOIN_BID, JOIN_ASK = 1, 2, 3, 4, 5, 6, 7
TYPE_NAMES = {0: "Unknown", 1: "Limit", 2: "Market", 3: "StopLimit", 4: "Stop",
              5: "TrailingStop", 6: "JoinBid", 7: "JoinAsk"}
LIMIT_LIKE = (LIMIT, JOIN_BID, JOIN_ASK)
# OrderSide
BUY, SELL = 0, 1
# OrderStatus
OPEN, FILLED, CANCELLED, EXPIRED, REJECTED, PENDING, PENDING_CANCEL, SUSPENDED = range(1, 9)
WORKING = (OPEN, PENDING, PENDING_CANCEL, SUSPENDED)
# PositionType
FLAT, LONG, SHORT = 0, 1, 2
# Hub envelope actions (§4: 0 create, 1 update, 2 remove; positions open with 1 live)
ACT_CREATE, ACT_UPDATE, ACT_REMOVE = 0, 1, 2

BRACKET_MODES = ("auto_oco", "position")
MIN_BRACKET_TICKS = 4
MAX_TICKS = 1000

EV_ACCOUNT = "GatewayUserAccount"
EV_ORDER = "GatewayUserOrder"
EV_POSITION = "GatewayUserPosition"
EV_TRADE = "GatewayUserTrade"

Emit = Callable[[str, int, dict[str, Any]], None]


class CatalogueView(Protocol):
    def get(self, contract_id: str) -> SimContract | None: ...


class MarketView(Protocol):
    def last_price(self, contract_id: str) -> float | None: ...
    def best_bid(self, contract_id: str) -> float | None: ...
    def best_ask(self, contract_id: str) -> float | None: ...
    def is_open(self, now_ms: int) -> bool: ...


class TradingError(Exception):
    """A business failure: the endpoint's own errorCode and errorMessage (HTTP 200)."""

    def __init__(self, code: int, message: str | None) -> None:
        super().__init__(message or f"errorCode {code}")
        self.code = code
        self.message = message


class BadRequest(Exception):
    """HTTP 400 with an RFC 7807 ProblemDetails body (the server sends `problem` as JSON)."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail") or problem.get("title"))
        self.problem = problem


# ---------------------------------------------------------------------------------------------
# Accounts

@dataclass(frozen=True)
class AccountConfig:
    """One sim account. `bracket_mode` None follows the engine's default mode."""

    id: int
    name: str
    balance: float = 50_000.0
    can_trade: bool = True
    simulated: bool = True
    is_visible: bool = True
    active: bool = True
    bracket_mode: str | None = None


DEFAULT_ACCOUNTS = (AccountConfig(1001, "PRAC-V2-000001-00001001", 50_000.0),)


def parse_accounts(text: str) -> list[AccountConfig]:
    """Accounts from `id:name[:balance[:flags]]` items separated by commas or semicolons.

    Flags (any order, joined with '+'): `notrade` (canTrade false), `live` (simulated false),
    `hidden` (isVisible false), `inactive`, `position` / `auto_oco` (bracket mode).
    Example: `1001:PRAC-V2-1-1001:50000,1002:50KTC-V2-1-1002:50000:position`.
    """
    out: list[AccountConfig] = []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) < 2 or len(parts) > 4:
            raise ValueError(f"account {item!r}: expected id:name[:balance[:flags]]")
        try:
            acc_id = int(parts[0])
            balance = float(parts[2]) if len(parts) > 2 and parts[2] else 50_000.0
        except ValueError:
            raise ValueError(f"account {item!r}: id must be an integer, balance a number") from None
        flags = {f for f in (parts[3].split("+") if len(parts) > 3 else []) if f}
        unknown = flags - {"notrade", "live", "hidden", "inactive", "position", "auto_oco"}
        if unknown:
            raise ValueError(f"account {item!r}: unknown flags {sorted(unknown)}")
        mode = "position" if "position" in flags else "auto_oco" if "auto_oco" in flags else None
        out.append(AccountConfig(acc_id, parts[1], balance, can_trade="notrade" not in flags,
                                 simulated="live" not in flags, is_visible="hidden" not in flags,
                                 active="inactive" not in flags, bracket_mode=mode))
    ids = [a.id for a in out]
    if len(set(ids)) != len(ids):
        raise ValueError("account ids must be unique")
    if not out:
        raise ValueError("no accounts given")
    return out


@dataclass
class Account:
    id: int
    name: str
    balance: float
    can_trade: bool
    is_visible: bool
    simulated: bool
    active: bool
    bracket_mode: str

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "balance": round(self.balance, 2),
                "canTrade": self.can_trade, "isVisible": self.is_visible,
                "simulated": self.simulated}


# ---------------------------------------------------------------------------------------------
# Orders, positions, trades

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


def round_to_tick(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 10)


def is_tick_aligned(price: float, tick: float) -> bool:
    steps = price / tick
    return abs(steps - round(steps)) < 1e-6


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


# ---------------------------------------------------------------------------------------------
# The engine

class TradingEngine:
    """All trading state of the sim. Single-threaded: call it from the server's event loop."""

    def __init__(self, clock: Clock, catalogue: CatalogueView, market: MarketView, emit: Emit,
                 accounts: list[AccountConfig] | tuple[AccountConfig, ...] | None = None,
                 bracket_mode: str = "auto_oco") -> None:
        if bracket_mode not in BRACKET_MODES:
            raise ValueError(f"bracket_mode must be one of {BRACKET_MODES}, not {bracket_mode!r}")
        self.clock = clock
        self.catalogue = catalogue
        self.market = market
        self._emit = emit
        self._accounts: dict[int, Account] = {}
        for c in accounts or DEFAULT_ACCOUNTS:
            mode = c.bracket_mode or bracket_mode
            if mode not in BRACKET_MODES:
                raise ValueError(f"account {c.id}: bad bracket mode {mode!r}")
            self._accounts[c.id] = Account(c.id, c.name, float(c.balance), c.can_trade,
                                           c.is_visible, c.simulated, c.active, mode)
        # Ids grow from a clock-derived base so a restarted sim does not reuse recent ids
        # (order/trade ids are int64 and stay below 2**53; position ids are int32).
        now = max(0, clock.now_ms())
        self._next_order = now + 1
        self._next_trade = now + 1
        self._next_position = (now // 10) % 2_000_000_000 + 1
        self._orders: dict[int, Order] = {}
        self._by_account: dict[int, list[Order]] = {a: [] for a in self._accounts}
        self._tags: dict[int, set[str]] = {a: set() for a in self._accounts}
        self._children: dict[int, list[int]] = {}
        self._working: dict[str, dict[int, Order]] = {}   # contract -> open orders
        self._positions: dict[tuple[int, str], Position] = {}
        self._trades: dict[int, list[HalfTrade]] = {a: [] for a in self._accounts}
        self._last: dict[str, float] = {}
        self._out: list[tuple[str, int, dict[str, Any]]] = []
        self.counters: dict[str, int] = {"placed": 0, "rejected": 0, "fills": 0,
                                         "cancelled": 0, "modified": 0, "emit_errors": 0}

    # ----- public seam -----------------------------------------------------------------------

    def rest_handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        """Path -> handler(body) -> full response dict, for the server to register."""
        from sim.trading_api import build_handlers
        return build_handlers(self)

    def accounts(self, only_active: bool = False) -> list[dict[str, Any]]:
        """TradingAccount dicts (REST form; hub form is identical: no nulls, no timestamps)."""
        return [a.to_api() for a in self._accounts.values() if a.active or not only_active]

    def account_ids(self) -> list[int]:
        return list(self._accounts)

    def on_trade(self, contract_id: str, price: float, size: int, t_ms: int) -> None:
        """One print of the sim's market: fills resting limits, triggers stops and trails."""
        self._last[contract_id] = price
        working = self._working.get(contract_id)
        if working:
            for order in list(working.values()):   # in the order they went live
                if order.status == OPEN:
                    self._match_print(order, price, t_ms)
        self._flush()

    def on_quote(self, contract_id: str, bid: float | None, ask: float | None, t_ms: int) -> None:
        """A quote change: resting limits fill when the opposite side touches their price."""
        working = self._working.get(contract_id)
        if not working:
            return
        for order in list(working.values()):
            if order.status != OPEN or order.limit_price is None:
                continue
            if order.type not in LIMIT_LIKE and not (order.type == STOP_LIMIT and order.triggered):
                continue
            if order.side == BUY and ask is not None and ask <= order.limit_price:
                self._fill(order, order.limit_price, t_ms)
            elif order.side == SELL and bid is not None and bid >= order.limit_price:
                self._fill(order, order.limit_price, t_ms)
        self._flush()

    # ----- Order/place -----------------------------------------------------------------------

    def place(self, req: PlaceRequest) -> tuple[int, int, str | None]:
        """(orderId, errorCode, errorMessage). A rejected order still gets an id and a record."""
        now = self.clock.now_ms()
        oid = self._new_order_id()
        account = self._accounts.get(req.account_id)
        if account is None:
            self.counters["rejected"] += 1
            return oid, 1, "Account not found."
        contract = self.catalogue.get(req.contract_id) if req.contract_id else None
        try:
            prices = self._validate_place(account, contract, req, now)
        except TradingError as e:
            self._record_rejected(oid, req, contract, now)
            self._flush()
            self.counters["rejected"] += 1
            return oid, e.code, e.message
        assert contract is not None
        self.counters["placed"] += 1
        assert req.type is not None and req.side is not None and req.size is not None
        entry = Order(id=oid, account_id=account.id, contract_id=contract.id,
                      symbol_id=contract.symbol_id, created_ms=now, updated_ms=now,
                      status=PENDING, type=req.type, side=req.side, size=req.size,
                      limit_price=prices.get("limit"), stop_price=prices.get("stop"),
                      custom_tag=req.custom_tag, contract=contract)
        if req.type == TRAILING_STOP:
            entry.trail_ticks = int(prices["trail_ticks"])
            entry.trail_distance = entry.trail_ticks
            entry.trail_price = round_to_tick(entry.trail_ticks * contract.tick_size,
                                              contract.tick_size)
            entry.anchor = prices["anchor"]
        self._store(entry)
        children = self._make_children(entry, req, now)
        for child in children:
            self._store(child)
        sl = next((c for c in children if c.leg == "SL"), None)
        tp = next((c for c in children if c.leg == "TP"), None)
        # Live order of the first three events: SL (8), entry (6), TP (8).
        for o in (sl, entry, tp):
            if o is not None:
                self._emit_order(o)
        self._activate(entry, now)
        self._flush()
        return oid, 0, None

    def _validate_place(self, account: Account, contract: SimContract | None,
                        req: PlaceRequest, now: int) -> dict[str, float]:
        if not account.can_trade or not account.active:
            raise TradingError(4, "Account is not allowed to trade.")
        if contract is None:
            raise TradingError(8, f"Contract {req.contract_id!r} was not found.")
        if not contract.active:
            raise TradingError(9, f"Contract {contract.id} is not the active contract.")
        if not self.market.is_open(now):
            raise TradingError(5, "Outside of trading hours.")
        for name, value in (("type", req.type), ("side", req.side), ("size", req.size)):
            if value is None:
                raise TradingError(2, f"The {name} field is required.")
        assert req.type is not None and req.side is not None and req.size is not None
        if req.type not in TYPE_NAMES or req.type == 0:
            raise TradingError(2, f"Invalid order type ({req.type}).")
        if req.side not in (BUY, SELL):
            raise TradingError(2, f"Invalid order side ({req.side}).")
        if req.size < 1:
            raise TradingError(2, f"Invalid order size ({req.size}).")
        if req.custom_tag is not None:
            self._check_tag(account.id, req)
        self._check_brackets(account, req)
        return self._entry_prices(contract, req)

    def _check_tag(self, account_id: int, req: PlaceRequest) -> None:
        tag = req.custom_tag or ""
        used = self._tags[account_id]
        wanted = [tag]
        if req.stop_loss is not None:
            wanted.append(f"{tag}-SL")
        if req.take_profit is not None:
            wanted.append(f"{tag}-TP")
        for t in wanted:
            if t in used:
                raise TradingError(2, f"Custom tag '{t}' is already in use on this account. "
                                      "Custom tags must be unique across the account.")

    def _check_brackets(self, account: Account, req: PlaceRequest) -> None:
        if req.stop_loss is None and req.take_profit is None:
            return
        if account.bracket_mode != "auto_oco":
            raise TradingError(2, "Brackets cannot be used with Position Brackets. "
                                  "You must enable Auto OCO Brackets.")
        longing = req.side == BUY
        for br, what, want_type, want_negative in (
                (req.stop_loss, "stop loss", STOP, longing),
                (req.take_profit, "take profit", LIMIT, not longing)):
            if br is None:
                continue
            if br.type != want_type:
                raise TradingError(2, f"Invalid {what} type ({TYPE_NAMES.get(br.type, br.type)})")
            if want_negative and br.ticks >= 0:
                raise TradingError(2, f"Invalid {what} ticks ({br.ticks}). Ticks should be less "
                                      f"than zero when {'longing' if longing else 'shorting'}.")
            if not want_negative and br.ticks <= 0:
                raise TradingError(2, f"Invalid {what} ticks ({br.ticks}). Ticks should be "
                                      "greater than zero when "
                                      f"{'longing' if longing else 'shorting'}.")
            if abs(br.ticks) < MIN_BRACKET_TICKS:
                raise TradingError(2, f"Invalid {what} ticks ({br.ticks}). Price should be at "
                                      f"least {MIN_BRACKET_TICKS} ticks away.")
            if abs(br.ticks) > MAX_TICKS:
                raise TradingError(2, f"Invalid {what} ticks ({br.ticks}). Ticks exceed "
                                      f"maximum ({MAX_TICKS}).")

    def _entry_prices(self, contract: SimContract, req: PlaceRequest) -> dict[str, float]:
        tick = contract.tick_size
        last = self._last_price(contract.id)
        t = req.type
        side = SELL if req.side == SELL else BUY   # validated before
        out: dict[str, float] = {}
        if t in (LIMIT, STOP_LIMIT):
            if req.limit_price is None:
                raise TradingError(2, "Limit price not set.")
            if not is_tick_aligned(req.limit_price, tick):
                raise TradingError(2, "Invalid limit price. Price is not aligned to tick size.")
            out["limit"] = round_to_tick(req.limit_price, tick)
        if t in (STOP, STOP_LIMIT):
            if req.stop_price is None:
                raise TradingError(2, "Stop price not set.")
            if not is_tick_aligned(req.stop_price, tick):
                raise TradingError(2, "Invalid stop price. Price is not aligned to tick size.")
            stop = round_to_tick(req.stop_price, tick)
            if last is not None and side == BUY and stop <= last:
                raise TradingError(2, f"Invalid stop price ({stop}). A buy stop must be above "
                                      f"the last price ({last}).")
            if last is not None and side == SELL and stop >= last:
                raise TradingError(2, f"Invalid stop price ({stop}). A sell stop must be below "
                                      f"the last price ({last}).")
            out["stop"] = stop
        if t == TRAILING_STOP:
            if req.trail_price is None:
                raise TradingError(2, "Trail Distance not set.")
            if last is None:
                raise TradingError(2, "Cannot trail without a last price")
            if not is_tick_aligned(req.trail_price, tick):
                raise TradingError(2, "Invalid trail price. Price is not aligned to tick size.")
            ticks = int(abs(last - req.trail_price) / tick + 1e-9)
            if ticks < 1:
                raise TradingError(2, "Trail Distance not set.")
            if ticks > MAX_TICKS:
                raise TradingError(2, f"Trail Distance exceeds maximum ({MAX_TICKS})")
            out["trail_ticks"] = ticks
            out["anchor"] = last
            dist = ticks * tick
            out["stop"] = round_to_tick(last - dist if side == SELL else last + dist, tick)
        if t in (JOIN_BID, JOIN_ASK):
            ref = (self.market.best_bid(contract.id) if t == JOIN_BID
                   else self.market.best_ask(contract.id))
            ref = ref if ref is not None else last
            if ref is None:
                raise TradingError(2, f"Cannot join the {'bid' if t == JOIN_BID else 'ask'} "
                                      "without a price")
            out["limit"] = round_to_tick(ref, tick)
        if t == MARKET and self._market_price(contract, side) is None:
            raise TradingError(2, "Cannot place a market order without a price")
        return out

    def _make_children(self, entry: Order, req: PlaceRequest, now: int) -> list[Order]:
        contract = entry.contract
        assert contract is not None
        out: list[Order] = []
        for br, leg, otype in ((req.stop_loss, "SL", STOP), (req.take_profit, "TP", LIMIT)):
            if br is None:
                continue
            out.append(Order(
                id=self._new_order_id(), account_id=entry.account_id, contract_id=contract.id,
                symbol_id=contract.symbol_id, created_ms=now, updated_ms=now, status=SUSPENDED,
                type=otype, side=SELL if entry.side == BUY else BUY, size=entry.size,
                custom_tag=f"{entry.custom_tag}-{leg}" if entry.custom_tag else None,
                trail_distance=br.ticks,
                trail_price=round_to_tick(br.ticks * contract.tick_size, contract.tick_size),
                parent_order_id=entry.id, contract=contract, leg=leg, bracket_ticks=br.ticks))
        if len(out) == 2:
            sl, tp = out
            sl.linked_order_id, tp.linked_order_id = tp.id, sl.id
        self._children[entry.id] = [c.id for c in out]
        return out

    def _record_rejected(self, oid: int, req: PlaceRequest, contract: SimContract | None,
                         now: int) -> None:
        order = Order(id=oid, account_id=req.account_id, contract_id=req.contract_id or "",
                      symbol_id=contract.symbol_id if contract else None, created_ms=now,
                      updated_ms=now, status=REJECTED, type=req.type or 0, side=req.side or 0,
                      size=req.size or 0, limit_price=req.limit_price, stop_price=req.stop_price,
                      custom_tag=req.custom_tag, contract=contract)
        self._orders[oid] = order
        self._by_account[req.account_id].append(order)
        self._emit_order(order)

    def _activate(self, order: Order, now: int) -> None:
        """Resolve a Pending order: fill it now or leave it working."""
        contract = order.contract
        assert contract is not None
        if order.type == MARKET:
            price = self._market_price(contract, order.side)
            assert price is not None
            self._fill(order, price, now)
            return
        if order.type in LIMIT_LIKE and order.limit_price is not None:
            ref = self._market_price(contract, order.side)
            if ref is not None and self._limit_crossed(order, ref):
                self._fill(order, ref, now)
                return
        self._set_open(order, now)

    # ----- Order/modify, Order/cancel ---------------------------------------------------------

    def modify(self, account_id: int, order_id: int | None, size: int | None = None,
               limit_price: float | None = None, stop_price: float | None = None,
               trail_price: float | None = None) -> None:
        """Change a working order; None leaves a field unchanged. Raises TradingError."""
        order = self._find_order(account_id, order_id, not_found=2)
        now = self.clock.now_ms()
        if order.status == SUSPENDED:
            raise TradingError(3, "A bracket order cannot be modified until its entry fills.")
        if order.status != OPEN:
            raise TradingError(3, f"Order {order_id} is not working.")
        contract = order.contract
        assert contract is not None
        tick = contract.tick_size
        if size is not None and size < 1:
            raise TradingError(3, f"Invalid order size ({size}).")
        changes: dict[str, Any] = {}
        if limit_price is not None:
            if order.type not in LIMIT_LIKE and order.type != STOP_LIMIT:
                raise TradingError(3, f"A {TYPE_NAMES[order.type]} order has no limit price.")
            if not is_tick_aligned(limit_price, tick):
                raise TradingError(3, "Invalid limit price. Price is not aligned to tick size.")
            changes["limit_price"] = round_to_tick(limit_price, tick)
        if stop_price is not None:
            if order.type not in (STOP, STOP_LIMIT):
                raise TradingError(3, f"A {TYPE_NAMES[order.type]} order has no stop price "
                                      "to modify (a trailing stop moves with trailPrice).")
            if not is_tick_aligned(stop_price, tick):
                raise TradingError(3, "Invalid stop price. Price is not aligned to tick size.")
            changes["stop_price"] = round_to_tick(stop_price, tick)
        if trail_price is not None:
            if order.type != TRAILING_STOP:
                raise TradingError(3, f"A {TYPE_NAMES[order.type]} order does not trail.")
            last = self._last_price(contract.id)
            if last is None:
                raise TradingError(3, "Cannot trail without a last price")
            if not is_tick_aligned(trail_price, tick):
                raise TradingError(3, "Invalid trail price. Price is not aligned to tick size.")
            ticks = int(abs(last - trail_price) / tick + 1e-9)
            if ticks < 1:
                raise TradingError(3, "Trail Distance not set.")
            dist = ticks * tick
            changes.update(trail_ticks=ticks, trail_distance=ticks,
                           trail_price=round_to_tick(dist, tick), anchor=last,
                           stop_price=round_to_tick(last - dist if order.side == SELL
                                                    else last + dist, tick))
        if size is not None:
            changes["size"] = size
        for k, v in changes.items():
            setattr(order, k, v)
        order.updated_ms = now
        self.counters["modified"] += 1
        self._emit_order(order)
        self._recheck(order, now)
        self._flush()

    def _recheck(self, order: Order, now: int) -> None:
        """After a modify: a limit moved through the quote fills, a stop moved through fires."""
        contract = order.contract
        assert contract is not None
        if order.type in LIMIT_LIKE or (order.type == STOP_LIMIT and order.triggered):
            ref = self._market_price(contract, order.side)
            if ref is not None and self._limit_crossed(order, ref):
                self._fill(order, ref, now)
            return
        last = self._last_price(contract.id)
        if last is not None and order.stop_price is not None and self._stop_hit(order, last):
            if order.type == STOP_LIMIT:
                order.triggered = True
                self._recheck(order, now)
                return
            price = self._market_price(contract, order.side) or last
            self._fill(order, price, now)

    def cancel(self, account_id: int, order_id: int | None) -> None:
        order = self._find_order(account_id, order_id, not_found=2)
        account = self._accounts[account_id]
        if not account.simulated:
            raise TradingError(6, "Live accounts not supported")
        if order.status not in WORKING:
            raise TradingError(3, f"Order {order_id} is not working.")
        now = self.clock.now_ms()
        self._cancel(order, now)
        # Cancelling an entry before it fills takes its suspended brackets with it.
        for cid in self._children.get(order.id, ()):
            child = self._orders[cid]
            if child.status == SUSPENDED:
                self._cancel(child, now)
        self._flush()

    # ----- Position/closeContract, Position/partialCloseContract -----------------------------

    def close_position(self, account_id: int, contract_id: str) -> None:
        """Market-close the whole position. Leaves bracket legs alone, as the live venue does."""
        pos, contract = self._position_for_close(account_id, contract_id)
        now = self.clock.now_ms()
        if not self.market.is_open(now) or self._market_price(contract, _closing(pos)) is None:
            raise TradingError(5, None)
        self._market_close(pos, contract, pos.size, now)

    def partial_close(self, account_id: int, contract_id: str, size: int) -> None:
        pos, contract = self._position_for_close(account_id, contract_id)
        if size < 1 or size > pos.size:
            raise TradingError(5, f"Invalid close size ({size}); the position has {pos.size}.")
        now = self.clock.now_ms()
        if not self.market.is_open(now) or self._market_price(contract, _closing(pos)) is None:
            raise TradingError(6, None)
        self._market_close(pos, contract, size, now)

    def _position_for_close(self, account_id: int, contract_id: str
                            ) -> tuple[Position, SimContract]:
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        contract = self.catalogue.get(contract_id) if contract_id else None
        if contract is None:
            raise TradingError(3, f"Contract {contract_id!r} was not found.")
        pos = self._positions.get((account_id, contract.id))
        if pos is None:
            raise TradingError(2, f"No open position in {contract.id}.")
        return pos, contract

    def _market_close(self, pos: Position, contract: SimContract, size: int, now: int) -> None:
        order = Order(id=self._new_order_id(), account_id=pos.account_id, contract_id=contract.id,
                      symbol_id=contract.symbol_id, created_ms=now, updated_ms=now,
                      status=PENDING, type=MARKET, side=_closing(pos), size=size,
                      contract=contract)
        self._store(order)
        self._emit_order(order)
        self._activate(order, now)
        self._flush()

    # ----- searches ---------------------------------------------------------------------------

    def orders(self, account_id: int) -> list[Order]:
        """Every order of the account, oldest first (raises TradingError 1 when unknown)."""
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        return list(self._by_account[account_id])

    def order_by_id(self, account_id: int, order_id: int | None) -> Order:
        return self._find_order(account_id, order_id, not_found=1)

    def positions(self, account_id: int) -> list[Position]:
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        return sorted((p for (a, _), p in self._positions.items() if a == account_id),
                      key=lambda p: p.id)

    def trades(self, account_id: int) -> list[HalfTrade]:
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        return list(self._trades[account_id])

    def account(self, account_id: int) -> Account | None:
        return self._accounts.get(account_id)

    # ----- matching ---------------------------------------------------------------------------

    def _match_print(self, order: Order, price: float, t: int) -> None:
        contract = order.contract
        assert contract is not None
        if order.type in LIMIT_LIKE or (order.type == STOP_LIMIT and order.triggered):
            if self._limit_crossed(order, price):
                assert order.limit_price is not None
                self._fill(order, order.limit_price, t)
            return
        if order.type == TRAILING_STOP:
            self._trail(order, price, t)
        if order.stop_price is None or not self._stop_hit(order, price):
            return
        if order.type == STOP_LIMIT:
            order.triggered = True
            order.updated_ms = t
            if self._limit_crossed(order, price):
                self._fill(order, price, t)
            else:
                self._emit_order(order)
            return
        self._fill(order, price, t)

    def _trail(self, order: Order, price: float, t: int) -> None:
        contract = order.contract
        assert contract is not None and order.trail_ticks is not None
        dist = order.trail_ticks * contract.tick_size
        anchor = order.anchor if order.anchor is not None else price
        if order.side == SELL and price > anchor:
            anchor = price
        elif order.side == BUY and price < anchor:
            anchor = price
        order.anchor = anchor
        stop = round_to_tick(anchor - dist if order.side == SELL else anchor + dist,
                             contract.tick_size)
        if stop != order.stop_price and not self._stop_hit_at(order.side, stop, price):
            order.stop_price = stop
            order.updated_ms = t
            self._emit_order(order)

    @staticmethod
    def _limit_crossed(order: Order, price: float) -> bool:
        assert order.limit_price is not None
        return price <= order.limit_price if order.side == BUY else price >= order.limit_price

    @staticmethod
    def _stop_hit_at(side: int, stop: float, price: float) -> bool:
        return price >= stop if side == BUY else price <= stop

    def _stop_hit(self, order: Order, price: float) -> bool:
        assert order.stop_price is not None
        return self._stop_hit_at(order.side, order.stop_price, price)

    def _market_price(self, contract: SimContract, side: int) -> float | None:
        """Where a market order of `side` fills now: best ask / best bid, else the last print."""
        quote = (self.market.best_ask(contract.id) if side == BUY
                 else self.market.best_bid(contract.id))
        price = quote if quote is not None else self._last_price(contract.id)
        return None if price is None else round_to_tick(price, contract.tick_size)

    def _last_price(self, contract_id: str) -> float | None:
        last = self._last.get(contract_id)
        return last if last is not None else self.market.last_price(contract_id)

    # ----- fills ------------------------------------------------------------------------------

    def _fill(self, order: Order, price: float, t: int) -> None:
        contract = order.contract
        assert contract is not None
        price = round_to_tick(price, contract.tick_size)
        order.status = FILLED
        order.fill_volume = order.size
        order.filled_price = price
        order.updated_ms = t
        self._unwork(order)
        self.counters["fills"] += 1
        self._emit_order(order)
        # Bracket children of an entry go live at absolute prices: TP first, then SL (live order).
        kids = [self._orders[c] for c in self._children.get(order.id, ())]
        for child in sorted(kids, key=lambda c: 0 if c.leg == "TP" else 1):
            if child.status != SUSPENDED:
                continue
            assert child.bracket_ticks is not None
            level = round_to_tick(price + child.bracket_ticks * contract.tick_size,
                                  contract.tick_size)
            child.size = order.size
            if child.leg == "TP":
                child.limit_price = level
            else:
                child.stop_price = level
            self._set_open(child, t)
        # OCO: a filled leg cancels its sibling.
        if order.leg is not None and order.linked_order_id is not None:
            sibling = self._orders.get(order.linked_order_id)
            if sibling is not None and sibling.status in WORKING:
                self._cancel(sibling, t)
        self._book_fill(order, contract, price, t)

    def _book_fill(self, order: Order, contract: SimContract, price: float, t: int) -> None:
        """Trades, position and balance of one fill, emitted in that order."""
        account = self._accounts[order.account_id]
        key = (account.id, contract.id)
        pos = self._positions.get(key)
        remaining = order.size
        trades: list[HalfTrade] = []
        pos_events: list[tuple[int, dict[str, Any]]] = []
        order_long = order.side == BUY
        if pos is not None and (pos.type == LONG) != order_long:
            qty = min(remaining, pos.size)
            direction = 1.0 if pos.type == LONG else -1.0
            pnl = ((price - pos.average_price) / contract.tick_size * contract.tick_value
                   * qty * direction)
            trades.append(self._new_trade(order, contract, price, round(pnl, 2), qty, t))
            pos.size -= qty
            remaining -= qty
            if pos.size == 0:
                flat = pos.to_api(hub=True)
                flat.update(type=FLAT, size=0)
                pos_events.append((ACT_REMOVE, flat))
                del self._positions[key]
                pos = None
            else:
                pos_events.append((ACT_UPDATE, pos.to_api(hub=True)))
        if remaining > 0:
            trades.append(self._new_trade(order, contract, price, None, remaining, t))
            if pos is None:
                pos = Position(self._new_position_id(), account.id, contract, t,
                               LONG if order_long else SHORT, remaining, price)
                self._positions[key] = pos
            else:
                total = pos.size + remaining
                pos.average_price = round(
                    (pos.average_price * pos.size + price * remaining) / total, 9)
                pos.size = total
            pos_events.append((ACT_UPDATE, pos.to_api(hub=True)))
        for tr in trades:
            self._trades[account.id].append(tr)
            self._out.append((EV_TRADE, account.id,
                              {"action": ACT_CREATE, "data": tr.to_api(hub=True)}))
        for action, data in pos_events:
            self._out.append((EV_POSITION, account.id, {"action": action, "data": data}))
        delta = sum((tr.profit_and_loss or 0.0) - tr.fees for tr in trades)
        account.balance = round(account.balance + delta, 2)
        self._out.append((EV_ACCOUNT, account.id,
                          {"action": ACT_UPDATE, "data": account.to_api()}))

    def _new_trade(self, order: Order, contract: SimContract, price: float,
                   pnl: float | None, size: int, t: int) -> HalfTrade:
        tid = self._next_trade
        self._next_trade += 1
        return HalfTrade(id=tid, account_id=order.account_id, contract_id=contract.id,
                         created_ms=t, price=price, profit_and_loss=pnl,
                         fees=fees_for(contract.symbol, size), side=order.side, size=size,
                         order_id=order.id)

    # ----- bookkeeping ------------------------------------------------------------------------

    def _new_order_id(self) -> int:
        oid = self._next_order
        self._next_order += 1
        return oid

    def _new_position_id(self) -> int:
        pid = self._next_position
        self._next_position += 1
        return pid

    def _store(self, order: Order) -> None:
        self._orders[order.id] = order
        self._by_account[order.account_id].append(order)
        if order.custom_tag is not None:
            self._tags[order.account_id].add(order.custom_tag)

    def _find_order(self, account_id: int, order_id: int | None, not_found: int) -> Order:
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        if order_id is None:
            raise TradingError(not_found, "The orderId field is required.")
        order = self._orders.get(order_id)
        if order is None or order.account_id != account_id:
            raise TradingError(not_found, f"Order {order_id} was not found.")
        return order

    def _set_open(self, order: Order, t: int) -> None:
        order.status = OPEN
        order.updated_ms = t
        self._working.setdefault(order.contract_id, {})[order.id] = order
        self._emit_order(order)

    def _cancel(self, order: Order, t: int) -> None:
        order.status = CANCELLED
        order.updated_ms = t
        self._unwork(order)
        self.counters["cancelled"] += 1
        self._emit_order(order)

    def _unwork(self, order: Order) -> None:
        working = self._working.get(order.contract_id)
        if working is not None:
            working.pop(order.id, None)

    def _emit_order(self, order: Order) -> None:
        self._out.append((EV_ORDER, order.account_id,
                          {"action": ACT_UPDATE, "data": order.to_api(hub=True)}))

    def _flush(self) -> None:
        """Send buffered events only after the state change is complete."""
        if not self._out:
            return
        out, self._out = self._out, []
        for name, account_id, envelope in out:
            try:
                self._emit(name, account_id, envelope)
            except Exception:  # a broken hub must not corrupt trading state
                self.counters["emit_errors"] += 1
                log.exception("emit %s for account %s failed", name, account_id)


def _closing(pos: Position) -> int:
    return SELL if pos.type == LONG else BUY
