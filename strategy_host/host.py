"""The sandboxed side of one strategy instance (`python -m strategy_host NAME`, started by its
trusted parent, strategy_host/parent.py): wires the engine to the bus, which here is the
socketpair to the parent (strategy_host/pipe.py): this process has no bus socket of its own.

Start, in this order (ARCHITECTURE.md §9): resolve the contracts and subscribe (buffering),
load the saved state (`on_load`), warm the bars up from the series cache, ask the gateway for
our open orders and position, `on_start`, then replay what arrived meanwhile and go live.
The replay leaves out the order and position events that arrived before the gateway's answer
they are part of: the gateway builds an answer and sends it in one step, and the bus keeps
one publisher's order, so those events are already in the view `on_start` saw, and replaying
them would show the strategy its orders and position going back in time.
It subscribes only to its own topics: its contracts' bars of its timeframes, quotes and trades
only if the class has those hooks, contract metadata, and its own order/fill/position events.
Commands go out one at a time in the order the strategy made them (a cancel never overtakes
the submit it cancels); the client-id counter is saved before each submit leaves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import threading
import time
from typing import Any, ClassVar

from chillly import topics
from chillly.bus import Bus, RequestTimeout
from chillly.codec import Envelope, encode_payload
from chillly.errors import StartupError
from chillly.messages import Alarm, Bar, ContractInfo, FillEvent, OrderEvent, PositionEvent
from chillly.messages import Heartbeat, Quote, Trade
from chillly.clock import Clock
from chillly.process import Service
from chillly.settings import Settings
from chillly.timeframes import bar_problem
from pydantic import BaseModel
from trading.strategy.api import TERMINAL, Strategy
from trading.strategy.engine import Engine, HostFatal
from trading.strategy.instance import Instance
from strategy_host.pipe import ALARM_FD_ENV, FD_ENV, PUB, PipeBackend, send_blocking
from strategy_host.sandbox import attempts
from strategy_host.settings import HostSettings
from strategy_host.incidents import Incidents, crash_loop
from strategy_host.state import RunMarker, StateFile
from strategy_host.watchdog import Watchdog

log = logging.getLogger("host")

_DATA = ("bar.", "quote.", "trade.", "order.", "fill.", "position.", "contract.")


class AlarmPublisher:
    """The watchdog's own way out: it must speak while the event loop is stuck, so it writes
    whole frames to its own socketpair to the trusted parent (blocking, from its thread). It
    publishes as `strategy-NAME.watchdog` (`name` in the alarm is the host's), so its seq on
    the alarm topic is a sequence of its own beside the event loop's."""

    def __init__(self, settings: HostSettings, name: str, clock: Any) -> None:
        self.name, self.clock = name, clock
        fd = os.environ.get(ALARM_FD_ENV)
        self.sock = socket.socket(fileno=int(fd)) if fd else None
        self.seq = 0
        self.lock = threading.Lock()

    def __call__(self, active: bool, text: str, code: str = "hook_budget") -> None:
        if self.sock is None:
            return
        with self.lock:
            self.seq += 1
            seq = self.seq
        msg = Alarm(name=self.name, code=code, active=active, text=text)
        payload = encode_payload(msg.body(), f"{self.name}.watchdog", seq, self.clock.now_ms())
        try:
            send_blocking(self.sock, PUB, topics.alarm(self.name), payload, self.lock)
        except OSError:
            pass   # the parent is gone: this process is ending too

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


class Host(Service):
    name = "strategy-host"
    settings_cls = HostSettings
    settings: HostSettings
    # Set by strategy_host.__main__ before the lifecycle starts (after the sandbox is up).
    inst: ClassVar[Instance]
    strategy_cls: ClassVar[type[Strategy]]
    config: ClassVar[BaseModel]
    statm_fd: ClassVar[int | None] = None
    sandbox_line: ClassVar[str] = ""

    @property
    def process_name(self) -> str:
        return self.settings.process_name

    @classmethod
    def make_bus(cls, settings: Settings, name: str, clock: Clock) -> Bus:
        """No bus socket: the socketpair to the trusted parent (strategy_host/parent.py),
        which alone is on the bus and decides what goes on."""
        sock = socket.socket(fileno=int(os.environ[FD_ENV]))
        return Bus.over(PipeBackend(sock), name, clock=clock, hwm=settings.bus_hwm,
                        max_message_bytes=settings.bus_max_message_bytes)

    async def on_start(self) -> None:
        s = self.settings
        # Restarts, the last error, refusals: what `chillly strategies` shows (incidents.py).
        self.incidents = Incidents(s.state_dir)
        self.incidents.started(time.time())
        self.live = False
        self.fatal: str | None = None
        self.buffer: list[tuple[Any, Any]] = []
        # rid -> len(buffer) when its reply arrived: where a gateway answer sits in the stream.
        self._reply_at: dict[str, int] = {}
        self._synced_at: tuple[int, int] | None = None   # (orders, positions) answers
        self.outbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.timer_tasks: dict[str, asyncio.Task[None]] = {}
        self.tasks: list[asyncio.Task[Any]] = []
        self.lag_ms = 0
        self.lag_max_ms = 0
        self.save_now = asyncio.Event()
        self.first_live_ms: int | None = None
        self.watch_alarm = AlarmPublisher(s, self.process_name, self.clock)
        attempts.armed = True     # from here on, a new socket or process is the strategy's
        self.watchdog = Watchdog(s.strategy_hook_budget_ms, s.strategy_hook_kill_s,
                                 self.watch_alarm)
        self.watchdog.start()
        self.tasks.append(asyncio.get_running_loop().create_task(self.watchdog.keepalive()))
        self.engine = Engine(self.inst, self.strategy_cls, self.config, self.clock, self._send,
                             log=logging.getLogger(f"strategy.{self.inst.name}"),
                             max_errors=s.strategy_max_errors, watch=self.watchdog,
                             on_schedule=self._schedule, on_unschedule=self._unschedule,
                             max_bar_age_ms=s.bar_allowance_ms)
        self.store = StateFile(s.state_dir)
        self.bus.on_gap = self._on_gap
        self.bus.on(topics.reply(self.bus.instance), self._note_reply)
        self.counters.update(data_gaps=0, data_lost=0)
        # No broker yet is not a configuration error: BusNotReady ends the start with exit 1,
        # which supervisord restarts (exit 2 would leave the strategy stopped for good).
        await self.bus.ready(timeout=15)
        # A crash loop is unhealthy in `chillly status`, not a program RUNNING between crashes.
        self.tasks.append(asyncio.get_running_loop().create_task(self.alarm_while(
            lambda: crash_loop(self.incidents.data, time.time()), "crash_loop", 30.0)))
        await self._resolve_and_subscribe()
        saved = self.store.load()
        # What a counter-only save (before each submit) keeps of the strategy's own state
        # until the next full save: the loaded state, never an empty one.
        self._last_state: dict[str, Any] = {"strategy": saved.get("strategy", {}), **saved}
        self._guard(self.engine.load, saved)
        await self._warm()
        await self._sync()
        self._guard(self.engine.call, "on_start")
        self._replay()
        self.live = True
        loop = asyncio.get_running_loop()
        self.tasks += [loop.create_task(self._sender()), loop.create_task(self._saver())]
        log.info("live: %s on %s %s (%d bars warm)", self.inst.name,
                 ",".join(self.engine.contracts), ",".join(self.engine.timeframes),
                 sum(len(self.engine.bars(tf, 10**6, c)) for c in self.engine.contracts
                     for tf in self.engine.timeframes))

    # ---------------------------------------------------------------- start-up steps

    def _note_reply(self, env: Envelope) -> None:
        rid = env.payload.get("rid")
        if isinstance(rid, str) and not self.live:
            self._reply_at.setdefault(rid, len(self.buffer))   # the first copy counts

    def _replay(self) -> None:
        """What arrived while starting, in order, less the order and position events the
        gateway's answers already held (see the module's docstring)."""
        orders_at, positions_at = self._synced_at or (0, 0)
        stale = 0
        for i, (handler, msg) in enumerate(self.buffer):
            if (i < orders_at and handler == self.engine.on_order) or (
                    i < positions_at and handler == self.engine.on_position):
                stale += 1
                continue
            self._guard(handler, msg)
        self.buffer = []
        self._reply_at.clear()
        self.counters["superseded_at_start"] = stale
        if stale:
            log.info("%d order/position event(s) from before the gateway's answer left out",
                     stale)

    async def _ask(self, service: str, command: str, args: dict[str, Any],
                   timeout: float = 2.0, attempts: int = 3,
                   rid: str | None = None) -> tuple[bool, Any, str | None]:
        try:
            reply = await self.bus.request(service, command, args, timeout=timeout,
                                           attempts=attempts, rid=rid)
        except RequestTimeout:
            return False, None, f"no reply from {service}"
        return reply.ok, reply.result, reply.error

    async def _resolve_and_subscribe(self) -> None:
        """Contract symbols to ids (the series cache resolves them), then our subscriptions."""
        resolved = []
        for text in self.inst.contracts:
            # Ask the feeds to carry it (idempotent). The venue not knowing it is a mistake in
            # strategies.toml (exit 2); a subscriptions process that does not answer is not.
            ok, answer, error = await self._ask("subscriptions", "subscribe", {"contract": text},
                                                2.0, 2)
            if not ok and error and ("unknown contract" in error
                                     or "no active contract" in error):
                raise StartupError(f"{self.settings.strategies_file}: [strategies."
                                   f"{self.inst.name}] contracts: unknown contract {text!r} "
                                   f"({error})")
            # The contract's metadata (its tick) comes with the answer, so the strategy has it
            # in on_start; the periodic `contract.` publications keep it current.
            info = answer.get("info") if ok and isinstance(answer, dict) else None
            tick = info.get("tick_size") if isinstance(info, dict) else None
            if isinstance(tick, (int, float)) and tick > 0:
                self.engine.ticks[str(answer["contract"])] = float(tick)
            else:
                log.warning("no contract metadata for %s at start (%s): tick_size() is None "
                            "until the feeds publish it", text, error or "not in the answer")
            # The subscriptions service resolved the symbol at the venue: ask the series cache
            # by that id. By symbol, the cache knows a contract only once the store holds its
            # metadata, which the feeds broadcast when it resolves and then every
            # FEED_CONTRACT_INFO_INTERVAL: a store that joined after the first broadcast left
            # the host waiting up to a minute ("series does not know ES yet").
            ask_for = str(answer["contract"]) if ok and isinstance(answer, dict) \
                and isinstance(answer.get("contract"), str) else text
            while True:
                ok, result, error = await self._ask(
                    "series", "window", {"contract": ask_for, "tf": self.inst.timeframes[0],
                                         "last": 1})
                if ok:
                    resolved.append(result["contract"])
                    break
                if error and "unknown contract" in error:
                    # Not in the database yet: a fresh subscription needs a moment of history.
                    log.info("series does not know %s yet; waiting", text)
                else:
                    log.warning("series window for %s: %s; retrying", text, error)
                await asyncio.sleep(1.0)
                if self.stopping.is_set():
                    raise StartupError("stopped during start-up")
        self.engine.contracts = resolved
        bus, eng, name = self.bus, self.engine, self.inst.name
        for c in resolved:
            for tf in eng.timeframes:
                bus.on(topics.bar(tf, c), self._on_bar)
            if eng.overrides("on_quote"):
                bus.on(topics.quote(c), self._on_quote)
            if eng.overrides("on_trade"):
                bus.on(topics.trade(c), self._on_trade)
            bus.on(topics.contract_info(c), self._on_contract)
        account = self.settings.strategy_account
        while account is None:
            ok, result, error = await self._ask("gateway", "account", {}, 1.0, 2)
            if ok and isinstance(result, dict) and result.get("account_id") is not None:
                account = int(result["account_id"])
                break
            log.info("waiting for the gateway to name the account (%s)", error or result)
            await asyncio.sleep(1.0)
            if self.stopping.is_set():
                raise StartupError("stopped during start-up")
        eng.account = account
        bus.on(topics.order_event(account, name), self._on_order)
        bus.on(topics.fill_event(account, name), self._on_fill)
        bus.on(topics.position_event(account, name), self._on_position)
        await bus.ready(timeout=15)   # every subscription above reached the broker

    async def _warm(self) -> None:
        if self.inst.warmup <= 0:
            return
        for c in self.engine.contracts:
            for tf in self.engine.timeframes:
                ok, result, error = await self._ask(
                    "series", "window", {"contract": c, "tf": tf, "last": self.inst.warmup})
                if ok:
                    n = self.engine.warm(c, tf, result["bars"])
                    log.info("warmed %d %s bars of %s", n, tf, c)
                else:
                    log.warning("no warm-up for %s %s: %s", c, tf, error)

    async def _sync(self) -> None:
        """Our open orders and positions from the gateway; the id counter past its ids."""
        name = self.inst.name
        for attempt in range(30):
            rid_orders, rid_positions = self.bus.new_rid(), self.bus.new_rid()
            ok, result, error = await self._ask("gateway", "orders",
                                                {"owner": name, "open_only": False}, 1.0, 2,
                                                rid=rid_orders)
            ok2, result2, error2 = await self._ask("gateway", "positions", {"owner": name},
                                                   1.0, 2, rid=rid_positions)
            if not (ok and ok2 and isinstance(result, dict) and isinstance(result2, dict)):
                log.warning("gateway sync incomplete (%s): orders and position start empty",
                            error or error2 or result)
                return
            if result.get("ready", True) is not False:
                break
            # Still reconciling with the venue: its lists are not the truth yet.
            log.info("gateway not ready yet; asking again")
            await asyncio.sleep(1.0)
            if self.stopping.is_set():
                raise StartupError("stopped during start-up")
        orders = [o for o in result.get("orders", []) if o.get("owner") == name]
        for o in orders:
            cid = o.get("client_id") or ""
            head, _, n = cid.rpartition("-")
            if head == name and n.isdigit():
                self.engine.next_n = max(self.engine.next_n, int(n) + 1)
        open_orders = [o for o in orders if o.get("state") not in TERMINAL]
        positions = [p for p in result2.get("positions", []) if p.get("owner") == name]
        self.engine.sync(open_orders, positions)
        self._synced_at = (self._reply_at.get(rid_orders, 0),
                           self._reply_at.get(rid_positions, 0))
        log.info("gateway: %d open orders, net position %d", len(open_orders),
                 self.engine.net_position())

    # ---------------------------------------------------------------- events in

    def _on_gap(self, src: str, topic: str, first: int, last: int) -> None:
        """Loss on our own topics (market data, our orders) is what matters: `data_gaps`,
        `data_lost` in the heartbeat (the bus's own `gaps` also counts its readiness probes)."""
        if topic.startswith(_DATA):
            self.counters["data_gaps"] = self.counters.get("data_gaps", 0) + 1
            self.counters["data_lost"] = self.counters.get("data_lost", 0) + last - first + 1
        log.warning("lost %d message(s) from %s on %s (seq %d..%d)", last - first + 1, src,
                    topic, first, last)

    def _guard(self, fn: Any, *args: Any) -> Any:
        """Run engine work; a fatal condition stops the host with exit 1."""
        if self.fatal is not None:
            return None
        try:
            return fn(*args)
        except HostFatal as exc:
            self.fatal = str(exc)
            log.error("fatal: %s", exc)
            self.stopping.set()
            return None

    def _lag(self, env: Envelope) -> None:
        lag = self.clock.now_ms() - env.payload["ts"]
        self.lag_ms = lag
        if lag > self.lag_max_ms:
            self.lag_max_ms = lag
        if self.first_live_ms is None and self.live:
            self.first_live_ms = int((time.monotonic() - self.started_at) * 1000)

    def _deliver(self, env: Envelope, handler: Any) -> None:
        msg = env.message()
        if not self.live:
            self.buffer.append((handler, msg))
            return
        self._lag(env)
        self._guard(handler, msg)

    def _on_bar(self, env: Envelope) -> None:
        # A schema-valid bar no venue can produce (low above high, a price that is not a
        # number, a time off the minute or far ahead) never reaches the strategy: it would
        # trade on it, and a far-future bar would make every real one look old.
        tolerance = float(getattr(self.settings, "bar_future_tolerance", 120.0))
        if bar_problem(env.payload, self.clock.now_ms(), int(tolerance * 1000)):
            self.counters["rejected_bars"] = self.counters.get("rejected_bars", 0) + 1
            return
        published = env.payload["ts"]
        self._deliver(env, lambda bar: self.engine.on_bar(bar, published))

    def _on_quote(self, env: Envelope) -> None:
        self._deliver(env, self.engine.on_quote)

    def _on_trade(self, env: Envelope) -> None:
        self._deliver(env, self.engine.on_trade)

    def _on_order(self, env: Envelope) -> None:
        self._deliver(env, self.engine.on_order)

    def _on_fill(self, env: Envelope) -> None:
        self._deliver(env, self._fill)

    def _fill(self, fill: FillEvent) -> None:
        self.engine.on_fill(fill)
        self.save_now.set()

    def _on_position(self, env: Envelope) -> None:
        self._deliver(env, self.engine.on_position)

    def _on_contract(self, env: Envelope) -> None:
        info = env.message()
        if isinstance(info, ContractInfo):
            self.engine.ticks[info.contract] = info.tick_size

    # ---------------------------------------------------------------- commands out

    def _send(self, command: str, args: dict[str, Any]) -> None:
        self.outbox.put_nowait((command, args))

    async def _sender(self) -> None:
        while True:
            command, args = await self.outbox.get()
            if command == "submit":
                await self._save(counter_only=True)
            ok, result, error = await self._ask("gateway", command, args)
            self._guard(self.engine.on_reply, command, args, ok, result, error)

    # ---------------------------------------------------------------- timers

    def _schedule(self, name: str, seconds: float, repeat: bool) -> None:
        self._unschedule(name)

        async def tick() -> None:
            while True:
                await self.clock.sleep(seconds)
                self._guard(self.engine.fire_timer, name)
                if not repeat:
                    return

        self.timer_tasks[name] = asyncio.get_running_loop().create_task(tick())

    def _unschedule(self, name: str) -> None:
        task = self.timer_tasks.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # ---------------------------------------------------------------- state

    async def _save(self, counter_only: bool = False) -> None:
        if counter_only:
            state = {**self._last_state, "next_n": self.engine.next_n}
        else:
            state = self._guard(self.engine.save) or {"next_n": self.engine.next_n,
                                                      "strategy": {}}
            self._last_state = state
        try:
            await asyncio.to_thread(self.store.save, state)
            self.counters["saves"] = self.counters.get("saves", 0) + 1
        except OSError as exc:
            self.counters["save_errors"] = self.counters.get("save_errors", 0) + 1
            log.error("cannot save state: %s", exc)

    async def _saver(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.save_now.wait(), self.settings.strategy_save_interval)
            except asyncio.TimeoutError:
                pass
            self.save_now.clear()
            await self._save()

    # ---------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        await self.stopping.wait()
        if self.fatal is not None:
            raise RuntimeError(self.fatal)

    async def on_stop(self) -> None:
        for task in [*self.tasks, *self.timer_tasks.values()]:
            task.cancel()
        engine = getattr(self, "engine", None)
        fatal = getattr(self, "fatal", None)
        if engine is not None and getattr(self, "live", False):
            self._guard(engine.call, "on_stop")
            self.fatal = None  # the state is saved even after a fatal hook error
            await self._save()
            self.fatal = fatal
        if fatal is None:
            RunMarker(self.settings.state_dir).clean_stop()
        if hasattr(self, "incidents"):
            self._note_incidents()
            self.incidents.stopped(clean=fatal is None)
        if hasattr(self, "watchdog"):
            self.watchdog.stop()
        if hasattr(self, "watch_alarm"):
            self.watch_alarm.close()

    def rss_kb(self) -> int:
        if self.statm_fd is None:
            return 0
        try:
            return int(os.pread(self.statm_fd, 128, 0).split()[1]) * os.sysconf("SC_PAGESIZE") \
                // 1024
        except (OSError, ValueError, IndexError):
            return 0

    def _note_incidents(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            self.incidents.note(engine.last_error, list(engine.refusals))

    def heartbeat(self) -> Heartbeat:
        hb = super().heartbeat()
        engine = getattr(self, "engine", None)
        if engine is None:
            return hb
        self._note_incidents()      # a few hundred bytes, written only when something changed
        counters = {**hb.counters, **engine.counters,
                    "live": int(self.live), "lag_ms": self.lag_ms, "lag_max_ms": self.lag_max_ms,
                    "slow_hooks": self.watchdog.slow, "slow_hook": self.watchdog.last_slow, "hook_p99_us": self.watchdog.hook_p99_us(reset=True),
                    "rss_kb": self.rss_kb(), "position": engine.net_position(),
                    "day_pnl": engine.day_pnl(), "open_orders": len(engine.orders),
                    "errors_in_row": engine.errors_in_row,
                    "first_live_ms": self.first_live_ms or 0,
                    "socket_attempts": attempts.sockets,
                    "process_attempts": attempts.processes}
        self.lag_max_ms = 0
        return dataclasses.replace(hb, counters=counters)


__all__ = ["Host", "Bar", "Quote", "Trade", "OrderEvent", "PositionEvent"]
