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
- **The referee** (trading/referee/judge.py, through backtest/judging.py) sees the account
  after every fill, at the worst point of every path while a position is open (intraday MLL
  on open P&L), at the flat-by deadline, and at every 17:00 CT roll.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from chillly.clock import MINUTE_MS
from chillly.messages import Bar, FillEvent, Message, OrderEvent, PositionEvent, Quote, Trade
from chillly.timeframes import BucketSpec
from trading.aggregator import Aggregators
from trading.matching.bar_path import FillRules, price_path
from trading.referee.judge import Breach
from trading.referee.rules import Program
from trading.referee.verdict import Day
from trading.strategy.engine import Engine
from trading.strategy.instance import Instance

from backtest.book import Book, Fill, Spec
from backtest.judging import Judge

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
        self.book = Book(self.specs, rules, program.start, lambda m: self.inbox.append(("msg", m)))
        self.gate = gate
        self.refusals: list[Refusal] = []
        tfs = [tf for tf in inst.timeframes if tf != "1m"]
        self.aggs = Aggregators([BucketSpec.of(tf, session_tfs) for tf in tfs], self._agg_bar,
                                self.clock) if tfs else None
        self.want_1m = "1m" in inst.timeframes
        self.prints = self.engine.overrides("on_quote") or self.engine.overrides("on_trade")
        self.warming = False
        self.start = 0.0               # where on the current path a new order acts from
        self.last: dict[str, float] = {}
        self.judge = Judge(program, self.book, self.specs, self.last, curve_every)
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
        self.judge.start(start_ms)
        self._roll(start_ms)
        self.engine.call("on_start")
        self._drain()
        total = len(bars)
        every = max(1, total // 200)
        step = self._bar
        if progress is None:
            for contract, r in bars:
                step(contract, r)
        else:
            for i, (contract, r) in enumerate(bars):
                step(contract, r)
                if i % every == 0:
                    progress(i, total)
        if bars:
            self.judge.close_day()
        self.engine.call("on_stop")
        if progress is not None:
            progress(total, total)
        j = self.judge
        return Outcome(self.book.fills, self.refusals, list(j.referee.breaches), j.days,
                       j.equity, self.orders_sent, total,
                       hook_errors=self.engine.counters["hook_errors"])

    def _bar(self, contract: str, r: Row) -> None:
        """One 1m bar: its path (only with orders, a position or prints to hand over), then
        timers, then the final bar at its close. The hot loop of every run: locals, and
        nothing done for what is not there (bench/backtest.py)."""
        t = r[0]
        if t >= self.judge.day_end:
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
        judge = self.judge
        if self.gate is not None and (active or book.orders or book.positions[contract].size) \
                and self.gate.due_needed(book, close, judge.equity_at()):
            self._gate_due(close)
        if judge.flat_lo <= close < judge.flat_hi:
            judge.flat_check(close)
        if close >= judge.curve_next:
            judge.sample(close)

    def _path(self, contract: str, path: tuple[float, ...], t: int, until: float) -> None:
        """Fill what the path reaches up to `until`; the referee sees the account at every
        fill and at the worst point of the path between fills (the position held there)."""
        book = self.book
        before = len(book.fills)
        span = self.judge.span if (book.positions[contract].size or book.orders) else None
        book.match(contract, path, t, MINUTE_MS, until, self.start,
                   None if span is None else (lambda a, b: span(contract, path, t, a, b)))
        if len(book.fills) > before:
            self.judge.fills(contract, book.fills[before:])
        if self.inbox:
            self._drain()

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
        """A new trading day from `t` on (the referee's 17:00 CT roll); the gate sees the
        closing day's last close (its end-of-day balance) and the new day's start."""
        if self.gate is not None and self.clock.now:
            self._gate_due(self.clock.now)
        self.judge.roll(t)
        if self.gate is not None:
            self._gate_due(t)
