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

This module is the service's wiring and lifecycle; each job is its own module, composed here
as a mixin over the shared state (gateway/state.py): commands.py (the bus commands and their
validation), placing.py (placing exactly once), venue_events.py (hub and REST reports applied),
reconcile.py (start-up catch-up, periodic compare, hub gap reads), brackets.py (managed OCO),
closing.py (cancel, flatten), gate_runner.py (the risk gate's view and actions), publishing.py
(order/position/account/risk events).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from chillly.errors import StartupError
from chillly.messages import Heartbeat
from chillly.process import State, run_service
from chillly.singleton import acquire
from chillly.tools_socket import ToolsServer, socket_path
from gateway.authority import Authority
from gateway.book import Book
from gateway.brackets import ManagedBrackets
from gateway.closing import Closing
from gateway.commands import Commands
from gateway.gate import ACTIVE, Gate, Intent
from gateway.gate_runner import GateRunner
from gateway.journal import Journal
from gateway.orders import FillLedger, OrderBookMachine
from gateway.placing import Placing
from gateway.publishing import Publishing
from gateway.reconcile import Reconciliation
from gateway.risk_runtime import RiskRuntime
from gateway.settings import GatewaySettings
from gateway.state import GatewayState
from gateway.venue_events import VenueEvents
from topstepx.budget import RateBudget
from topstepx.client import ProjectXClient
from topstepx.contracts import ContractResolver
from topstepx.hub import HubAgent, user_hub_subscriber
from topstepx.models import Account
from topstepx.settings import parse_budget

log = logging.getLogger("gateway")


class GatewayService(Commands, Closing, Placing, ManagedBrackets, VenueEvents, Reconciliation,
                     GateRunner, Publishing, GatewayState):
    name = "gateway"
    settings_cls = GatewaySettings

    async def on_start(self) -> None:
        s: GatewaySettings = self.settings  # type: ignore[assignment]
        self.s = s
        # Wait a moment (off the loop) for a gateway that is still stopping: a supervisord
        # restart overlaps the old one's stop, and exit 2 would leave trading stopped.
        self.lock = await asyncio.to_thread(acquire, s.gateway_database_path, "gateway", 3.0)
        self.ready = False
        self.trading_state = ACTIVE
        self.counters.update({k: 0 for k in (
            "submits", "accepted", "rejected", "rejected_invalid", "rejected_duplicate",
            "rejected_gate", "rejected_venue", "unknown_outcomes", "adopted_unknown",
            "not_placed", "not_ready", "cancels", "modifies", "fills", "repeated_fills",
            "external_adopted", "reconciles", "reconcile_diffs", "hub_gap_reads",
            "managed_legs", "unprotected_alarms", "gate_actions", "marks_venue",
            "marks_venue_failed", "marks_waits", "marks_blind_alarms", "marks_blind_contracts")})
        self.journal = Journal(s.gateway_database_path)
        self.journal.on_fault = self._journal_fault
        loaded = await self.journal.open()
        # The risk gate and its book (floor, day, latches) from the journal (gateway/risk_runtime)
        self.risk = RiskRuntime(s, self.journal, self.clock.now_ms)
        self._risk_known = await self.risk.load()
        self.gate: Gate = self.make_gate()
        self._inflight: dict[str, Intent] = {}   # passed the gate, not yet a venue order
        # Fills the venue reported on an order before its Position event: (side, qty, seq) per
        # order id, counted by the gate until the position shows them (gateway/risk.py).
        self._unposted: dict[str, dict[int, tuple[int, int, int, float]]] = {}
        self._unposted_seq = 0
        self._flattening = False
        self.intents: dict[str, dict[str, Any]] = {r["client_id"]: r for r in loaded.intents}
        self.by_tag: dict[str, str] = {r["custom_tag"]: r["client_id"] for r in loaded.intents}
        self.orders: dict[int, dict[str, Any]] = {}
        # Indexes kept by _store_order: working orders, and client ids with a venue order
        # (the gate's view is built on every submit and quote: no scan of the whole day).
        self._open: dict[int, dict[str, Any]] = {}
        self._placed_cids: set[str] = set()
        for r in loaded.orders:
            self._store_order(r)
        self.machine = OrderBookMachine()
        for r in loaded.orders:
            self.machine.apply(r["order_id"], r["status"], r["size"], r["fill_volume"],
                               r["filled_price"], r["limit_price"], r["stop_price"])
        for r in loaded.intents:
            if r["managed"] and r["order_id"] in self.orders:
                self.orders[r["order_id"]]["managed"] = True
        self.ledger = FillLedger(seen={f["trade_id"] for f in loaded.fills})
        self._journal_fills = loaded.fills
        self._reserved: set[str] = set()
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._publish_due: set[tuple[str, str]] = set()
        self._alarms: dict[str, bool] = {}
        self.client = ProjectXClient.from_settings(s, self.clock)
        # the gateway's own share of the venue budget (it never causes a 429)
        count, window = parse_budget(s.gateway_rest_budget)
        self.client.budgets["rest"] = RateBudget("rest", count, window, clock=self.clock,
                                                 margin_s=window * 0.02 + 0.1 * self.clock.speed)
        count, window = parse_budget(s.gateway_bars_budget)
        self.client.budgets["bars"] = RateBudget("bars", count, window, clock=self.clock,
                                                 margin_s=window * 0.02 + 0.1 * self.clock.speed)
        self.resolver = ContractResolver(self.client, symbol_ttl_s=s.gateway_symbol_cache_s)
        self.account = await self._pick_account()
        self.book = Book(self.account.id, self.account.name, float(self.account.balance or 0.0),
                         bool(self.account.can_trade if self.account.can_trade is not None
                              else True))
        self.position_brackets = s.gateway_bracket_mode == "managed"
        # Who may ask what is decided by the door a command came through (gateway/authority.py)
        self.authority = Authority(self.command_handlers(), self.counters, self._alarm,
                                   lambda args: self._find(args)["owner"])
        self.bus.serve("gateway", self.authority.bus_handlers(), with_sender=True)
        self.tools = ToolsServer(socket_path(s.venue_run_dir), self.authority.tools,
                                 self.authority.refused_peer)
        await self.tools.start()
        self.hub = HubAgent("user-hub", s.topstep_user_hub_url, self.client.auth, self.clock,
                            on_open=self._on_hub_open, backoff_min_s=s.feed_hub_backoff_min,
                            backoff_max_s=s.feed_hub_backoff_max)
        self.hub.on("GatewayUserOrder", self._hub_order)
        self.hub.on("GatewayUserTrade", self._hub_trade)
        self.hub.on("GatewayUserPosition", self._hub_position)
        self.hub.on("GatewayUserAccount", self._hub_account)
        self._subscribe_hub = user_hub_subscriber(lambda: [self.account.id])
        self._hub_opens = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._flat_n = 0
        self._diffs_now = 0
        self._quoted: set[str] = set()
        self._mark_tried: dict[str, int] = {}
        self._mark_polls: dict[str, asyncio.Task[None]] = {}
        self._mark_wake = asyncio.Event()
        log.info("account %s (%d); journal %s (version %d, %d intents, %d orders, %d fills)",
                 self.account.name, self.account.id, s.gateway_database_path, loaded.version,
                 len(self.intents), len(self.orders), len(self.ledger.seen))

    def make_gate(self) -> Gate:
        """The risk gate (gateway/risk.py): Topstep's rules and the strategies' limits."""
        return self.risk.gate

    async def _pick_account(self) -> Account:
        s = self.s
        accounts = await self.client.search_accounts(only_active=True)
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
        self._tasks.append(asyncio.ensure_future(self.hub.run()))
        try:
            await asyncio.wait_for(self.hub.connected.wait(), 10.0)
        except asyncio.TimeoutError:
            log.warning("user hub not connected yet; reconciling by REST alone")
        await self._catch_up()
        self.ready = True
        log.info("ready: %d working orders, %d positions", len(self._working()),
                 len(self.book.held()))
        self._tasks.append(asyncio.ensure_future(self._reconcile_loop()))
        self._tasks.append(asyncio.ensure_future(self._mark_loop()))
        s = self.s
        while True:
            self._publish_all()
            self._run_gate()
            self._check_protection()
            await self.clock.sleep(s.gateway_publish_interval)

    async def on_stop(self) -> None:
        """Close what on_start got to open (it may have been interrupted at any point)."""
        tasks = getattr(self, "_tasks", []) + list(getattr(self, "_resolving", {}).values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        if getattr(self, "tools", None) is not None:
            await self.tools.close()
        if getattr(self, "client", None) is not None:
            await self.client.aclose()
        if getattr(self, "risk", None) is not None:
            await self.risk.flush()
        if getattr(self, "journal", None) is not None:
            await self.journal.close(wait_s=1.0)   # inside the 2 s every process stops in
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    def heartbeat(self) -> Heartbeat:
        """Counters of every part that exists yet (heartbeats start while on_start runs)."""
        if getattr(self, "client", None) is not None:
            self.counters.update(self.client.stats())
        if getattr(self, "machine", None) is not None:
            self.counters.update({f"orders_{k}": v for k, v in self.machine.counters.items()})
            self.counters["repeated_fills"] = self.ledger.repeated
        if getattr(self, "hub", None) is not None:
            self.counters.update({f"hub_{k}": v for k, v in self.hub.counters.items()})
        if getattr(self, "journal", None) is not None:
            self.counters["journal_writes"] = self.journal.writes
            self.counters["journal_backlog"] = self.journal.backlog
            self.counters["journal_dropped"] = self.journal.later_failed
        if getattr(self, "tools", None) is not None:
            self.counters.update(self.tools.counters)
        self.counters["ready"] = int(getattr(self, "ready", False))
        if getattr(self, "risk", None) is not None:
            self.counters["risk_flatten_held_back"] = self.risk.gate.held_back
            self.counters["risk_rejections"] = self.risk.gate.book.rejections
        return super().heartbeat()

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

    async def _heal_journal(self) -> None:
        while self.journal.fault is not None:
            await asyncio.sleep(1.0)
            try:
                await self.journal.probe()
            except sqlite3.Error:
                pass

def cli(args: Any = None) -> int:
    return run_service(GatewayService)
