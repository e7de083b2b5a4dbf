"""One backtest: the strategy class, unchanged, driven over stored 1m bars in market time.

The strategy runs in trading/strategy's `Engine`, as in its live host; this module is the
host, the gateway and the venue at once, in one process:

- **Time** is the bars' own. A 1m bar opening at t covers [t, t + 60 s): its price path
  (trading/matching/bar_path.py) is walked at t .. t + 60 s, fills stamped along it; the final
  bar is handed over at t + 60 s (`self.now()` is then the bar's close, as live). Timers fire at
  their due market time, after the path of the bar they fall in and before its close is handed
  over. Higher timeframes come from the live aggregator's core (trading/aggregator.py), so a
  5m bar is final with its last minute, session-anchored buckets as live.
- **What the strategy sees** is what it would see live and nothing more: final bars of its
  contracts and timeframes up to now, warm-up bars before the start (no hooks), its orders'
  outcomes as `on_order` / `on_fill` / `on_position` stamped when they happen on the path, and
  with `on_quote` / `on_trade` the path's four prints (open, extremes, close) as quotes and
  trades. Bars are handed over one at a time: there is nothing later in reach.
- **Orders** answer after the hook that sent them returns (never inside it, as on the bus);
  an order sent at a bar's close acts from the next bar's open, one sent on a print acts from
  that point of the path. Every order passes the gate (`Gate`), and a refusal is recorded
  with its rule and comes back as a rejected `on_order`, as live.
- **The referee** (trading/referee/judge.py) sees the account after every fill and at every
  point of every path while a position is open (intraday MLL on open P&L), at the flat-by
  deadline, and at every 17:00 CT roll.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from pydantic import BaseModel

from chillly.calendar import (flat_by_ms, is_trading_day, session_close_ms, session_open_ms,
                              trading_date)
from chillly.clock import MINUTE_MS
from chillly.messages import Bar, FillEvent, Message, OrderEvent, PositionEvent, Quote, Trade
from chillly.timeframes import BucketSpec
from trading.aggregator import Aggregators
from trading.matching.bar_path import FillRules, price_path
from trading.referee.judge import Breach, Referee
from trading.referee.rules import Program, lot_tenths
from trading.referee.verdict import FAILING, Day
from trading.strategy.engine import Engine
from trading.strategy.instance import Instance

from backtest.book import ACCOUNT, Book, Fill, Spec

log = logging.getLogger("backtest")
Row = tuple[int, float, float, float, float, int]     # t, o, h, l, c, volume
_STEP = MINUTE_MS // 3                                 # market ms between path points


class LookAhead(BaseException):
    """The strategy was shown a bar that had not closed yet at market time: the run is void.

    A BaseException, so neither the engine's per-hook guard nor a strategy's own
    `except Exception` can swallow it."""


class Gate(Protocol):
    """The risk gate as a backtest asks it (backtest/gate.py adapts trading/risk)."""

    def check(self, args: dict[str, Any], owner: str, book: Book, now_ms: int,
              last: dict[str, float]) -> tuple[str, str] | None: ...
    def due(self, book: Book, owner: str, now_ms: int, last: dict[str, float]
            ) -> list[tuple[str, Any]]: ...
    def due_needed(self, book: Book, now_ms: int, equity: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    t: int
    client_id: str
    rule: str
    reason: str


@dataclass
class Outcome:
    """What a run produced, for the verdict and the report."""

    fills: list[Fill]
    refusals: list[Refusal]
    breaches: list[Breach]
    days: list[Day]
    equity: list[tuple[int, float, float]] = field(default_factory=list)  # t, equity, floor
    orders_sent: int = 0
    bars: int = 0
    warmup_bars: int = 0
    hook_errors: int = 0


class MarketClock:
    """The run's market time: set by the run as it walks the bars, read by the strategy and
    the aggregator (the `Clock` protocol; nothing in a backtest sleeps)."""

    __slots__ = ("now", "speed")

    def __init__(self, now: int = 0) -> None:
        self.now = now
        self.speed = 0.0

    def now_ms(self) -> int:
        return self.now

    def set(self, now: int) -> None:
        self.now = now

    async def sleep(self, market_seconds: float) -> None:
        raise RuntimeError("nothing sleeps in a backtest: use timers (self.after)")

    async def sleep_until(self, market_ms: int) -> None:
        raise RuntimeError("nothing sleeps in a backtest: use timers (self.after)")


class _Timers:
    def __init__(self) -> None:
        self.due: dict[str, tuple[int, float, bool]] = {}

    def set(self, name: str, now: int, seconds: float, repeat: bool) -> None:
        self.due[name] = (now + int(seconds * 1000), seconds, repeat)

    def drop(self, name: str) -> None:
        self.due.pop(name, None)


class Run:
    def __init__(self, inst: Instance, strategy_cls: type, config: BaseModel,
                 program: Program, rules: dict[str, FillRules], gate: Gate | None,
                 session_tfs: Sequence[str] = ("4h", "1d"), curve_every: int = 30) -> None:
        self.inst = inst
        self.owner = inst.name
        self.program = program
        self.clock = MarketClock(0)
        self.inbox: deque[tuple[str, Any]] = deque()
        self.timers = _Timers()
        self.engine = Engine(inst, strategy_cls, config, self.clock, self._send,
                             log=logging.getLogger(f"strategy.{inst.name}"),
                             max_errors=10**9, on_schedule=self._schedule,
                             on_unschedule=self.timers.drop)
        self._buckets = {tf: BucketSpec.of(tf, session_tfs) for tf in inst.timeframes if tf != "1m"}
        self._seen: tuple[str, int] = ("", 0)
        self.engine.bars = self._bars  # type: ignore[method-assign]
        self.specs = {c: Spec.of(c) for c in inst.contracts}
        for c, spec in self.specs.items():
            self.engine.ticks[c] = spec.tick_size
        self._one = inst.contracts[0] if len(self.specs) == 1 else None
        self.book = Book(self.specs, rules, program.start, lambda m: self.inbox.append(("msg", m)))
        self.gate = gate
        self.referee = Referee({ACCOUNT: program}, {ACCOUNT: program.start}, 0, sessions=True)
        self.refusals: list[Refusal] = []
        self.days: list[Day] = []
        self.equity: list[tuple[int, float, float]] = []
        self.curve_every = curve_every
        self._curve_next = 0
        tfs = [tf for tf in inst.timeframes if tf != "1m"]
        self.aggs = Aggregators([BucketSpec.of(tf, session_tfs) for tf in tfs], self._agg_bar,
                                self.clock) if tfs else None
        self.want_1m = "1m" in inst.timeframes
        self.prints = self.engine.overrides("on_quote") or self.engine.overrides("on_trade")
        self.warming = False
        self.start = 0.0               # where on the current path a new order acts from
        self.last: dict[str, float] = {}
        self._day_end = -1
        self._day: Any = None
        self._day_start = program.start
        self._day_low = program.start
        self._day_fills = 0
        self._flat_lo = self._flat_hi = 0
        self._flat_done = False
        self.orders_sent = 0

    # ---------------------------------------------------------------- the strategy's side

    def _send(self, command: str, args: dict[str, Any]) -> None:
        self.inbox.append(("cmd", (command, args)))

    def _schedule(self, name: str, seconds: float, repeat: bool) -> None:
        self.timers.set(name, self.clock.now_ms(), seconds, repeat)

    def _drain(self) -> None:
        """Answer commands and hand events over, one at a time, each after the hook before it."""
        inbox, engine = self.inbox, self.engine
        while inbox:
            kind, item = inbox.popleft()
            if kind == "cmd":
                self._command(*item)
                continue
            msg: Message = item
            vt = getattr(msg, "vt", None)
            if vt is not None and vt > self.clock.now_ms():
                self.clock.set(vt)
            if isinstance(msg, OrderEvent):
                engine.on_order(msg)
            elif isinstance(msg, FillEvent):
                self._day_fills += 1
                engine.on_fill(msg)
            elif isinstance(msg, PositionEvent):
                engine.on_position(msg)

    def _command(self, command: str, args: dict[str, Any]) -> None:
        now = self.clock.now_ms()
        book = self.book
        if command == "submit":
            self.orders_sent += 1
            refused = self.gate.check(args, self.owner, book, now, self.last) if self.gate \
                else None
            if refused is not None:
                rule, reason = refused
                self.refusals.append(Refusal(now, args["client_id"], rule, reason))
                self.engine.on_reply("submit", args, True,
                                     {"status": "rejected", "rule": rule, "message": reason},
                                     None)
                return
            self.engine.on_reply("submit", args, True,
                                 {"status": "accepted", "order_id": book.next_id}, None)
            book.accept(args, self.owner, now, self.start)
        elif command == "cancel":
            cid = args.get("client_id") or next(
                (k for k, w in book.orders.items() if w.order_id == args.get("order_id")), "")
            book.cancel(cid, now)
        elif command == "flatten":
            book.flatten(self.owner, args.get("contract"), now, self.start)

    def _bars(self, tf: str, n: int, contract: str) -> list[Bar]:
        """The strategy's `self.bars()`, with the look-ahead check: the newest bar it gets must
        have closed by now (its bucket's end, session cuts included)."""
        out = Engine.bars(self.engine, tf, n, contract)
        if out and not self.warming:
            last = out[-1]
            if (tf, last.t) != self._seen:
                spec = self._buckets.get(tf)
                end = spec.bounds(last.t)[1] if spec is not None else last.t + MINUTE_MS
                if end > self.clock.now_ms():
                    raise LookAhead(f"{contract} {tf} bar {last.t} closes at {end}, after market "
                                    f"time {self.clock.now_ms()}")
                self._seen = (tf, last.t)
        return out

    def _agg_bar(self, bar: Bar, resend: bool) -> None:
        if not bar.final or bar.tf not in self.inst.timeframes:
            return
        if self.warming:
            self.engine._append(bar)
        else:
            self.engine.on_bar(bar)
            self._drain()

    # ---------------------------------------------------------------- the run

    def warm(self, rows: dict[str, list[Row]]) -> int:
        """Bars before the start: into the strategy's series without hooks."""
        self.warming = True
        n = 0
        for contract, series in rows.items():
            for r in series:
                bar = Bar(contract=contract, tf="1m", t=r[0], o=r[1], h=r[2], l=r[3], c=r[4],
                          volume=r[5], final=True, origin="poll")
                self.clock.set(r[0] + MINUTE_MS)
                if self.want_1m:
                    self.engine._append(bar)
                if self.aggs is not None:
                    self.aggs.handle_bar(bar)
                self.last[contract] = r[4]
                n += 1
        self.warming = False
        return n

    def go(self, bars: Sequence[tuple[str, Row]], start_ms: int,
           progress: Callable[[int, int], None] | None = None) -> Outcome:
        """Run over `bars` ((contract, row), time order) from market time `start_ms`."""
        self.clock.set(start_ms)
        self.referee = Referee({ACCOUNT: self.program}, {ACCOUNT: self.program.start}, start_ms,
                               sessions=True)
        self._roll(start_ms)
        self.engine.call("on_start")
        self._drain()
        total = len(bars)
        every = max(1, total // 200)
        for i, (contract, r) in enumerate(bars):
            self._bar(contract, r)
            if progress is not None and i % every == 0:
                progress(i, total)
        if bars:
            self._close_day()
        self.engine.call("on_stop")
        if progress is not None:
            progress(total, total)
        return Outcome(self.book.fills, self.refusals, list(self.referee.breaches), self.days,
                       self.equity, self.orders_sent, total,
                       hook_errors=self.engine.counters["hook_errors"])

    def _bar(self, contract: str, r: Row) -> None:
        """One 1m bar: its path (only with orders, a position or prints to hand over), then
        timers, then the final bar at its close. The hot loop of every run: locals, and
        nothing done for what is not there (bench/backtest.py)."""
        t = r[0]
        if t >= self._day_end:
            self._roll(t)
        book = self.book
        clock = self.clock
        active = bool(book.orders) or book.positions[contract].size != 0
        if active or self.prints:
            path = price_path(r[1], r[2], r[3], r[4])
            if self.prints:
                for i in range(4):
                    clock.now = t + i * _STEP
                    self.start = float(i)
                    self._print(contract, path[i], t + i * _STEP)
                    self._path(contract, path, t, float(i + 1) if i < 3 else 3.0)
                self.start = 0.0
            else:
                clock.now = t
                self._path(contract, path, t, 3.0)
            for w in book.orders.values():
                w.rest.start = 0.0          # what is left works from the next bar's open
        self.last[contract] = c = r[4]
        close = t + MINUTE_MS
        if self.timers.due:
            self._timers(close)
        clock.now = close
        bar = Bar(contract, "1m", t, r[1], r[2], r[3], c, r[5], True, 0, "poll")
        if self.want_1m:
            self.engine.on_bar(bar)
            if self.inbox:
                self._drain()
        if self.aggs is not None:
            self.aggs.handle_bar(bar)
        if self.gate is not None and (active or book.orders or book.positions[contract].size) \
                and self.gate.due_needed(book, close, self._equity()):
            self._gate_due(close)
        if self._flat_lo <= close < self._flat_hi and not self._flat_done:
            self._flat(close)
        if close >= self._curve_next:
            self._curve_next = close + self.curve_every * MINUTE_MS
            self.equity.append((close, round(self._equity(), 2),
                                round(self.referee.state[ACCOUNT].floor, 2)))

    def _path(self, contract: str, path: tuple[float, ...], t: int, until: float) -> None:
        """Fill what the path reaches up to `until`; the referee sees the account at every
        fill and at the worst point of the path between fills (the position held there)."""
        book = self.book
        before = len(book.fills)
        span = self._span if (book.positions[contract].size or book.orders) else None
        book.match(contract, path, t, MINUTE_MS, until, self.start,
                   None if span is None else (lambda a, b: span(contract, path, t, a, b)))
        if len(book.fills) > before:
            self._after_fills(contract, book.fills[before:])
        if self.inbox:
            self._drain()

    def _span(self, contract: str, path: tuple[float, ...], t: int, a: float, b: float
              ) -> None:
        """The path's points in [a, b] (a's own only at the bar's open) marked with the
        position held between them: only the adverse extreme can be the lowest equity."""
        size = self.book.positions[contract].size
        if not size:
            return
        if a == 0.0 and b >= 3.0:            # the whole bar: its adverse extreme
            price = min(path) if size > 0 else max(path)
            self._mark(contract, price, t + path.index(price) * _STEP)
            return
        worst = -1
        for i in range(4):
            if (a < i <= b) or (i == 0 and a == 0.0):
                if worst < 0 or (path[i] < path[worst] if size > 0 else path[i] > path[worst]):
                    worst = i
        if worst >= 0:
            self._mark(contract, path[worst], t + worst * _STEP)

    def _after_fills(self, contract: str, fills: list[Fill]) -> None:
        ref = self.referee
        for f in fills:
            lots = self._lots()
            ref.check_lots(ACCOUNT, lots, contract, f.t)
            self._mark(contract, f.price, f.t)

    def _print(self, contract: str, price: float, t: int) -> None:
        tick = self.specs[contract].tick_size
        if self.engine.overrides("on_quote"):
            self.engine.on_quote(Quote(contract=contract, bid=price, ask=price + tick,
                                       last=price, vt=t))
            self._drain()
        if self.engine.overrides("on_trade"):
            self.engine.on_trade(Trade(contract=contract, price=price, size=1, aggressor=0, t=t))
            self._drain()

    def _timers(self, until: int) -> None:
        while True:
            due = [(d, n) for n, (d, _, _) in self.timers.due.items() if d <= until]
            if not due:
                return
            d, name = min(due)
            _, seconds, repeat = self.timers.due[name]
            if repeat:
                self.timers.due[name] = (d + int(seconds * 1000), seconds, repeat)
            self.clock.set(max(d, self.clock.now_ms()))
            self.engine.fire_timer(name)
            if not repeat:
                self.timers.drop(name)
            self._drain()

    # ---------------------------------------------------------------- the account and rules

    def _lots(self) -> int:
        return sum(lot_tenths(self.program, spec.symbol, abs(self.book.positions[c].size))
                   for c, spec in self.specs.items())

    def _equity(self, contract: str | None = None, price: float | None = None) -> float:
        book = self.book
        eq = book.balance
        if self._one is not None and price is not None:     # one contract: no loop
            return eq + book.open_pnl(self._one, price)
        for c in self.specs:
            if book.positions[c].size:
                p = price if c == contract and price is not None else self.last.get(c)
                if p is not None:
                    eq += book.open_pnl(c, p)
        return eq

    def _mark(self, contract: str, price: float, t: int) -> None:
        eq = self._equity(contract, price)
        if eq < self._day_low:
            self._day_low = eq
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
                                           t, self._lots(), contract)
        if broken:
            self.equity.append((t, round(eq, 2), round(st.floor, 2)))

    def _flat(self, now: int) -> None:
        self._flat_done = True
        lots = self._lots()
        held = [c for c in self.specs if self.book.positions[c].size]
        self.referee.check_flat(ACCOUNT, lots, held, now)

    def _gate_due(self, now: int) -> None:
        assert self.gate is not None
        for action, arg in self.gate.due(self.book, self.owner, now, self.last):
            if action == "flatten":
                self.book.flatten(self.owner, arg, now, 0.0)
            elif action == "cancel":
                self.book.cancel(arg, now, "risk gate")
        if self.inbox:
            self._drain()

    def _roll(self, t: int) -> None:
        """A new trading day from `t` on: close the previous one (the referee's 17:00 CT)."""
        if self._day is not None:
            self._close_day()
        day = trading_date(t)
        self._day = day
        self._day_end = session_open_ms(day + timedelta(days=1))
        self.referee.roll(t, {ACCOUNT: self.book.balance})
        if self.gate is not None:
            if self.clock.now:
                self._gate_due(self.clock.now)      # the closing day's last close, balance
            self._gate_due(t)                        # and the new day's start
        self._day_start = self._day_low = self.book.balance
        self._day_fills = 0
        self.book.day_realized = 0.0
        self._flat_done = False
        self._flat_lo, self._flat_hi = (flat_by_ms(day), session_close_ms(day)) \
            if is_trading_day(day) else (0, 0)

    def _close_day(self) -> None:
        failed = any(b.rule in FAILING and trading_date(b.t) == self._day
                     for b in self.referee.breaches)
        end = self.book.balance
        self.days.append(Day(self._day.isoformat(), round(self._day_start, 2), round(end, 2),
                             round(min(self._day_low, end), 2), self._day_fills > 0, failed))
