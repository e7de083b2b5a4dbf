"""The page's bus side: everything the page shows comes in here and goes out through the hub.

- Heartbeats and alarms feed the same `HealthView` as `chillly status`; our own heartbeat
  coming back through the broker is how the page knows the bus works.
- Trading events (`order.`, `fill.`, `position.`, `account.`, `risk.`) are pushed at once where
  they stand alone (a fill, a refusal) and trigger a refresh of the gateway's answers to the
  commands the CLI tools send (`risk`, `positions`, `orders`, `account`), so every panel is a
  `--json` answer. A refresh is coalesced (one in flight, one more if events came meanwhile)
  and also runs every WEB_REFRESH_INTERVAL while a page is open.
- Today's fills and the gate's refusals: those heard on the bus, and the gateway's `fills` and
  `refusals` answers (the day's, from its journal), asked at start and again whenever the
  gateway comes back (a new gateway instance heartbeats, or a refresh found it away), so a
  restart of either loses none. The gate's actions are only those heard.
- Strategy rows are `chillly strategies --json` itself, run as a child every
  WEB_STRATEGIES_INTERVAL while a page is open: the same rows as the tool, by construction.
- Quotes and bars are passed on as they come; the hub keeps only the latest per key per page.

Nothing here waits on a browser: handlers only file messages with the hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
import time
from typing import Any

from chillly import topics
from chillly.bus import Bus, RequestTimeout
from chillly.codec import Envelope
from chillly.health import STALE_AFTER, HealthView, expected_programs
from chillly.messages import Alarm, Bar, ContractInfo, FillEvent, Heartbeat, Quote, RiskEvent
from chillly.status import find_conf
from chillly.timeframes import bar_problem
from store import queries
from trading.strategy.config_file import LoadError, parse_instances
from web.board import MAX_FILLS, MAX_REFUSALS, Board, Push
from web.outbox import Hub
from web.reports import scan
from web.settings import WebSettings

log = logging.getLogger("web")

#: the gateway commands behind the panels, with the arguments the CLI tools send
GATEWAY_PANELS: dict[str, dict[str, Any]] = {
    "risk": {}, "positions": {}, "orders": {"open_only": True}, "account": {}}
_ENVELOPE = ("v", "src", "seq", "inst")
MIN_REFRESH = 0.2   # seconds between two rounds of gateway questions
_QUOTE_FIELDS = ("contract", "bid", "ask", "last", "ts")


def _price(x: Any) -> bool:
    """A quote field the page may draw: absent, or a finite positive number."""
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)
                         and math.isfinite(x) and x > 0)


def _body(env: Envelope) -> dict[str, Any]:
    return _plain(env.payload)


def _plain(payload: dict[str, Any]) -> dict[str, Any]:
    """A message's map without the envelope's routing fields (its `ts` stays: a time to draw)."""
    return {k: v for k, v in payload.items() if k not in _ENVELOPE}


class Live:
    def __init__(self, settings: WebSettings, bus: Bus, hub: Hub, board: Board,
                 counters: dict[str, int]) -> None:
        self.s = settings
        self.bus = bus
        self.hub = hub
        self.board = board
        self.counters = counters
        self.conf = find_conf(settings.supervisor_conf)
        self.health = HealthView(settings.heartbeat_interval, expected_programs(self.conf))
        self.own_heard = 0.0          # when our own heartbeat last came back (monotonic)
        self.gateway_at: float | None = None   # wall time of the last gateway answer
        self.gateway_error: str | None = "no answer from the gateway yet"
        self.day_due = True           # ask the gateway for the day's fills and refusals
        #                               (at start, and when it is back)
        self._dirty = asyncio.Event()
        self._opened = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._child: asyncio.subprocess.Process | None = None
        self._started = time.monotonic()
        counters.update({"gateway_errors": 0, "strategies_errors": 0, "events": 0,
                         "rejected_bars": 0, "rejected_quotes": 0})

    # ------------------------------------------------------------------ wiring

    def subscribe(self) -> None:
        on = self.bus.on
        on(topics.HEARTBEATS, self._on_heartbeat)
        on(topics.ALARMS, self._on_alarm)
        for kind in ("order", "position", "account"):
            on(topics.trading(kind), self._on_trading)
        on(topics.trading("fill"), self._on_fill)
        on(topics.trading("risk"), self._on_risk)
        on(topics.QUOTES, self._on_quote)
        on(topics.bars(), self._on_bar)
        on(topics.subscription_set(), self._on_set)
        on(topics.CONTRACTS, self._on_info)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._gateway_loop()),
                       loop.create_task(self._health_loop()),
                       loop.create_task(self._strategies_loop())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=0.3)
        if self._child is not None and self._child.returncode is None:
            self._child.kill()

    def push(self, pushes: list[Push]) -> None:
        for key, kind, data, urgent in pushes:
            self.hub.push(key, kind, data, urgent)

    def refresh_soon(self) -> None:
        """Ask the gateway again now (after an action), not at the next tick."""
        self._dirty.set()

    def page_opened(self) -> None:
        """A page connected: fetch what it shows now, rather than at the next tick."""
        self._dirty.set()
        self._opened.set()

    # ------------------------------------------------------------------ bus handlers

    def _on_heartbeat(self, env: Envelope) -> None:
        if env.cls is not Heartbeat:
            return
        now = time.monotonic()
        p = env.payload
        if p.get("inst") == self.bus.instance:
            self.own_heard = now
        known = self.health.instances.get(p["name"], {}).get(p["pid"])
        changed = known is None or known.state != p["state"]
        if known is None and p["name"] == "gateway":
            self.day_due = True       # a new gateway: its journal may hold fills not heard
            self._dirty.set()
        self.health.on_heartbeat(p, now)
        if changed and self.hub.outboxes:
            self.publish_health()     # a stop, a fault or a new instance shows at once

    def _on_alarm(self, env: Envelope) -> None:
        if env.cls is Alarm:
            self.health.on_alarm(env.payload, time.monotonic())

    def _on_trading(self, env: Envelope) -> None:
        self.counters["events"] += 1
        self._dirty.set()

    def _on_fill(self, env: Envelope) -> None:
        self.counters["events"] += 1
        if env.cls is FillEvent:
            self.push(self.board.fill(_body(env)))
        self._dirty.set()

    def _on_risk(self, env: Envelope) -> None:
        self.counters["events"] += 1
        if env.cls is RiskEvent and env.payload.get("event") in ("reject", "action"):
            self.push(self.board.refusal(_body(env)))
        self._dirty.set()

    def _on_quote(self, env: Envelope) -> None:
        if env.cls is Quote:
            p = env.payload
            if not all(_price(p.get(k)) for k in ("bid", "ask", "last")):
                self.counters["rejected_quotes"] += 1    # never drawn: NaN, inf, <= 0
                return
            self.push(self.board.quote({k: p.get(k) for k in _QUOTE_FIELDS}))

    def _on_bar(self, env: Envelope) -> None:
        if env.cls is Bar:
            if bar_problem(env.payload) is not None:     # the check every bar reader makes
                self.counters["rejected_bars"] += 1
                return
            self.push(self.board.bar(_body(env)))

    def _on_set(self, env: Envelope) -> None:
        contracts = env.payload.get("contracts")
        if isinstance(contracts, list):
            self.push(self.board.set_contracts([str(c) for c in contracts]))

    def _on_info(self, env: Envelope) -> None:
        if env.cls is ContractInfo:
            self.push(self.board.info(env.payload))

    # ------------------------------------------------------------------ the gateway's answers

    async def _gateway_loop(self) -> None:
        while True:
            if self.day_due:          # with no page open too: the first page starts with them
                await self.load_day()
            try:
                await asyncio.wait_for(self._dirty.wait(), self.s.web_refresh_interval)
            except asyncio.TimeoutError:
                pass
            self._dirty.clear()
            if self.hub.outboxes:
                await self.refresh_gateway()
                # Marks move positions many times a second: ask at most MIN_REFRESH apart
                # (the fills themselves are pushed at once, not through this).
                await asyncio.sleep(MIN_REFRESH)

    async def refresh_gateway(self) -> None:
        answers = await asyncio.gather(*(self._ask(name, args)
                                         for name, args in GATEWAY_PANELS.items()))
        errors = [e for _, e in answers if e]
        for (name, _), (result, error) in zip(GATEWAY_PANELS.items(), answers):
            if error is None:
                self.push(self.board.panel(name, result))
        if errors:
            self.counters["gateway_errors"] += 1
            self.day_due = True       # away: when it answers again, ask for the day's lists
        else:
            self.gateway_at = time.time()
        self.gateway_error = errors[0] if errors else None
        self._gateway_missing()

    async def load_day(self) -> None:
        """The day's fills and the gate's refusals from the gateway (its journal), each merged
        into its list once each; both asked again at the next round unless both answered."""
        (fills, f_error), (refusals, r_error) = await asyncio.gather(
            self._ask("fills", {"limit": MAX_FILLS}),
            self._ask("refusals", {"limit": MAX_REFUSALS}))
        if f_error is None:
            self.push(self.board.load_fills([_plain(f) for f in fills["fills"]]))
        if r_error is None:
            self.push(self.board.load_refusals([_plain(r) for r in refusals["refusals"]]))
        if f_error is not None or r_error is not None:
            self.counters["gateway_errors"] += 1
            return                    # still due: asked again at the next round
        self.day_due = False

    async def _ask(self, name: str, args: dict[str, Any]) -> tuple[Any, str | None]:
        try:
            reply = await self.bus.request("gateway", name, args, timeout=2.0, attempts=1)
        except RequestTimeout:
            return None, "no answer from the gateway: is it running?"
        return (reply.result, None) if reply.ok else (None, reply.error or "refused")

    def _gateway_missing(self) -> None:
        """The banner line about the gateway: what its heartbeats say (a stop shows at once, a
        crash after STALE_AFTER intervals), else the last request's error."""
        row = next((r for r in self.health.rows(time.monotonic()) if r.name == "gateway"), None)
        problems = [p for p in (row.problems if row else []) if not p.startswith("alarm")]
        why = f"gateway {', '.join(problems)}" if problems else self.gateway_error
        if why is None:
            self.push(self.board.set_missing("gateway", None))
            return
        since = (time.strftime("%H:%M:%S", time.localtime(self.gateway_at))
                 if self.gateway_at else "never")
        self.push(self.board.set_missing(
            "gateway", f"{why}: risk, positions and orders are as of {since}; trading "
                       "actions are unavailable"))

    # ------------------------------------------------------------------ health

    async def _health_loop(self) -> None:
        self._started = time.monotonic()
        while True:
            await asyncio.sleep(self.s.heartbeat_interval)
            self.publish_health()

    def publish_health(self) -> None:
        """The health panel (as `chillly status --json`) and the banner's bus, database and
        gateway lines."""
        interval = self.s.heartbeat_interval
        now = time.monotonic()
        rows = self.health.rows(now)
        broker = bool(self.own_heard) and now - self.own_heard <= STALE_AFTER * interval
        healthy = broker and bool(rows) and all(r.healthy for r in rows)
        self.push(self.board.panel("health", {
            "healthy": healthy, "broker": broker, "conf": str(self.conf),
            "programs": [r.as_dict() for r in rows]}))
        starting = now - self._started < 2 * interval
        self.push(self.board.set_missing("broker", None if broker or starting else
                                         "no bus: the broker does not answer, nothing on this "
                                         "page is live"))
        self.push(self.board.set_missing(
            "database", queries.missing_database(self.s.database_path)))
        self._gateway_missing()

    # ------------------------------------------------------------------ strategies

    async def _strategies_loop(self) -> None:
        while True:
            if self.hub.outboxes:
                rows, error = await self.strategies()
                if error:
                    self.counters["strategies_errors"] += 1
                limits = await asyncio.to_thread(self.limits)
                self.push(self.board.panel("strategies", {"rows": rows, "error": error,
                                                          "limits": limits}))
                self.push(self.board.panel("reports", {
                    "dir": str(self.s.reports_dir),
                    "reports": await asyncio.to_thread(scan, self.s.reports_dir)}))
            try:
                await asyncio.wait_for(self._opened.wait(), self.s.web_strategies_interval)
            except asyncio.TimeoutError:
                pass
            self._opened.clear()

    async def strategies(self) -> tuple[list[dict[str, Any]], str | None]:
        """`chillly strategies --json`, run as the trader would: one JSON list of rows."""
        self._child = await asyncio.create_subprocess_exec(
            *_chillly(), "strategies", "--json", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=os.environ.copy())
        try:
            out, err = await asyncio.wait_for(self._child.communicate(), 60)
        except asyncio.TimeoutError:
            self._child.kill()
            return [], "chillly strategies did not answer within 60 s"
        if self._child.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            return [], lines[-1] if lines else f"exit {self._child.returncode}"
        try:
            rows = json.loads(out.decode())
            if not isinstance(rows, list):
                raise ValueError("expected a JSON list")
            return rows, None
        except ValueError as exc:
            return [], f"unreadable output of chillly strategies: {exc}"


    def limits(self) -> dict[str, dict[str, Any]]:
        """Each instance's limits from strategies.toml (the gate enforces them; the page shows
        how close each strategy is), parsed as the host and the gateway parse it."""
        try:
            text = self.s.strategies_file.read_text()
            instances = parse_instances(text, self.s.strategies_file)
        except (OSError, LoadError):
            return {}    # the rows' error (from `chillly strategies`) already says why
        return {name: inst.limits.model_dump() for name, inst in instances.items()}


def _chillly() -> list[str]:
    return [sys.executable, "-m", "chillly.cli"]

