"""The live risk gate (trading/risk/) in a backtest: the same `RiskGate`, with the program's
numbers and the instance's `[limits]`, asked about every order and at every bar's close.

The gateway shows the gate a `BookView` of the account; here the view is built from the
backtest's book at market time (positions, working orders, the last price as the quote, the
balance and the day's realized P&L), and what the gate asks for in `due` (a trading state, a
flatten at 15:05 CT, cancelled entries) is carried out on the book, as the gateway does. What
it refuses comes back to the strategy as a rejected order naming the rule.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from trading.marks import QuoteView
from trading.orders.requests import Invalid, build_intent, parse_submit
from trading.risk.calendar import CmeCalendar
from trading.risk.config import StrategyLimits, resolve
from trading.risk.gate import RiskGate
from trading.risk.types import (ACTIVE, BUY, LONG, SELL, SHORT, BookView, CancelEntries,
                                CancelOrders, Flatten, PositionView, SetTradingState,
                                WorkingOrder)
from trading.strategy.instance import Limits
from trading.venue_codes import OrderStatus

from backtest.book import ACCOUNT, Book

_ACCOUNT_OWNER = "_account"


def limits_of(limits: Limits) -> StrategyLimits:
    return StrategyLimits(
        contracts=frozenset(limits.contracts) if limits.contracts else None,
        max_lots=float(limits.max_lots) if limits.max_lots is not None else None,
        max_orders_per_minute=limits.max_orders_per_minute,
        max_daily_loss=limits.max_daily_loss)


class BacktestGate:
    """The `Gate` of backtest/run.py over trading/risk's `RiskGate`."""

    def __init__(self, program: str, size: str, owner: str, limits: Limits) -> None:
        cfg = resolve(program, size)
        self.own = limits_of(limits)
        self.gate = RiskGate(replace(cfg, strategies={owner: self.own}), CmeCalendar())
        self.state = ACTIVE
        self.next_due = 0

    def due_needed(self, book: Book, now: int, equity: float) -> bool:
        """Whether `due` can ask for anything at this bar's close: the gate acts on a position
        or working orders, from the afternoon's entry cut-off, outside ACTIVE, near the MLL
        buffer or half-way to a daily loss limit; and, as a backstop, every 15 market minutes
        while anything is held or working. Asking it every bar would cost a view a bar for
        nothing (bench/backtest.py)."""
        if not book.orders and not any(p.size for p in book.positions.values()):
            return False
        if now >= self.next_due or self.state != ACTIVE:
            return True
        g = self.gate
        dl = g.deadlines(now)
        if dl.close is None or now >= dl.entry_cutoff - 60_000:
            return True
        if equity - g.floor() <= 2 * g.cfg.mll_buffer:
            return True
        sod = g.memory.sod_balance
        day = equity - (sod if sod is not None else g.cfg.starting_balance)
        for limit in (g.cfg.daily_loss_limit, self.own.max_daily_loss):
            if limit is not None and day <= -0.5 * limit:
                return True
        return False

    def view(self, book: Book, owner: str, now: int, last: dict[str, float]) -> BookView:
        positions: list[PositionView] = []
        open_pnl = 0.0
        for c, pos in book.positions.items():
            if not pos.size:
                continue
            spec = book.specs[c]
            price = last.get(c)
            pnl = book.open_pnl(c, price) if price is not None else 0.0
            open_pnl += pnl
            for who in (_ACCOUNT_OWNER, owner):     # the strategy is the whole account
                positions.append(PositionView(
                    contract=c, owner=who, side=LONG if pos.size > 0 else SHORT,
                    size=abs(pos.size), avg_price=pos.avg, realized_pnl=book.day_realized,
                    open_pnl=round(pnl, 2), symbol=spec.symbol, tick_size=spec.tick_size,
                    tick_value=spec.tick_value))
        orders = tuple(WorkingOrder(
            order_id=w.order_id, client_id=w.client_id, owner=w.owner, contract=w.contract,
            side=BUY if w.rest.side > 0 else SELL, size=w.rest.size, remaining=w.rest.size,
            order_type=w.rest.kind, status=OrderStatus.OPEN,
            limit_price=w.rest.price if w.rest.kind == "limit" else None,
            stop_price=w.rest.price if w.rest.kind == "stop" else None,
            parent_id=w.parent_id, protective=w.parent_id is not None)
            for w in book.orders.values())
        quotes = {c: QuoteView(c, p, p + book.specs[c].tick_size, p, now)
                  for c, p in last.items()}
        return BookView(account_id=ACCOUNT, account_name="backtest", now_ms=now,
                        balance=book.balance, realized_pnl=book.day_realized,
                        open_pnl=round(open_pnl, 2), trading_state=self.state,
                        positions=tuple(positions), orders=orders, quotes=quotes)

    def check(self, args: dict[str, Any], owner: str, book: Book, now: int,
              last: dict[str, float]) -> tuple[str, str] | None:
        """The gateway's way: the command's fields checked and the gate's `Intent` built by
        trading/orders/requests.py (a malformed order is refused as `invalid`), then the gate."""
        try:
            req = parse_submit(args, owner)
            spec = book.specs[req.contract]
            intent = build_intent(req, owner, req.contract, spec.symbol, spec.tick_size,
                                  spec.tick_value, book.positions[req.contract].size, now)
        except Invalid as exc:
            return "invalid", str(exc)
        except KeyError:
            return "invalid", f"{args.get('contract')!r} is not a contract of this instance"
        verdict = self.gate.check(intent, self.view(book, owner, now, last))
        if verdict.permits(intent):
            return None
        return verdict.rule or "risk", verdict.reason

    def due(self, book: Book, owner: str, now: int, last: dict[str, float]
            ) -> list[tuple[str, Any]]:
        """What the gate asks for now, as the book's operations: ("flatten", contract or
        None) and ("cancel", client id)."""
        out: list[tuple[str, Any]] = []
        self.next_due = now + 15 * 60_000
        for action in self.gate.due(self.view(book, owner, now, last), now):
            if isinstance(action, SetTradingState):
                self.state = action.state
            elif isinstance(action, Flatten):
                out.append(("flatten", action.contract))
            elif isinstance(action, CancelEntries):
                out += [("cancel", w.client_id) for w in book.orders.values()
                        if w.parent_id is None
                        and action.contract in (None, w.contract)
                        and action.owner in (None, w.owner)]
            elif isinstance(action, CancelOrders):
                ids = set(action.order_ids)
                out += [("cancel", w.client_id) for w in book.orders.values()
                        if w.order_id in ids]
        return out

