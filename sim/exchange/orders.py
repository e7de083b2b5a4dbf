"""Orders in the sim's trading engine: Order/place, Order/modify, Order/cancel, brackets.

A placed order is validated (validation.py) and checked against the enforced rules before
any state changes; a rejected one still gets an id and a record. Brackets are signed tick
offsets from the entry's fill price; their children exist from the start as Suspended (status
8) orders and go live when the entry fills (fills.py). A modify that moves a limit through
the quote fills it, a stop moved through the last print fires it.
"""

from __future__ import annotations

from sim.market.contracts import SimContract
from sim.exchange.state import EngineState
from sim.exchange.validation import modify_changes, validate_place
from sim.exchange.wire import (
    BUY,
    LIMIT,
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
    Order,
    PlaceRequest,
    TradingError,
)
from trading.matching.prints import LIMIT_LIKE, limit_crossed, rests_as_limit, round_to_tick
from trading.matching.prints import stop_hit


class Orders(EngineState):
    """The order life cycle."""

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
        if account.follower:
            raise TradingError(6, "Follower accounts cannot cancel orders")
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
