"""The engine that drives one strategy instance: its view of the market and of its own orders.

No I/O and no wall clock here: whoever drives it (the strategy host on the bus, a backtest over
stored bars, a unit test on a ManualClock) feeds it typed messages and command replies, gets its
outgoing commands through `send`, and gives it the market time through a `Clock`. It implements
the `Context` the strategy's helpers call (trading/strategy/api.py).

Every hook goes through `call`: the driver's `Watch` is told before and after (the host's
watchdog times it), and an exception is logged with its traceback and counted; `max_errors` in
a row is fatal (`HostFatal`), as is a MemoryError (the address-space limit was hit: nothing
after it can be trusted).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from enum import IntEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from chillly.clock import Clock
from chillly.messages import Bar, FillEvent, OrderEvent, PositionEvent, Quote, Trade
from trading.strategy.api import TERMINAL, Position, Strategy
from trading.strategy.catchup import CatchUp
from trading.strategy.instance import Instance
from trading.venue_codes import OrderStatus, OrderType, PositionType, Side

# The venue's order type of each kind a strategy sends, for the pending orders it sees before
# the gateway's reply.
_ORDER_TYPE = {"limit": OrderType.LIMIT, "market": OrderType.MARKET, "stop": OrderType.STOP}
_SIDE = {"buy": Side.BUY, "sell": Side.SELL}

Send = Callable[[str, dict[str, Any]], None]

#: Refused orders answered with `on_order` per catch-up bar at most: a strategy that resubmits
#: on every rejection must not keep the engine in a loop (beyond, they are dropped unanswered).
MAX_CATCHUP_ANSWERS = 100


class HostFatal(Exception):
    """The strategy cannot go on (the host exits 1, supervisord restarts it with back-off)."""


class Watch:
    """Told before (`arm`) and after (`disarm`) every hook; the host's watchdog
    (strategy_host/watchdog.py) times hooks with it, a backtest needs none."""

    def arm(self, hook: str) -> None:
        pass

    def disarm(self) -> None:
        pass


class Engine:
    def __init__(self, inst: Instance, strategy_cls: type[Strategy], config: BaseModel,
                 clock: Clock, send: Send, *, log: logging.Logger | None = None,
                 max_errors: int = 5, watch: Watch | None = None,
                 on_schedule: Callable[[str, float, bool], None] | None = None,
                 on_unschedule: Callable[[str], None] | None = None,
                 max_bar_age_ms: int = 0) -> None:
        self.name = inst.name
        self.inst = inst
        self.contracts: list[str] = list(inst.contracts)   # ids once the host resolved them
        self.timeframes: list[str] = list(inst.timeframes)
        self.clock = clock
        self.send = send
        self.log = log or logging.getLogger(f"strategy.{inst.name}")
        self.max_errors = max_errors
        self.watch = watch or Watch()
        self._on_schedule = on_schedule
        self._on_unschedule = on_unschedule
        self.keep = max(inst.warmup, 500)
        self._bars: dict[tuple[str, str], deque[Bar]] = {}
        self.positions: dict[str, Position] = {}
        self.orders: dict[str, OrderEvent] = {}
        self.ticks: dict[str, float] = {}
        self.timers: dict[str, tuple[float, bool]] = {}
        self.account = 0
        self.next_n = 1
        self.errors_in_row = 0
        #: what `chillly strategies` shows of a strategy in trouble (the host records them):
        #: its last exception, as one line, and its orders' last refusals with their rule
        self.last_error: str | None = None
        self.refusals: deque[dict[str, Any]] = deque(maxlen=5)
        self.counters: dict[str, Any] = {
            "bars": 0, "quotes": 0, "trades": 0, "orders_sent": 0, "order_rejects": 0,
            "order_events": 0, "fills": 0, "hook_errors": 0, "hook_calls": 0,
            "catchup_bars": 0, "catchup_refused": 0,
        }
        # Catch-up bars (trading/strategy/catchup.py): while one's on_bar runs, `_catchup` is
        # that bar; the orders it makes wait in `_refused` for their rejection.
        self.catchup = CatchUp(max_bar_age_ms, self.log)
        self._catchup: Bar | None = None
        self._refused: deque[str] = deque()
        self.strategy = strategy_cls(self, config)

    # ---------------------------------------------------------------- hooks

    def overrides(self, hook: str) -> bool:
        """Whether the strategy's class implements `hook` (the host subscribes accordingly)."""
        return getattr(type(self.strategy), hook) is not getattr(Strategy, hook)

    def call(self, hook: str, *args: Any) -> Any:
        fn = getattr(self.strategy, hook)
        self.watch.arm(hook)
        try:
            result = fn(*args)
        except MemoryError:
            self.last_error = f"{hook}: out of memory (STRATEGY_MEMORY_MB)"
            self.log.critical("%s: out of memory (STRATEGY_MEMORY_MB): exiting", hook)
            raise HostFatal("out of memory") from None
        except Exception as exc:
            self.counters["hook_errors"] += 1
            self.errors_in_row += 1
            self.last_error = f"{hook}: {type(exc).__name__}: {exc}"
            self.log.exception("%s raised (%d in a row)", hook, self.errors_in_row)
            if self.errors_in_row >= self.max_errors:
                raise HostFatal(f"{self.errors_in_row} hook errors in a row") from None
            return None
        finally:
            self.watch.disarm()
            self.counters["hook_calls"] += 1
        if hook != "on_save":   # the periodic save succeeding says nothing about the others
            self.errors_in_row = 0
        return result

    # ---------------------------------------------------------------- market data in

    def warm(self, contract: str, tf: str, rows: list[list[Any]]) -> int:
        """Final bars from a series `window` ([t,o,h,l,c,volume,final] rows), no hook called."""
        n = 0
        for r in rows:
            if r[6]:
                n += self._append(Bar(contract=contract, tf=tf, t=r[0], o=r[1], h=r[2], l=r[3],
                                      c=r[4], volume=r[5], final=True, origin="agg"))
        return n

    def _append(self, bar: Bar) -> int:
        key = (bar.contract, bar.tf)
        series = self._bars.get(key)
        if series is None:
            series = self._bars[key] = deque(maxlen=self.keep)
        if series and bar.t <= series[-1].t:
            if bar.t == series[-1].t:
                series[-1] = bar     # a corrected final replaces; no second on_bar
            return 0
        series.append(bar)
        return 1

    def on_bar(self, bar: Bar, published_ms: int | None = None) -> None:
        """A bar in. `published_ms`: the market time its publisher sent it (the envelope's
        `ts`), by which a catch-up bar is judged: a bar the feed sent on time is current
        however long this process took to deliver it (a host still starting, a busy machine);
        without it, now."""
        if not bar.final or bar.origin == "trades":
            return
        if not self._append(bar):
            return
        self.counters["bars"] += 1
        judged_at = published_ms if published_ms is not None else self.clock.now_ms()
        reason = self.catchup.judge(bar, judged_at)
        if reason is None:
            self.call("on_bar", bar)
            return
        self.counters["catchup_bars"] += 1
        self._catchup = bar
        try:
            self.call("on_bar", bar)
            # Answered after the hook, never from inside it (hooks do not nest); what the
            # strategy sends from those on_order calls is still this bar's, refused alike.
            answered = 0
            while self._refused:
                cid = self._refused.popleft()
                answered += 1
                if answered > MAX_CATCHUP_ANSWERS:
                    self.catchup.refused(bar)
                    self.counters["catchup_refused"] += 1
                    self.orders.pop(cid, None)
                    continue
                self._reject(cid, self.orders.get(cid), reason, "catchup",
                             note=self.catchup.refused(bar))
        finally:
            self._catchup = None
            self._refused.clear()

    def on_quote(self, quote: Quote) -> None:
        self.counters["quotes"] += 1
        self.call("on_quote", quote)

    def on_trade(self, trade: Trade) -> None:
        self.counters["trades"] += 1
        self.call("on_trade", trade)

    # ---------------------------------------------------------------- trading events in

    @staticmethod
    def key(order: OrderEvent) -> str:
        return order.client_id or f"#{order.order_id}"

    def on_order(self, order: OrderEvent) -> None:
        self.counters["order_events"] += 1
        order = _order_codes(order)
        self._track(order)
        self.call("on_order", order)

    def _track(self, order: OrderEvent) -> None:
        key = self.key(order)
        if order.state in TERMINAL:
            self.orders.pop(key, None)
        else:
            self.orders[key] = order

    def on_fill(self, fill: FillEvent) -> None:
        self.counters["fills"] += 1
        self.call("on_fill", dataclasses.replace(fill, side=_code(Side, fill.side)))

    def on_position(self, event: PositionEvent) -> None:
        pos = self._position(event)
        self.positions[pos.contract] = pos
        self.call("on_position", pos)

    @staticmethod
    def _position(e: PositionEvent) -> Position:
        sign = 1 if e.side == PositionType.LONG else -1 if e.side == PositionType.SHORT else 0
        return Position(contract=e.contract, size=sign * e.size, avg_price=e.avg_price,
                        realized_pnl=e.realized_pnl, open_pnl=e.open_pnl)

    def sync(self, orders: list[dict[str, Any]], positions: list[dict[str, Any]]) -> None:
        """The gateway's view of our open orders and positions at start (no hooks)."""
        self.orders = {k: v for k, v in self.orders.items() if v.state == "pending"}
        for o in orders:
            order = OrderEvent(**{k: o[k] for k in OrderEvent._fields if k in o})
            self._track(_order_codes(order))
        for p in positions:
            pos = self._position(PositionEvent(**{k: p[k] for k in PositionEvent._fields
                                                  if k in p}))
            self.positions[pos.contract] = pos

    def on_reply(self, command: str, args: dict[str, Any], ok: bool, result: Any,
                 error: str | None) -> None:
        """The gateway's answer to one of our commands (None result: no answer at all)."""
        if command != "submit":
            if not ok or (isinstance(result, dict) and result.get("status") not in
                          (None, "accepted", "ok", "cancelled", "done")):
                self.log.warning("%s %s: %s", command, args, error or result)
            return
        cid = args["client_id"]
        status = result.get("status") if isinstance(result, dict) else None
        current = self.orders.get(cid)
        if ok and status == "accepted":
            if current is not None and current.state == "pending":
                self.orders[cid] = _replace(current, state="accepted",
                                            order_id=int(result.get("order_id") or 0))
            return
        if ok and status in ("unknown", "not_ready") or result is None:
            # unknown: the gateway is reconciling it; no answer: it may or may not exist.
            # Either way it stays listed until an order event or the next sync settles it.
            self.log.warning("submit %s: %s", cid, error or result or "no reply")
            if status == "not_ready":
                self._reject(cid, current, "gateway not ready")
            return
        reason = (result.get("message") or result.get("rule")) if isinstance(result, dict) \
            else error
        rule = result.get("rule") if isinstance(result, dict) else None
        self._reject(cid, current, str(reason or error or "rejected"), rule)

    def _reject(self, cid: str, current: OrderEvent | None, reason: str,
                rule: str | None = None, note: bool = True) -> None:
        """`note`: log and keep it among the last refusals (a catch-up run notes its first
        only: its run is logged once, and 100 of them must not hide the gateway's)."""
        if note:
            # In the strategy's own log, not only the gateway's: why its order did not go out.
            self.log.warning("order %s refused: %s%s", cid, f"{rule}: " if rule else "", reason)
            self.refusals.append({"client_id": cid, "rule": rule, "message": reason,
                                  "at_ms": self.clock.now_ms()})
        if rule == "catchup":
            self.counters["catchup_refused"] += 1
        else:
            self.counters["order_rejects"] += 1
        self.orders.pop(cid, None)
        if current is not None:
            self.call("on_order", _replace(current, state="rejected", reason=reason))

    # ---------------------------------------------------------------- Context for strategies

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def bars(self, tf: str, n: int, contract: str) -> list[Bar]:
        series = self._bars.get((contract, tf))
        if not series:
            return []
        return list(series)[-n:] if n < len(series) else list(series)

    def position(self, contract: str) -> Position:
        return self.positions.get(contract) or Position(contract=contract)

    def open_orders(self, contract: str | None) -> list[OrderEvent]:
        return [o for o in self.orders.values() if contract is None or o.contract == contract]

    def submit(self, side: str, size: int, contract: str, limit: float | None,
               stop: float | None, sl: int | None, tp: int | None) -> str:
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if limit is not None and stop is not None:
            raise ValueError("give limit= or stop=, not both")
        for what, ticks in (("sl", sl), ("tp", tp)):
            if ticks is not None and (not isinstance(ticks, int) or ticks <= 0):
                raise ValueError(f"{what} is a positive number of ticks, got {ticks!r}")
        kind = "limit" if limit is not None else "stop" if stop is not None else "market"
        cid = f"{self.name}-{self.next_n}"
        self.next_n += 1
        args: dict[str, Any] = {"client_id": cid, "contract": contract, "side": side,
                                "size": size, "type": kind}
        if limit is not None:
            args["limit_price"] = float(limit)
        if stop is not None:
            args["stop_price"] = float(stop)
        if sl is not None:
            args["sl_ticks"] = sl
        if tp is not None:
            args["tp_ticks"] = tp
        self.orders[cid] = OrderEvent(
            account=self.account, order_id=0, contract=contract, status=OrderStatus.NONE,
            side=_SIDE[side], size=size, order_type=_ORDER_TYPE[kind],
            owner=self.name, state="pending", limit_price=args.get("limit_price"),
            stop_price=args.get("stop_price"), client_id=cid)
        if self._catchup is not None:
            # A catch-up bar's order: pending until its on_bar returns, then rejected; never
            # sent. Cancels and flattens still go: they only take risk off.
            self._refused.append(cid)
            return cid
        self.counters["orders_sent"] += 1
        self.send("submit", args)
        return cid

    def cancel(self, client_id: str) -> None:
        if client_id.startswith("#"):
            self.send("cancel", {"order_id": int(client_id[1:])})
        else:
            self.send("cancel", {"client_id": client_id})

    def flatten(self, contract: str | None) -> None:
        args: dict[str, Any] = {"owner": self.name}
        args.update({"contract": contract} if contract else {"all": True})
        self.send("flatten", args)

    def schedule(self, name: str, seconds: float, repeat: bool) -> None:
        if seconds <= 0:
            raise ValueError("a timer needs a positive number of seconds")
        self.timers[name] = (seconds, repeat)
        if self._on_schedule is not None:
            self._on_schedule(name, seconds, repeat)

    def unschedule(self, name: str) -> None:
        self.timers.pop(name, None)
        if self._on_unschedule is not None:
            self._on_unschedule(name)

    def fire_timer(self, name: str) -> None:
        spec = self.timers.get(name)
        if spec is None:
            return
        if not spec[1]:
            self.timers.pop(name, None)
        self.call("on_timer", name)

    def tick_size(self, contract: str) -> float | None:
        return self.ticks.get(contract)

    # ---------------------------------------------------------------- state and figures

    def save(self) -> dict[str, Any]:
        state = self.call("on_save")
        return {"next_n": self.next_n, "strategy": state if isinstance(state, dict) else {}}

    def load(self, saved: dict[str, Any]) -> None:
        self.next_n = max(self.next_n, int(saved.get("next_n", 1)))
        if saved.get("strategy"):
            self.call("on_load", dict(saved["strategy"]))

    def net_position(self) -> int:
        return sum(p.size for p in self.positions.values())

    def day_pnl(self) -> float:
        return round(sum(p.realized_pnl + p.open_pnl for p in self.positions.values()), 2)


def _replace(order: OrderEvent, **changes: Any) -> OrderEvent:
    return dataclasses.replace(order, **changes)


E = TypeVar("E", bound=IntEnum)


def _code(enum: type[E], value: int) -> E | int:
    """The venue's integer as the core's enum (a code the enum does not know stays an int: a
    strategy must not fail on a venue novelty)."""
    try:
        return enum(value)
    except ValueError:
        return value


def _order_codes(order: OrderEvent) -> OrderEvent:
    """An order event as a strategy sees it: side, type and status as the core's enums."""
    return dataclasses.replace(order, side=_code(Side, order.side),
                               order_type=_code(OrderType, order.order_type),
                               status=_code(OrderStatus, order.status))
