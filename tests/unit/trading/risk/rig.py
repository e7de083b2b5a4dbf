"""Builders for the risk gate's unit and property tests: views, intents, CT instants."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from chillly.calendar import CHICAGO
from trading.risk.types import BUY, LONG, SELL, SHORT, BookView, Intent, PositionView, QuoteView, \
    WorkingOrder
from trading.risk.gate import RiskGate
from trading.risk.memory import RiskMemory
from trading.risk.calendar import CmeCalendar
from trading.risk.config import resolve

ES = "CON.F.US.EP.Z26"
MES = "CON.F.US.MES.Z26"
NQ = "CON.F.US.ENQ.Z26"
TICKS = {ES: ("ES", 0.25, 12.5), MES: ("MES", 0.25, 1.25), NQ: ("NQ", 0.25, 5.0)}
_ids = iter(range(1, 10**9))


def ct(y: int, m: int, d: int, hh: int = 10, mm: int = 0, ss: int = 0) -> int:
    """Epoch ms of a wall time in Chicago."""
    return int(datetime(y, m, d, hh, mm, ss, tzinfo=CHICAGO).timestamp() * 1000)


#: A plain Wednesday morning in the day session.
WED = ct(2026, 11, 18, 10, 0)


def gate(program: str = "combine", size: str = "50k", memory: RiskMemory | None = None,
         early: dict[date, Any] | None = None, **overrides: Any) -> RiskGate:
    return RiskGate(resolve(program, size, **overrides), CmeCalendar(early_closes=early),
                    memory=memory)


def pos(contract: str, n: int, avg: float = 6000.0, owner: str = "_account",
        realized: float = 0.0, open_pnl: float = 0.0) -> PositionView:
    sym, tick, value = TICKS[contract]
    side = LONG if n > 0 else SHORT if n < 0 else 0
    return PositionView(contract, owner, side, abs(n), avg, realized, open_pnl, sym, tick, value)


def order(contract: str, side: int, remaining: int, owner: str = "alpha",
          parent_id: int | None = None, protective: bool = False,
          order_id: int | None = None) -> WorkingOrder:
    oid = order_id if order_id is not None else next(_ids)
    return WorkingOrder(oid, f"{owner}-{oid}", owner, contract, side, remaining, remaining,
                        "limit", 1, limit_price=6000.0, parent_id=parent_id,
                        protective=protective)


def intent(contract: str = ES, side: int = BUY, size: int = 1, owner: str = "alpha",
           sl_ticks: int | None = None, **kw: Any) -> Intent:
    sym, tick, value = TICKS[contract]
    return Intent(client_id=f"{owner}-{next(_ids)}", owner=owner, contract=contract, symbol=sym,
                  tick_size=tick, tick_value=value, side=side, size=size, order_type="market",
                  sl_ticks=sl_ticks, **kw)


def view(now_ms: int = WED, balance: float = 50_000.0, positions: tuple[PositionView, ...] = (),
         orders: tuple[WorkingOrder, ...] = (), quotes: dict[str, tuple[float, float]] | None
         = None, can_trade: bool = True, realized: float = 0.0,
         trading_state: str = "ACTIVE") -> BookView:
    qs = {c: QuoteView(c, b, a, b, now_ms) for c, (b, a) in (quotes or {}).items()}
    return BookView(1001, "PRAC-1001", now_ms, balance, realized, 0.0, can_trade, trading_state,
                    positions, orders, qs)


__all__ = ["BUY", "SELL", "ES", "MES", "NQ", "WED", "ct", "gate", "intent", "order", "pos",
           "view"]
