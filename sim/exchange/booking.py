"""Booking: what a fill does to the account's positions, trades and balance. Pure.

One aggregated position per account and contract. A fill that reduces a position books a P&L
half-trade (P&L in ticks times tick value, fees of its own side); one that crosses zero closes
the old position (position event action 2) and opens a new one with the rest. Events of one fill
leave in the live venue's order: trades, then the position, then the account.
"""

from __future__ import annotations

from typing import Any

from sim.exchange.accounts import Account
from sim.market.contracts import SimContract
from sim.exchange.fees import fees_for
from sim.exchange.wire import (
    ACT_CREATE,
    ACT_REMOVE,
    ACT_UPDATE,
    BUY,
    EV_ACCOUNT,
    EV_POSITION,
    EV_TRADE,
    FLAT,
    LONG,
    SHORT,
    Event,
    HalfTrade,
    Order,
    Position,
)


class Book:
    """Positions and half-trades of every account, with their id counters."""

    def __init__(self, account_ids: list[int], now_ms: int) -> None:
        # Ids grow from a clock-derived base so a restarted sim does not reuse recent ids
        # (trade ids are int64 and stay below 2**53; position ids are int32).
        self.next_trade = now_ms + 1
        self.next_position = (now_ms // 10) % 2_000_000_000 + 1
        self.positions: dict[tuple[int, str], Position] = {}
        self.trades: dict[int, list[HalfTrade]] = {a: [] for a in account_ids}

    def position(self, account_id: int, contract_id: str) -> Position | None:
        return self.positions.get((account_id, contract_id))

    def open_positions(self, account_id: int) -> list[Position]:
        return sorted((p for (a, _), p in self.positions.items() if a == account_id),
                      key=lambda p: p.id)

    def book_fill(self, account: Account, order: Order, contract: SimContract, price: float,
                  size: int, t: int) -> list[Event]:
        """Book `size` lots of `order` filled at `price`; the events, in the venue's order."""
        key = (account.id, contract.id)
        pos = self.positions.get(key)
        remaining = size
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
                del self.positions[key]
                pos = None
            else:
                pos_events.append((ACT_UPDATE, pos.to_api(hub=True)))
        if remaining > 0:
            trades.append(self._new_trade(order, contract, price, None, remaining, t))
            if pos is None:
                pos = Position(self._new_position_id(), account.id, contract, t,
                               LONG if order_long else SHORT, remaining, price)
                self.positions[key] = pos
            else:
                total = pos.size + remaining
                pos.average_price = round(
                    (pos.average_price * pos.size + price * remaining) / total, 9)
                pos.size = total
            pos_events.append((ACT_UPDATE, pos.to_api(hub=True)))
        out: list[Event] = []
        for tr in trades:
            self.trades[account.id].append(tr)
            out.append((EV_TRADE, account.id, {"action": ACT_CREATE, "data": tr.to_api(hub=True)}))
        for action, data in pos_events:
            out.append((EV_POSITION, account.id, {"action": action, "data": data}))
        delta = sum((tr.profit_and_loss or 0.0) - tr.fees for tr in trades)
        account.balance = round(account.balance + delta, 2)
        out.append((EV_ACCOUNT, account.id, {"action": ACT_UPDATE, "data": account.to_api()}))
        return out

    def drop(self, account_id: int, contract_id: str) -> Event | None:
        """Remove a position without a trade (an account reset that cannot close it at market);
        its position event (action 2, flat), or None when there is no such position."""
        pos = self.positions.pop((account_id, contract_id), None)
        if pos is None:
            return None
        flat = pos.to_api(hub=True)
        flat.update(type=FLAT, size=0)
        return (EV_POSITION, account_id, {"action": ACT_REMOVE, "data": flat})

    def _new_trade(self, order: Order, contract: SimContract, price: float,
                   pnl: float | None, size: int, t: int) -> HalfTrade:
        tid = self.next_trade
        self.next_trade += 1
        return HalfTrade(id=tid, account_id=order.account_id, contract_id=contract.id,
                         created_ms=t, price=price, profit_and_loss=pnl,
                         fees=fees_for(contract.symbol, size), side=order.side, size=size,
                         order_id=order.id)

    def _new_position_id(self) -> int:
        pid = self.next_position
        self.next_position += 1
        return pid
