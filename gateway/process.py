"""`chillly gateway`: the only process that places, changes or cancels orders (docs/gateway.md).

Start-up, in this order, before any order command is accepted (they reply `not_ready`):
1. lock the journal (a second gateway on it exits 2), open and migrate it, read it back;
2. pick the account (TOPSTEP_ACCOUNT_ID / _NAME, else the only active one; ambiguous: exit 2);
3. connect the user hub (its events are applied from now on, deduplicated);
4. resolve every intent without a venue id (crash or time-out mid-place) by its customTag;
5. reconcile with the venue: open orders (suspended bracket children included), positions,
   today's trades, the balance; orders the journal does not know are adopted as "external".
Then: commands over the bus (service `gateway`), hub events, a compare with the venue every
GATEWAY_RECONCILE_INTERVAL, and positions/account published on change and every second.

This module is the service: it builds the parts, each handed what it works with, and runs
them. What the account is (orders, intents, fills, positions, the gate's view) is the blotter's
(trading/blotter/); the parts here are the venue I/O around it: venue_events.py (reports
applied), placing.py (placing exactly once), closing.py (cancel, flatten), brackets.py
(managed OCO), reconcile.py (catch-up, compare, gap reads), gate_runner.py (marks, the gate's actions),
publishing.py (events), commands.py (who may ask what, the commands), journal.py (the order
journal), risk_runtime.py (the gate's memory and its commands).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
from collections.abc import Coroutine
from typing import Any

from chillly.anchor import refuse_earlier
from chillly.errors import StartupError
from chillly.messages import Heartbeat
from chillly.process import Service, State, run_service
from chillly.singleton import Lock, acquire
from chillly.tools_socket import ToolsServer, socket_path
from gateway.brackets import Brackets
from gateway.commands import Authority, Commands
from gateway.gate_runner import GateRunner
from gateway.journal import Journal
from gateway.closing import Closer
from gateway.placing import Placer
from gateway.publishing import Publisher
from gateway.reconcile import Reconciler
from gateway.risk_runtime import RiskRuntime
from gateway.settings import GatewaySettings
from gateway.venue_events import Specs, VenueEvents
from topstepx.budget import RateBudget
from topstepx.client import ProjectXClient
from topstepx.contracts import ContractResolver
from topstepx.hub import HubAgent, user_hub_subscriber
from topstepx.models import Account
from topstepx.settings import parse_budget
from trading.blotter import Blotter

log = logging.getLogger("gateway")


COUNTERS = ("submits", "accepted", "rejected", "rejected_invalid", "rejected_duplicate",
            "rejected_gate", "rejected_venue", "unknown_outcomes", "adopted_unknown",
            "not_placed", "not_ready", "cancels", "modifies", "fills", "repeated_fills",
            "external_adopted", "reconciles", "reconcile_diffs", "hub_gap_reads",
            "managed_legs", "unprotected_alarms", "gate_actions", "marks_venue",
            "marks_venue_failed", "marks_waits", "marks_blind_alarms", "marks_blind_contracts",
            "flatten_rereads", "flatten_refused", "risk_flatten_backoff", "fills_reattributed",
            "cancel_unsupported", "flatten_fired", "orders_stranded")


class GatewayService(Service):
    name = "gateway"
    settings_cls = GatewaySettings

    # What on_start got to open, for on_stop (which may run after any step of it).
    lock: Lock | None = None
    journal: Journal | None = None
    risk: RiskRuntime | None = None
    client: ProjectXClient | None = None
    blotter: Blotter | None = None
    hub: HubAgent | None = None
    placer: Placer | None = None
    publisher: Publisher | None = None
    tools: ToolsServer | None = None

    async def on_start(self) -> None:
        s: GatewaySettings = self.settings  # type: ignore[assignment]
        self.s = s
        # Wait a moment (off the loop) for a gateway that is still stopping: a supervisord
        # restart overlaps the old one's stop, and exit 2 would leave trading stopped.
        self.lock = await asyncio.to_thread(acquire, s.gateway_database_path, "gateway", 3.0)
        self.ready = False
        self._tasks: list[asyncio.Task[Any]] = []
        self.counters.update({k: 0 for k in COUNTERS})
        self.journal = journal = Journal(s.gateway_database_path)
        journal.on_fault = self._journal_fault
        loaded = await journal.open()
        refuse_earlier(f"the gateway's risk memory in {s.gateway_database_path}",
                       await journal.risk_saved_ms(), self.clock.now_ms())
        # The risk gate and its book (floor, day, latches) from the journal (gateway/risk_runtime)
        self.risk = risk = RiskRuntime(s, journal, self.clock.now_ms)
        self._risk_known = await risk.load()
        self.client = client = ProjectXClient.from_settings(s, self.clock)
        # the gateway's own share of the venue budget (it never causes a 429); a quarter of the
        # REST share is kept for the gate's cancels and flattens and the reconciliation
        for budget, text in (("rest", s.gateway_rest_budget), ("bars", s.gateway_bars_budget)):
            count, window = parse_budget(text)
            client.budgets[budget] = RateBudget(budget, count, window, clock=self.clock,
                                                margin_s=window * 0.02 + 0.1 * self.clock.speed,
                                                reserved=count // 4 if budget == "rest" else 0)
        resolver = ContractResolver(client, symbol_ttl_s=s.gateway_symbol_cache_s)
        account = await self._pick_account(client)
        self.blotter = blotter = Blotter(account.id, account.name)
        blotter.book.balance = float(account.balance or 0.0)
        blotter.book.can_trade = bool(account.can_trade if account.can_trade is not None
                                      else True)
        blotter.load(loaded.intents, loaded.orders, loaded.fills)
        self._journal_fills = loaded.fills
        ready = lambda: self.ready  # noqa: E731
        c, clock = self.counters, self.clock
        self.publisher = publisher = Publisher(self.bus, self.process_name, self.alarms, blotter,
                                               risk.gate, journal, clock)
        specs = Specs(resolver, blotter)
        venue = VenueEvents(blotter, journal, publisher, specs, self.bus, clock, c)
        self.placer = placer = Placer(client, journal, blotter, venue, publisher, clock, c,
                                      s.gateway_unknown_wait, s.gateway_bracket_mode == "managed")
        self.hub = hub = HubAgent("user-hub", s.topstep_user_hub_url, client.auth, clock,
                                  on_open=self._on_hub_open, backoff_min_s=s.feed_hub_backoff_min,
                                  backoff_max_s=s.feed_hub_backoff_max)
        self.reconciler = reconciler = Reconciler(
            client, blotter, venue, placer, risk, publisher, clock, c,
            s.gateway_reconcile_interval, user_hub_subscriber(lambda: [account.id]), ready)
        self.closer = closer = Closer(client, blotter, placer, clock, c,
                                      reconciler.safe_reconcile)
        self.brackets = brackets = Brackets(client, blotter, placer, specs, publisher, clock, c,
                                            self._spawn)
        self.runner = runner = GateRunner(s, self.bus, client, blotter, risk, closer, publisher,
                                          specs, clock, c, self.alarms, self.alarm, ready,
                                          self._tasks)
        closer.last_price = runner.last_price
        venue.on_order_changed = brackets.on_order_changed
        venue.on_position_changed = runner.watch_quotes
        commands = Commands(s, client, resolver, blotter, risk, runner, placer, closer,
                            reconciler, publisher, specs, journal, clock, c, ready)
        # Who may ask what is decided by the door a command came through (gateway/commands.py)
        authority = Authority(commands.handlers(), c, self._alarm,
                              lambda args: commands.find(args).owner)
        self.bus.serve("gateway", authority.bus_handlers(), with_sender=True)
        self.tools = ToolsServer(socket_path(s.venue_run_dir), authority.tools,
                                 authority.refused_peer)
        await self.tools.start()
        venue.subscribe(hub)
        log.info("account %s (%d); journal %s (version %d, %d intents, %d orders, %d fills)",
                 account.name, account.id, s.gateway_database_path, loaded.version,
                 len(blotter.intents), len(blotter.orders), len(blotter.ledger.seen))

    async def _on_hub_open(self, agent: HubAgent) -> None:
        await self.reconciler.on_hub_open(agent)

    async def _pick_account(self, client: ProjectXClient) -> Account:
        s = self.s
        accounts = await client.search_accounts(only_active=True)
        listing = ", ".join(f"{a.id} {a.name}" for a in accounts) or "none"
        if s.topstep_account_id is not None:
            found = [a for a in accounts if a.id == s.topstep_account_id]
            if not found:
                raise StartupError(f"TOPSTEP_ACCOUNT_ID={s.topstep_account_id} is not an active "
                                   f"account of this login (found: {listing})")
            return found[0]
        if s.topstep_account_name:
            found = [a for a in accounts if a.name == s.topstep_account_name]
            if not found:
                raise StartupError(f"TOPSTEP_ACCOUNT_NAME={s.topstep_account_name} is not an "
                                   f"active account of this login (found: {listing})")
            return found[0]
        if len(accounts) != 1:
            raise StartupError("set TOPSTEP_ACCOUNT_ID or TOPSTEP_ACCOUNT_NAME: "
                               f"{len(accounts)} active accounts ({listing})")
        return accounts[0]

    async def run(self) -> None:
        assert self.hub is not None and self.blotter is not None and self.publisher is not None
        self._tasks.append(asyncio.ensure_future(self.hub.run()))
        try:
            await asyncio.wait_for(self.hub.connected.wait(), 10.0)
        except asyncio.TimeoutError:
            log.warning("user hub not connected yet; reconciling by REST alone")
        await self.reconciler.catch_up(self._journal_fills, self._risk_known)
        self.ready = True
        log.info("ready: %d working orders, %d positions", len(self.blotter.working()),
                 len(self.blotter.book.held()))
        self._tasks.append(asyncio.ensure_future(self.reconciler.loop()))
        self._tasks.append(asyncio.ensure_future(self.runner.mark_loop()))
        while True:
            self.publisher.positions_and_account()
            self.runner.run_gate()
            self.brackets.check_protection()
            self.closer.check_stranded()
            await self.clock.sleep(self.s.gateway_publish_interval)

    async def on_stop(self) -> None:
        """Close what on_start got to open (it may have been interrupted at any point)."""
        tasks = getattr(self, "_tasks", []) + list(
            self.placer.resolving.values() if self.placer is not None else [])
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        if self.tools is not None:
            await self.tools.close()
        if self.client is not None:
            await self.client.aclose()
        if self.risk is not None:
            await self.risk.flush()
        if self.journal is not None:
            await self.journal.close(wait_s=1.0)   # inside the 2 s every process stops in
        if self.lock is not None:
            self.lock.release()

    def heartbeat(self) -> Heartbeat:
        """Counters of every part that exists yet (heartbeats start while on_start runs)."""
        if self.client is not None:
            self.counters.update(self.client.stats())
        if self.blotter is not None:
            self.counters.update({f"orders_{k}": v
                                  for k, v in self.blotter.machine.counters.items()})
            self.counters["repeated_fills"] = self.blotter.ledger.repeated
            self.counters["stale_positions"] = self.blotter.stale_positions
            self.counters["stale_orders"] = self.blotter.stale_orders
            self.counters["stale_accounts"] = self.blotter.stale_accounts
        if self.hub is not None:
            self.counters.update({f"hub_{k}": v for k, v in self.hub.counters.items()})
        if self.journal is not None:
            self.counters["journal_writes"] = self.journal.writes
            self.counters["journal_backlog"] = self.journal.backlog
            self.counters["journal_dropped"] = self.journal.later_failed
        if self.tools is not None:
            self.counters.update(self.tools.counters)
        self.counters["ready"] = int(getattr(self, "ready", False))
        if self.risk is not None:
            self.counters["risk_flatten_held_back"] = self.risk.gate.held_back
            self.counters["risk_rejections"] = self.risk.gate.memory.rejections
        return super().heartbeat()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    def _journal_fault(self, fault: str | None) -> None:
        """The journal's disk refused a write, or takes them again (Journal.on_fault): FAULTED
        in the heartbeat while it lasts, one probe write a second until it heals (no busy
        retry), then RUNNING and the `journal` alarm cleared."""
        if fault is not None:
            self.state = State.FAULTED
            self._alarm("journal", True, f"cannot write the journal: {fault}")
            tasks: list[asyncio.Task[Any]] = getattr(self, "_tasks", [])
            if not any(t.get_name() == "journal-heal" and not t.done() for t in tasks):
                tasks.append(asyncio.get_running_loop().create_task(
                    self._heal_journal(), name="journal-heal"))
        else:
            if self.state is State.FAULTED:
                self.state = State.RUNNING
            self._alarm("journal", False, "journal writes succeed again")

    def _alarm(self, code: str, active: bool, text: str) -> None:
        if self.publisher is not None:
            self.publisher.alarm(code, active, text)
        else:
            self.alarm(code, active, text)

    async def _heal_journal(self) -> None:
        assert self.journal is not None
        while self.journal.fault is not None:
            await asyncio.sleep(1.0)
            try:
                await self.journal.probe()
            except sqlite3.Error:
                pass

def cli(args: argparse.Namespace) -> int:
    return run_service(GatewayService)
