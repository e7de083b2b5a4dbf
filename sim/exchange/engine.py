"""The sim's trading engine: accounts, orders, brackets and fills, wired together. Pure core.

No I/O: time comes from the injected clock, prices from the injected market view, contracts
from the catalogue, and every user-hub event leaves through the injected `emit` callback
(`emit(event_name, account_id, {"action": N, "data": {...}})`, nulls already removed). The REST
adapter (`sim/api/trading.py`) parses bodies and calls the methods here; the sim server wires
both (docs/sim-trading.md describes the seam). The jobs live apart: `sim/exchange/accounts.py` (the
accounts), `sim/exchange/validation.py` (what place and modify accept), `sim/matching.py` (where and
when an order fills), `booking.py` (positions, trades, balance), `wire.py` (the venue's
models); and, as mixins over the shared state of `state.py`: `orders.py` (place,
modify, cancel, brackets), `fills.py` (fills, bracket legs, OCO), `closing.py` (closes),
`sim/exchange/enforcement.py` (the Topstep rules enforced, liquidation, the day roll),
`exposure.py` (exposure, open P&L, the referee's view), `resets.py` (an account
started again) and `sim/exchange/emission.py` (the events).
This module builds the engine and holds its public seam: the market's prints and quotes, the
accounts and the searches.

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
- events of one fill leave in the order the live venue showed: order updates first (the fill,
  bracket activations, the OCO cancel), then trades, then the position, then the account.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chillly.clock import Clock
from sim.exchange.accounts import DEFAULT_ACCOUNTS, Account, AccountConfig
from sim.exchange.booking import Book
from sim.exchange.closing import Closing
from sim.exchange.emission import Emission
from sim.exchange.enforcement import Enforcement, set_enforce
from sim.exchange.state import CatalogueView, Emit, EngineState
from sim.exchange.exposure import Exposure
from sim.exchange.fills import Fills
from sim.exchange.orders import Orders
from sim.exchange.referee import Referee
from sim.exchange.resets import Resets
from sim.exchange.rules import RULES
from sim.exchange.wire import OPEN, Event, HalfTrade, Order, Position, TradingError
from trading.matching.prints import MarketView, Prices, match_print, quote_fill, rests_as_limit

BRACKET_MODES = ("auto_oco", "position")
FILL_MODELS = ("prints", "touch")


class TradingEngine(Orders, Closing, Fills, Enforcement, Exposure, Resets, Emission,
                    EngineState):
    """All trading state of the sim. Single-threaded: call it from the server's event loop."""

    def __init__(self, clock: Clock, catalogue: CatalogueView, market: MarketView, emit: Emit,
                 accounts: list[AccountConfig] | tuple[AccountConfig, ...] | None = None,
                 bracket_mode: str = "auto_oco", enforce: Iterable[str] = RULES,
                 sessions: bool = False, fill_model: str = "prints") -> None:
        """`enforce`: the Topstep rules the engine enforces (rejections, liquidations, locks);
        the referee records breaches of all of them either way. `sessions`: the market keeps
        CME hours, so the flat-by deadline applies."""
        if fill_model not in FILL_MODELS:
            raise ValueError(f"fill_model must be one of {FILL_MODELS}, not {fill_model!r}")
        self.fill_model = fill_model
        if bracket_mode not in BRACKET_MODES:
            raise ValueError(f"bracket_mode must be one of {BRACKET_MODES}, not {bracket_mode!r}")
        self.clock = clock
        self.catalogue = catalogue
        self.market = market
        self.prices = Prices(market)
        self._emit = emit
        self._accounts: dict[int, Account] = {}
        configs = list(accounts or DEFAULT_ACCOUNTS)
        for c in configs:
            mode = c.bracket_mode or bracket_mode
            if mode not in BRACKET_MODES:
                raise ValueError(f"account {c.id}: bad bracket mode {mode!r}")
            self._accounts[c.id] = Account(c.id, c.name, float(c.balance), c.can_trade,
                                           c.is_visible, c.simulated, c.active, mode,
                                           c.follower)
        # Order ids grow from a clock-derived base so a restarted sim does not reuse recent ids.
        now = max(0, clock.now_ms())
        self._next_order = now + 1
        self.book = Book(list(self._accounts), now)
        self._orders: dict[int, Order] = {}
        self._by_account: dict[int, list[Order]] = {a: [] for a in self._accounts}
        self._tags: dict[int, set[str]] = {a: set() for a in self._accounts}
        self._children: dict[int, list[int]] = {}
        self._working: dict[str, dict[int, Order]] = {}   # contract -> open orders
        self._out: list[Event] = []
        self.counters: dict[str, int] = {"placed": 0, "rejected": 0, "fills": 0,
                                         "cancelled": 0, "modified": 0, "emit_errors": 0,
                                         "breaches": 0, "liquidations": 0, "resets": 0}
        self.enforce = set_enforce(enforce)
        self.programs = {c.id: c.rules() for c in configs}
        self.referee = Referee(self.programs, {a: x.balance for a, x in self._accounts.items()},
                               now, sessions)
        self._touched: dict[int, str] = {}    # account -> contract of its latest fill
        self._checking = False
        self.dirty = False      # state changed since the last save (sim/persistence.py)

    def accounts(self, only_active: bool = False) -> list[dict[str, Any]]:
        """TradingAccount dicts (REST form; hub form is identical: no nulls, no timestamps)."""
        return [a.to_api() for a in self._accounts.values() if a.active or not only_active]

    def account_ids(self) -> list[int]:
        return list(self._accounts)

    def account(self, account_id: int) -> Account | None:
        return self._accounts.get(account_id)

    def on_trade(self, contract_id: str, price: float, size: int, t_ms: int) -> None:
        """One print of the sim's market: fills resting limits, triggers stops and trails.

        Fill model `prints`: resting limits share the print's size in the order they went
        live, so a large order fills in parts; `touch`: a limit the print reaches fills whole.
        Stops fill whole at the triggering print (they become market orders)."""
        self.prices.last[contract_id] = price
        working = self._working.get(contract_id)
        if working:
            available = size
            for order in list(working.values()):   # in the order they went live
                if order.status != OPEN:
                    continue
                limit = rests_as_limit(order)
                m = match_print(order, price, t_ms)
                if m.changed:
                    self._emit_order(order)
                if m.fill_price is None:
                    continue
                if limit and self.fill_model == "prints":
                    if available <= 0:
                        continue
                    qty = min(available, order.size - order.fill_volume)
                    available -= qty
                    self._fill(order, m.fill_price, t_ms, qty)
                else:
                    self._fill(order, m.fill_price, t_ms)
        self._after(t_ms, contract_id)
        self._flush()

    def on_quote(self, contract_id: str, bid: float | None, ask: float | None, t_ms: int) -> None:
        """A quote change: with `touch`, resting limits fill when the opposite side touches
        their price (with `prints` only prints fill them); the marks move either way."""
        working = self._working.get(contract_id) or {}
        if self.fill_model == "touch":
            for order in list(working.values()):
                if order.status != OPEN:
                    continue
                price = quote_fill(order, bid, ask)
                if price is not None:
                    self._fill(order, price, t_ms)
        self._after(t_ms, contract_id)
        self._flush()

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
        return self.book.open_positions(account_id)

    def trades(self, account_id: int) -> list[HalfTrade]:
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        return list(self.book.trades[account_id])
