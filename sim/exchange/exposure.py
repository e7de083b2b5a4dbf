"""What a sim account holds and risks: exposure, lots in use, open P&L, the referee's view.

Exposure counts what the account could hold if every working entry of one side filled (bracket
children excluded), in tenths of a lot weighted per rules.py; open P&L marks longs at the
bid and shorts at the ask (the last print without quotes). The place-time checks, the referee's
checks and GET /admin/accounts/{id}/risk all read these.
"""

from __future__ import annotations

from typing import Any

from chillly.calendar import flat_by_ms
from chillly.clock import ms_to_iso
from sim.market.contracts import SimContract
from sim.exchange.state import EngineState, closing_side
from sim.exchange.rules import exposure, lot_tenths
from sim.exchange.wire import BUY, LONG, OPEN, PENDING


class Exposure(EngineState):
    """Exposure, lots and open P&L of an account."""

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
            price = self.prices.market_price(c, closing_side(pos))
            if price is None:
                continue
            direction = 1.0 if pos.type == LONG else -1.0
            total += (price - pos.average_price) / c.tick_size * c.tick_value * pos.size * direction
        return round(total, 2)

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
