"""The risk gate's figures, shared by every rule family: the trading day (rolled at 17:00 CT),
equity and day P&L, exposure, and the bookkeeping of rejections and repeated actions.

`GateFigures` is the base of the rule families (loss_limits, position_limits, order_rates,
owner_limits, trading_state) that `RiskGate` (gate.py) combines: each family reads these
figures and none reads another family, so a rule can be read on its own.

Exposure (rule 2) is counted so that no reachable fill can breach the cap: per contract the
larger of |net + working buys| and |net - working sells| (bracket children and protective legs
excluded while their entry works, then counted, one of each stop/target pair), micros weighted,
summed over contracts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chillly.calendar import CHICAGO
from trading import products
from trading.risk.calendar import Deadlines, RiskCalendar
from trading.risk.config import RiskConfig
from trading.risk.memory import RiskMemory
from trading.risk.types import BUY, BookView, Verdict, WorkingOrder, reject


ACCOUNT = "_account"


def direction(side: int) -> int:
    return 1 if side == BUY else -1


def is_entry(o: WorkingOrder) -> bool:
    """Counted in exposure: not a bracket child, not one of the gateway's protective legs."""
    return o.parent_id is None and not o.protective


class GateFigures:
    """What every rule family reads: config, calendar, memory and the figures derived from them."""

    def __init__(self, config: RiskConfig, calendar: RiskCalendar,
                 memory: RiskMemory | None = None, retry_ms: int = 10_000) -> None:
        self.cfg = config
        self.cal = calendar
        self.memory = memory or RiskMemory()
        self.retry_ms = retry_ms
        #: Contracts the venue lists as not the front month (filled by the gateway).
        self.inactive: set[str] = set()
        #: contract -> (tick size, tick value, CME root), learnt from intents and positions.
        self.ticks: dict[str, tuple[float, float, str]] = {}
        #: The figures of the last rejection, for its `risk.` event.
        self.last_figures: dict[str, Any] = {}
        #: Flattens held back because an order was in motion (a counter for the heartbeat).
        self.held_back = 0
        self._dl: Deadlines | None = None
        self._meta: dict[str, tuple[str, float, float, float]] = {}
        self._sent: dict[tuple[Any, ...], int] = {}


    def deadlines(self, now_ms: int) -> Deadlines:
        dl = self._dl
        if dl is None or not (dl.start <= now_ms < dl.end):
            c = self.cfg
            dl = Deadlines.for_day(self.cal, self.cal.trading_date(now_ms), c.entry_cutoff,
                                   c.flatten_start, c.flat_by)
            self._dl = dl
        return dl

    def _sync(self, view: BookView, now_ms: int) -> Deadlines:
        """Roll the day at 17:00 CT: EOD balance, high-water mark, tier, latches, counters."""
        dl = self.deadlines(now_ms)
        b = self.memory
        today = dl.day.isoformat()
        if b.day != today:
            if b.day is None:
                if b.high_water is None:
                    # No history known: the strict reading counts today's balance as an EOD.
                    b.high_water = max(self.cfg.starting_balance, view.balance)
                if b.sod_balance is None:
                    b.sod_balance = view.balance - view.realized_pnl
            else:
                eod = b.last_balance if b.last_balance is not None else view.balance
                b.record_eod(b.day, eod)
                b.sod_balance = eod
                b.day_halt = None
                b.owner_halts.clear()
                b.contracts_today = 0
            b.day = today
            b.tier_lots = self._tier(b.sod_balance)
            b.dirty = True
        if b.last_balance != view.balance:
            b.last_balance = view.balance
            b.dirty = True
        return dl

    def _tier(self, sod: float | None) -> float | None:
        table = self.cfg.scaling
        if table is None:
            return None
        s = self.cfg.starting_balance
        profit = (sod if sod is not None else s) - s
        lots = table[0][1]
        for at, tier in table:
            if profit >= at:
                lots = tier
        return lots

    def _learn(self, contract: str, tick_size: float, tick_value: float, symbol: str) -> None:
        if tick_size > 0 and contract not in self.ticks:
            self.ticks[contract] = (tick_size, tick_value, symbol or products.symbol_of_contract(contract))
            self._meta.pop(contract, None)

    def _m(self, contract: str) -> tuple[str, float, float, float]:
        """(root, lot weight, fee per side, dollars per tick) of a contract, cached."""
        m = self._meta.get(contract)
        if m is None:
            t = self.ticks.get(contract)
            root = t[2] if t is not None else products.symbol_of_contract(contract)
            value = t[1] if t is not None else products.tick_value(root)
            m = self._meta[contract] = (root, self.cfg.weight(root), self.cfg.fee(root), value)
        return m

    def _root(self, contract: str) -> str:
        return self._m(contract)[0]

    def equity(self, view: BookView) -> float:
        """Balance plus open P&L (longs at the bid, shorts at the ask) less the fees to close."""
        eq = view.balance
        for p in view.positions:
            if p.owner != ACCOUNT or not p.size:
                continue
            n = p.signed_size
            self._learn(p.contract, p.tick_size, p.tick_value, p.symbol)
            t = self.ticks.get(p.contract)
            q = view.quotes.get(p.contract)
            mark = None
            if q is not None:
                mark = (q.bid if n > 0 else q.ask) or q.last
            if t is not None and mark is not None and p.avg_price is not None:
                eq += (mark - p.avg_price) / t[0] * t[1] * n
            else:
                eq += p.open_pnl
            eq -= self._m(p.contract)[2] * abs(n)
        return eq

    def _sod(self, view: BookView) -> float:
        sod = self.memory.sod_balance
        return sod if sod is not None else view.balance - view.realized_pnl

    def day_pnl(self, view: BookView) -> float:
        """Realized plus open since the day's start (the last EOD), fees in."""
        return self.equity(view) - self._sod(view)

    @staticmethod
    def net(view: BookView, owner: str = ACCOUNT) -> dict[str, int]:
        return {p.contract: p.signed_size for p in view.positions if p.owner == owner and p.size}

    def owner_pnl(self, view: BookView, owner: str) -> float:
        return sum(p.realized_pnl + p.open_pnl for p in view.positions if p.owner == owner)

    def exposure(self, net: dict[str, int], orders: Any,
                 extra: tuple[str, int, int] | None = None, skip: int | None = None) -> float:
        """Weighted lots reachable if any subset of the working entries (and `extra`) fills."""
        buys: dict[str, int] = {}
        sells: dict[str, int] = {}
        legs = None
        pairs: dict[tuple[int, str, int], int] | None = None
        for o in orders:
            if o.order_id == skip:
                continue
            if o.parent_id is not None:
                # A bracket child cannot fill while its entry still works (or its fill is not
                # yet in the position). Once it can, it counts in full on its side: it and a
                # new entry of that side may both fill (long 1 with its stop working, a sell 5
                # reaches short 5, not 4). The stop and the target of one entry are one
                # cancels-other pair: the larger of the two.
                if legs is None:
                    legs = {x.order_id for x in orders}
                if suspended(o, legs):
                    continue
                if pairs is None:
                    pairs = {}
                key = (o.parent_id, o.contract, o.side)
                pairs[key] = max(pairs.get(key, 0), o.remaining)
                continue
            side = buys if o.side == BUY else sells
            side[o.contract] = side.get(o.contract, 0) + o.remaining
        if pairs:
            for (_, contract, leg_side), size in pairs.items():
                side = buys if leg_side == BUY else sells
                side[contract] = side.get(contract, 0) + size
        if extra is not None:
            cid, direction, size = extra
            side = buys if direction > 0 else sells
            side[cid] = side.get(cid, 0) + size
        m = self._m
        total = 0.0
        for cid, n in net.items():
            reach = max(abs(n + buys.pop(cid, 0)), abs(n - sells.pop(cid, 0)))
            total += reach * m(cid)[1]
        for cid, b in buys.items():
            total += max(b, sells.pop(cid, 0)) * m(cid)[1]
        for cid, s in sells.items():
            total += s * m(cid)[1]
        return total

    def _reject(self, rule: str, message: str, **figures: Any) -> Verdict:
        self.memory.rejections += 1
        self.memory.dirty = True
        self.last_figures = figures
        return reject(rule, message)

    def _once(self, key: tuple[Any, ...], now_ms: int) -> bool:
        last = self._sent.get(key)
        if last is not None and now_ms - last < self.retry_ms:
            return False
        self._sent[key] = now_ms
        return True


def suspended(o: WorkingOrder, ids: set[int]) -> bool:
    """A bracket child whose entry is still working or whose fill is not yet in the position
    (negative id): it cannot fill yet."""
    return o.parent_id is not None and (o.parent_id in ids or -o.parent_id in ids)


def orphan_part(o: WorkingOrder, net: dict[str, int], ids: set[int]) -> int:
    """How much of a bracket or protective leg could open or add to a position on its own: 0
    while its entry is working or its fill is not yet in the position (negative id), else the
    part beyond the position it would close (all of it when flat or on the same side)."""
    if suspended(o, ids):
        return 0
    n = net.get(o.contract, 0)
    if n == 0 or (n > 0) == (o.side == BUY):
        return o.remaining
    return max(0, o.remaining - abs(n))


def exits(o: WorkingOrder, net: dict[str, int]) -> bool:
    """A working order that only reduces the account's current position."""
    n = net.get(o.contract, 0)
    return n != 0 and (n > 0) != (o.side == BUY) and o.remaining <= abs(n)


def ct(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=CHICAGO).strftime("%a %H:%M")
