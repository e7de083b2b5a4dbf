"""The sim's trading engine: accounts, orders, brackets and fills, wired together. Pure core.

No I/O: time comes from the injected clock, prices from the injected market view, contracts
from the catalogue, and every user-hub event leaves through the injected `emit` callback
(`emit(event_name, account_id, {"action": N, "data": {...}})`, nulls already removed). The REST
adapter (`sim/trading_api.py`) parses bodies and calls the methods here; the sim server wires
both (docs/sim-trading.md describes the seam). The jobs live apart: `sim/accounts.py` (the
accounts), `sim/validation.py` (what place and modify accept), `sim/matching.py` (where and
when an order fills), `sim/booking.py` (positions, trades, balance), `sim/wire.py` (the venue's
models). This module holds the orders and their life cycle.

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

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from chillly.calendar import flat_by_ms, trading_date
from chillly.clock import Clock, ms_to_iso
from sim.accounts import DEFAULT_ACCOUNTS, Account, AccountConfig
from sim.booking import Book
from sim.contracts import SimContract
from sim.matching import (
    MarketView,
    Prices,
    limit_crossed,
    match_print,
    quote_fill,
    rests_as_limit,
    round_to_tick,
    stop_hit,
)
from sim.referee import Referee
from sim.rules import RULES, exposure, lot_tenths
from sim.validation import modify_changes, validate_place
from sim.wire import (
    ACT_UPDATE,
    EV_ACCOUNT,
    BUY,
    CANCELLED,
    EV_ORDER,
    FILLED,
    LIMIT,
    LIMIT_LIKE,
    LONG,
    MARKET,
    OPEN,
    PENDING,
    REJECTED,
    SELL,
    STOP,
    STOP_LIMIT,
    SUSPENDED,
    TRAILING_STOP,
    WORKING,
    Event,
    HalfTrade,
    Order,
    PlaceRequest,
    Position,
    TradingError,
)

log = logging.getLogger("sim.trading")

BRACKET_MODES = ("auto_oco", "position")
FILL_MODELS = ("prints", "touch")

Emit = Callable[[str, int, dict[str, Any]], None]


class CatalogueView(Protocol):
    def get(self, contract_id: str) -> SimContract | None: ...


class TradingEngine:
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
                                           c.is_visible, c.simulated, c.active, mode)
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
                                         "breaches": 0, "liquidations": 0}
        self.enforce = set_enforce(enforce)
        self.programs = {c.id: c.rules() for c in configs}
        self.referee = Referee(self.programs, {a: x.balance for a, x in self._accounts.items()},
                               now, sessions)
        self._touched: dict[int, str] = {}    # account -> contract of its latest fill
        self._checking = False
        self.dirty = False      # state changed since the last save (sim/persistence.py)

    # ----- public seam -----------------------------------------------------------------------

    def accounts(self, only_active: bool = False) -> list[dict[str, Any]]:
        """TradingAccount dicts (REST form; hub form is identical: no nulls, no timestamps)."""
        return [a.to_api() for a in self._accounts.values() if a.active or not only_active]

    def account_ids(self) -> list[int]:
        return list(self._accounts)

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
            prices = validate_place(account, contract, req, now, self.market, self.prices,
                                    self._tags[account.id])
            assert contract is not None
            self._check_rules(account, contract, req, now)
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
        self._after(now)
        self._flush()
        return oid, 0, None

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
            price = self.prices.market_price(contract, order.side)
            assert price is not None
            self._fill(order, price, now)
            return
        if order.type in LIMIT_LIKE and order.limit_price is not None:
            ref = self.prices.market_price(contract, order.side)
            if ref is not None and limit_crossed(order, ref):
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
        if size is not None and 0 < size <= order.fill_volume:
            raise TradingError(3, f"Invalid order size ({size}); {order.fill_volume} already "
                                  "filled.")
        changes = modify_changes(order, self.prices, size, limit_price, stop_price, trail_price)
        for k, v in changes.items():
            setattr(order, k, v)
        order.updated_ms = now
        self.counters["modified"] += 1
        self._emit_order(order)
        self._recheck(order, now)
        self._after(now)
        self._flush()

    def _recheck(self, order: Order, now: int) -> None:
        """After a modify: a limit moved through the quote fills, a stop moved through fires."""
        contract = order.contract
        assert contract is not None
        if rests_as_limit(order):
            ref = self.prices.market_price(contract, order.side)
            if ref is not None and limit_crossed(order, ref):
                self._fill(order, ref, now)
            return
        last = self.prices.last_price(contract.id)
        if last is not None and order.stop_price is not None and stop_hit(order, last):
            if order.type == STOP_LIMIT:
                order.triggered = True
                self._recheck(order, now)
                return
            price = self.prices.market_price(contract, order.side) or last
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
        if not self.market.is_open(now) or self.prices.market_price(contract, _closing(pos)) is None:
            raise TradingError(5, None)
        self._market_close(pos, contract, pos.size, now)

    def partial_close(self, account_id: int, contract_id: str, size: int) -> None:
        pos, contract = self._position_for_close(account_id, contract_id)
        if size < 1 or size > pos.size:
            raise TradingError(5, f"Invalid close size ({size}); the position has {pos.size}.")
        now = self.clock.now_ms()
        if not self.market.is_open(now) or self.prices.market_price(contract, _closing(pos)) is None:
            raise TradingError(6, None)
        self._market_close(pos, contract, size, now)

    def _position_for_close(self, account_id: int, contract_id: str
                            ) -> tuple[Position, SimContract]:
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        contract = self.catalogue.get(contract_id) if contract_id else None
        if contract is None:
            raise TradingError(3, f"Contract {contract_id!r} was not found.")
        pos = self.book.position(account_id, contract.id)
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
        self._after(now)
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
        return self.book.open_positions(account_id)

    def trades(self, account_id: int) -> list[HalfTrade]:
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        return list(self.book.trades[account_id])

    def account(self, account_id: int) -> Account | None:
        return self._accounts.get(account_id)

    # ----- Topstep rules: enforcement and the referee ------------------------------------------

    def on_clock(self, now: int) -> None:
        """Time passing: the 17:00 CT day roll, the flat-by deadline, the marks."""
        balances = {a: x.balance for a, x in self._accounts.items()}
        day = self.referee.day
        unblocked = self.referee.roll(now, balances)
        if self.referee.day != day:
            self.dirty = True
        for acc_id in unblocked:
            account = self._accounts[acc_id]
            account.can_trade = True
            self._emit_account(account)
        if self.referee.flat_by_due(now):
            self.dirty = True
            for acc_id, account in self._accounts.items():
                positions = self.book.open_positions(acc_id)
                lots = self._lots(acc_id)
                breached = self.referee.check_flat(acc_id, lots, [p.contract.id
                                                                  for p in positions], now)
                if "flat_by" in self.enforce:
                    self._liquidate(account, now, lock=False)
                    if breached:
                        self.referee.mark_enforced(["flat_by"], acc_id)
        self._after(now)
        self._flush()

    def _check_rules(self, account: Account, contract: SimContract, req: PlaceRequest,
                     now: int) -> None:
        """Place-time enforcement: the flat window and the maximum position (reductions pass)."""
        if not ({"flat_by", "max_position"} & self.enforce):
            return
        assert req.side is not None and req.size is not None
        before = self._exposure(account.id)
        after = self._exposure(account.id, (contract, req.side, req.size))
        if after <= before:
            return
        if "flat_by" in self.enforce and self.referee.in_flat_window(now):
            deadline = ms_to_iso(flat_by_ms(trading_date(now)))
            raise TradingError(5, f"Outside of trading hours: positions must be flat from "
                                  f"{deadline} until the session closes.")
        cap = self.referee.state[account.id].max_lots
        if "max_position" in self.enforce and after > cap * 10:
            raise TradingError(2, f"Order rejected: it could take the position to "
                                  f"{after / 10:g} lots, over the account's maximum position "
                                  f"of {cap} lots.")

    def _exposure(self, acc_id: int, extra: tuple[SimContract, int, int] | None = None) -> int:
        """Tenths of a lot the account could hold if every working entry of a side filled."""
        program = self.programs[acc_id]
        books: dict[str, list[int]] = {}      # contract -> [net, buys, sells]
        symbols: dict[str, str] = {}
        for pos in self.book.open_positions(acc_id):
            books[pos.contract.id] = [pos.size if pos.type == LONG else -pos.size, 0, 0]
            symbols[pos.contract.id] = pos.contract.symbol
        entries = [(o.contract, o.side, o.size - o.fill_volume)
                   for o in self._by_account[acc_id]
                   if o.leg is None and o.status in (OPEN, PENDING) and o.contract is not None]
        if extra is not None:
            entries.append(extra)
        for contract, side, size in entries:
            assert contract is not None
            row = books.setdefault(contract.id, [0, 0, 0])
            symbols[contract.id] = contract.symbol
            row[1 if side == BUY else 2] += size
        return sum(lot_tenths(program, symbols[cid], exposure(*row)) for cid, row in books.items())

    def _lots(self, acc_id: int) -> int:
        program = self.programs[acc_id]
        return sum(lot_tenths(program, p.contract.symbol, p.size)
                   for p in self.book.open_positions(acc_id))

    def open_pnl(self, acc_id: int) -> float:
        """Open P&L: longs marked at the bid, shorts at the ask (the last print without quotes)."""
        total = 0.0
        for pos in self.book.open_positions(acc_id):
            c = pos.contract
            price = self.prices.market_price(c, _closing(pos))
            if price is None:
                continue
            direction = 1.0 if pos.type == LONG else -1.0
            total += (price - pos.average_price) / c.tick_size * c.tick_value * pos.size * direction
        return round(total, 2)

    def _after(self, now: int, contract_id: str | None = None) -> None:
        """After any change: the referee's checks, then enforcement of what was broken.

        With `contract_id` (a print or a quote of it) only the accounts that filled or hold
        that contract can have changed; without it (time, requests) every account is checked.
        """
        if self._checking:
            return
        if contract_id is not None and not self._touched and not self.book.positions:
            return                                  # the hot path: a print, nobody exposed
        self._checking = True
        try:
            touched, self._touched = self._touched, {}
            if contract_id is None:
                ids = list(self._accounts)
            else:
                held = {a for (a, c) in self.book.positions if c == contract_id}
                ids = [a for a in self._accounts if a in touched or a in held]
            for acc_id in ids:
                account = self._accounts[acc_id]
                lots = self._lots(acc_id)
                where = touched.get(acc_id, contract_id)
                broken = self.referee.check_lots(acc_id, lots, where, now)
                broken += self.referee.check_equity(acc_id, account.balance,
                                                    self.open_pnl(acc_id), now, lots, where)
                if broken:
                    self.dirty = True
                    self.counters["breaches"] += len(broken)
                    log.warning("account %s breached %s", acc_id, ", ".join(broken))
                    self._enforce(account, broken, now)
        finally:
            self._checking = False

    def _enforce(self, account: Account, broken: list[str], now: int) -> None:
        st = self.referee.state[account.id]
        if "mll" in broken:
            st.lost = True
        done = []
        if "mll" in broken and "mll" in self.enforce:
            self._liquidate(account, now, lock=True)
            done.append("mll")
        if "daily_loss" in broken and "daily_loss" in self.enforce and not st.lost:
            st.blocked = True
            self._liquidate(account, now, lock=True)
            done.append("daily_loss")
        if done:
            self.referee.mark_enforced(done, account.id)

    def _liquidate(self, account: Account, now: int, lock: bool) -> None:
        """Cancel every working order, close every position at market; lock when asked."""
        self.counters["liquidations"] += 1
        for order in list(self._by_account[account.id]):
            if order.status in WORKING:
                self._cancel(order, now)
        for pos in self.book.open_positions(account.id):
            contract = pos.contract
            if self.market.is_open(now) and self.prices.market_price(
                    contract, _closing(pos)) is not None:
                self._market_close(pos, contract, pos.size, now)
        self._touched.clear()
        if lock and account.can_trade:
            account.can_trade = False
            self._emit_account(account)

    def risk(self, acc_id: int) -> dict[str, Any] | None:
        """The referee's view of one account (GET /admin/accounts/{id}/risk)."""
        account = self._accounts.get(acc_id)
        if account is None:
            return None
        st = self.referee.state[acc_id]
        open_pnl = self.open_pnl(acc_id)
        equity = round(account.balance + open_pnl, 2)
        day = self.referee.day
        return {"account": acc_id, "name": account.name, **st.to_api(),
                "balance": round(account.balance, 2), "open_pnl": open_pnl, "equity": equity,
                "day_pnl": round(equity - st.day_start_balance, 2),
                "lots_in_use": self._lots(acc_id) / 10,
                "exposure_lots": self._exposure(acc_id) / 10,
                "can_trade": account.can_trade, "trading_day": day.isoformat(),
                "flat_by": ms_to_iso(flat_by_ms(day)) if self.referee.sessions else None,
                "enforce": sorted(self.enforce),
                "breaches": sum(1 for b in self.referee.breaches if b.account == acc_id)}

    def breaches(self, acc_id: int | None = None) -> list[dict[str, Any]]:
        return [b.to_api() for b in self.referee.breaches if acc_id is None or b.account == acc_id]

    def set_enforcement(self, rules: Iterable[str]) -> None:
        self.enforce = set_enforce(rules)

    # ----- fills ------------------------------------------------------------------------------

    def _fill(self, order: Order, price: float, t: int, qty: int | None = None) -> None:
        """Fill `qty` lots (default: all that is left) of a working order at `price`."""
        contract = order.contract
        assert contract is not None
        price = round_to_tick(price, contract.tick_size)
        left = order.size - order.fill_volume
        qty = left if qty is None else min(qty, left)
        if qty <= 0:
            return
        first = order.fill_volume == 0
        done = order.fill_volume
        order.filled_price = price if first else round(
            ((order.filled_price or price) * done + price * qty) / (done + qty), 9)
        order.fill_volume = done + qty
        order.updated_ms = t
        if order.fill_volume >= order.size:
            order.status = FILLED
            self._unwork(order)
        self.counters["fills"] += 1
        self._emit_order(order)
        # Bracket children of an entry go live at absolute prices from its first fill, sized
        # to what has filled so far: TP first, then SL (live order).
        kids = [self._orders[c] for c in self._children.get(order.id, ())]
        for child in sorted(kids, key=lambda c: 0 if c.leg == "TP" else 1):
            if child.status == SUSPENDED:
                assert child.bracket_ticks is not None
                level = round_to_tick(price + child.bracket_ticks * contract.tick_size,
                                      contract.tick_size)
                child.size = order.fill_volume
                if child.leg == "TP":
                    child.limit_price = level
                else:
                    child.stop_price = level
                self._set_open(child, t)
            elif child.status == OPEN and child.size < order.fill_volume:
                child.size = order.fill_volume
                child.updated_ms = t
                self._emit_order(child)
        # OCO: a filled leg cancels its sibling; a partly filled one shrinks it.
        if order.leg is not None and order.linked_order_id is not None:
            sibling = self._orders.get(order.linked_order_id)
            if sibling is not None and sibling.status in WORKING:
                if order.status == FILLED:
                    self._cancel(sibling, t)
                else:
                    sibling.size = max(sibling.fill_volume + 1, order.size - order.fill_volume)
                    sibling.updated_ms = t
                    self._emit_order(sibling)
        account = self._accounts[order.account_id]
        self._out.extend(self.book.book_fill(account, order, contract, price, qty, t))
        self._touched[account.id] = contract.id

    # ----- bookkeeping ------------------------------------------------------------------------

    def _new_order_id(self) -> int:
        oid = self._next_order
        self._next_order += 1
        return oid

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

    def _emit_account(self, account: Account) -> None:
        self._out.append((EV_ACCOUNT, account.id,
                          {"action": ACT_UPDATE, "data": account.to_api()}))

    def _emit_order(self, order: Order) -> None:
        self._out.append((EV_ORDER, order.account_id,
                          {"action": ACT_UPDATE, "data": order.to_api(hub=True)}))

    def _flush(self) -> None:
        """Send buffered events only after the state change is complete."""
        if not self._out:
            return
        self.dirty = True
        out, self._out = self._out, []
        for name, account_id, envelope in out:
            try:
                self._emit(name, account_id, envelope)
            except Exception:  # a broken hub must not corrupt trading state
                self.counters["emit_errors"] += 1
                log.exception("emit %s for account %s failed", name, account_id)


def set_enforce(rules: Iterable[str]) -> set[str]:
    """A checked set of rule names (sim/rules.py RULES)."""
    out = set(rules)
    unknown = out - set(RULES)
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; known: {list(RULES)}")
    return out


def _closing(pos: Position) -> int:
    return SELL if pos.type == LONG else BUY
