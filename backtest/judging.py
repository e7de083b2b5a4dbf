"""The referee's view of a backtest: the account marked along the bars' paths, its trading days,
the equity curve against the floor (trading/referee/judge.py is the judge).

The referee sees the account after every fill, at the worst point of every path while a
position is open (the intraday MLL on open P&L), at the flat-by deadline, and at every 17:00 CT
roll. Each trading day becomes a `Day` (its start and end balance, lowest equity, whether it
traded, whether the account was lost that day) for the verdict.
"""

from __future__ import annotations

from datetime import date, timedelta

from chillly.calendar import (flat_by_ms, is_trading_day, session_close_ms, session_open_ms,
                              trading_date)
from chillly.clock import MINUTE_MS
from trading.referee.judge import Referee
from trading.referee.rules import Program, lot_tenths
from trading.referee.verdict import FAILING, Day

from backtest.book import ACCOUNT, Book, Fill, Spec

_STEP = MINUTE_MS // 3                                 # market ms between path points


class Judge:
    def __init__(self, program: Program, book: Book, specs: dict[str, Spec],
                 last: dict[str, float], curve_every: int = 30) -> None:
        self.program = program
        self.book = book
        self.specs = specs
        self.last = last                   # the run's last price per contract (shared)
        self.one = next(iter(specs)) if len(specs) == 1 else None
        self.referee = Referee({ACCOUNT: program}, {ACCOUNT: program.start}, 0, sessions=True)
        self.days: list[Day] = []
        self.equity: list[tuple[int, float, float]] = []   # t, equity, floor
        self.curve_every = curve_every
        self.curve_next = 0
        self.day: date | None = None
        self.day_end = -1                  # the next 17:00 CT roll
        self.day_start = self.day_low = program.start
        self.day_fills = 0
        self.flat_lo = self.flat_hi = 0    # the flat-by window of the day
        self.flat_done = False

    def start(self, start_ms: int) -> None:
        self.referee = Referee({ACCOUNT: self.program}, {ACCOUNT: self.program.start},
                               start_ms, sessions=True)

    # ---------------------------------------------------------------- figures

    def lots(self) -> int:
        return sum(lot_tenths(self.program, spec.symbol, abs(self.book.positions[c].size))
                   for c, spec in self.specs.items())

    def equity_at(self, contract: str | None = None, price: float | None = None) -> float:
        """Balance plus open P&L, `contract` at `price`, the others at their last price."""
        book = self.book
        eq = book.balance
        if self.one is not None and price is not None:     # one contract: no loop
            return eq + book.open_pnl(self.one, price)
        for c in self.specs:
            if book.positions[c].size:
                p = price if c == contract and price is not None else self.last.get(c)
                if p is not None:
                    eq += book.open_pnl(c, p)
        return eq

    def sample(self, close: int) -> None:
        """A point of the equity curve every `curve_every` minutes."""
        if close >= self.curve_next:
            self.curve_next = close + self.curve_every * MINUTE_MS
            self.equity.append((close, round(self.equity_at(), 2),
                                round(self.referee.state[ACCOUNT].floor, 2)))

    # ---------------------------------------------------------------- marks

    def span(self, contract: str, path: tuple[float, ...], t: int, a: float, b: float) -> None:
        """The path's points in [a, b] (a's own only at the bar's open) marked with the
        position held between them: only the adverse extreme can be the lowest equity."""
        size = self.book.positions[contract].size
        if not size:
            return
        if a == 0.0 and b >= 3.0:            # the whole bar: its adverse extreme
            price = min(path) if size > 0 else max(path)
            self.mark(contract, price, t + path.index(price) * _STEP)
            return
        worst = -1
        for i in range(4):
            if (a < i <= b) or (i == 0 and a == 0.0):
                if worst < 0 or (path[i] < path[worst] if size > 0 else path[i] > path[worst]):
                    worst = i
        if worst >= 0:
            self.mark(contract, path[worst], t + worst * _STEP)

    def fills(self, contract: str, fills: list[Fill]) -> None:
        for f in fills:
            self.day_fills += 1
            self.referee.check_lots(ACCOUNT, self.lots(), contract, f.t)
            self.mark(contract, f.price, f.t)

    def mark(self, contract: str, price: float, t: int) -> None:
        eq = self.equity_at(contract, price)
        if eq < self.day_low:
            self.day_low = eq
        st = self.referee.state[ACCOUNT]
        # Skip the referee when it would neither record nor clear anything: clearly on the
        # same side of the floor as it already knows, and the daily limit (if any) clearly
        # not hit or already recorded. Within a cent of a line, it decides (its rounding).
        f = st.floor
        if eq > f + 0.01 or eq < f - 0.01:
            limit = self.program.daily_loss
            if (eq < f) == ("mll" in st.violating) and (
                    limit is None or "daily_loss" in st.violating
                    or eq - st.day_start_balance > 0.01 - limit):
                return
        broken = self.referee.check_equity(ACCOUNT, self.book.balance, eq - self.book.balance,
                                           t, self.lots(), contract)
        if broken:
            self.equity.append((t, round(eq, 2), round(st.floor, 2)))

    def flat_check(self, close: int) -> None:
        """At the first close inside the flat-by window: a position held is a breach."""
        if self.flat_lo <= close < self.flat_hi and not self.flat_done:
            self.flat_done = True
            held = [c for c in self.specs if self.book.positions[c].size]
            self.referee.check_flat(ACCOUNT, self.lots(), held, close)

    # ---------------------------------------------------------------- days

    def roll(self, t: int) -> None:
        """A new trading day from `t` on: close the previous one (the referee's 17:00 CT)."""
        if self.day is not None:
            self.close_day()
        day = trading_date(t)
        self.day = day
        self.day_end = session_open_ms(day + timedelta(days=1))
        self.referee.roll(t, {ACCOUNT: self.book.balance})
        self.day_start = self.day_low = self.book.balance
        self.day_fills = 0
        self.book.day_realized = 0.0
        self.flat_done = False
        self.flat_lo, self.flat_hi = (flat_by_ms(day), session_close_ms(day)) \
            if is_trading_day(day) else (0, 0)

    def close_day(self) -> None:
        assert self.day is not None
        failed = any(b.rule in FAILING and trading_date(b.t) == self.day
                     for b in self.referee.breaches)
        end = self.book.balance
        self.days.append(Day(self.day.isoformat(), round(self.day_start, 2), round(end, 2),
                             round(min(self.day_low, end), 2), self.day_fills > 0, failed))
