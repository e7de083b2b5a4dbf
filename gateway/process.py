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
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any

from chillly import topics
from chillly.calendar import session_start_ms
from chillly.codec import Envelope
from chillly.errors import StartupError
from chillly.messages import Alarm, FillEvent, Heartbeat, OrderEvent, PositionEvent, AccountEvent
from chillly.messages import RiskEvent
from chillly.process import Service, State, run_service
from chillly.singleton import acquire
from gateway import journal as J
from gateway.book import ACCOUNT, Book, Spec
from gateway.gate import (BookView, CancelEntries, CancelOrders, Flatten, Gate, Intent, QuoteView,
                          SetTradingState, WorkingOrder, ACTIVE, BUY, SELL)
from gateway.journal import Journal
from gateway.risk_runtime import HISTORY_MS, RiskRuntime
from gateway.orders import FILLED, TERMINAL, FillLedger, OrderBookMachine
from gateway.requests import (TYPE_NAME, VENUE_TYPE, Invalid, build_intent, leg_prices,
                              owner_of, parse_submit, venue_brackets)
from gateway.settings import GatewaySettings
from topstepx.client import ProjectXClient
from topstepx.contracts import ContractNotFound, ContractResolver, symbol_of
from topstepx.errors import ApiError, OutcomeUnknown, VenueError
from topstepx.hub import HubAgent, user_events, user_hub_subscriber
from topstepx.models import Account, HalfTrade, Order, Position
from topstepx.settings import parse_budget

log = logging.getLogger("gateway")
#: How long a fill without its Position event yet is counted by the risk gate (real seconds).
UNPOSTED_S = 0.5

POSITION_BRACKETS = "position brackets"   # the venue's refusal text (errorCode 2), lower case
SEARCH_MARGIN_MS = 5 * 60_000             # clock skew margin when searching orders by time


class GatewayService(Service):
    name = "gateway"
    settings_cls = GatewaySettings

    # ------------------------------------------------------------------ start

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
            "managed_legs", "unprotected_alarms", "gate_actions")})
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
        from topstepx.budget import RateBudget
        count, window = parse_budget(s.gateway_rest_budget)
        self.client.budgets["rest"] = RateBudget("rest", count, window, clock=self.clock,
                                                 margin_s=window * 0.02 + 0.1 * self.clock.speed)
        self.resolver = ContractResolver(self.client)
        self.account = await self._pick_account()
        self.book = Book(self.account.id, self.account.name, float(self.account.balance or 0.0),
                         bool(self.account.can_trade if self.account.can_trade is not None
                              else True))
        self.position_brackets = s.gateway_bracket_mode == "managed"
        self.bus.serve("gateway", self.command_handlers(), with_sender=True)
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
        self._writes: set[asyncio.Task[Any]] = set()
        self._quoted: set[str] = set()
        log.info("account %s (%d); journal %s (version %d, %d intents, %d orders, %d fills)",
                 self.account.name, self.account.id, s.gateway_database_path, loaded.version,
                 len(self.intents), len(self.orders), len(self.ledger.seen))

    def make_gate(self) -> Gate:
        """The risk gate (gateway/risk.py): Topstep's rules and the strategies' limits."""
        return self.risk.gate

    def command_handlers(self) -> dict[str, Any]:
        return {"submit": self.cmd_submit, "cancel": self.cmd_cancel, "modify": self.cmd_modify,
                "cancel_all": self.cmd_cancel_all, "flatten": self.cmd_flatten,
                "orders": self.cmd_orders, "positions": self.cmd_positions,
                "account": self.cmd_account, "halt": self.cmd_halt, "resume": self.cmd_resume,
                "risk": self.cmd_risk}

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

    # ------------------------------------------------------------------ run

    async def run(self) -> None:
        self._tasks.append(asyncio.ensure_future(self.hub.run()))
        try:
            await asyncio.wait_for(self.hub.connected.wait(), 10.0)
        except asyncio.TimeoutError:
            log.warning("user hub not connected yet; reconciling by REST alone")
        day = self._day_start()
        for f in self._journal_fills:  # today's P&L and owners' shares from our own record
            if (f["vt"] or f["at_ms"]) >= day:
                await self._ensure_spec(f["contract"])
                self.book.add_trade(f["contract"], f["owner"], f["side"], f["size"], f["price"],
                                    f["fees"], f["pnl"])
        pending = [r for r in self.intents.values() if r["status"] == J.SENDING]
        if pending:
            log.info("resolving %d intents left without a venue id", len(pending))
            await asyncio.gather(*(self._resolve(r, since_restart=True) for r in pending))
        await self.reconcile(start=True)
        if not self._risk_known:
            trades = await self.client.search_trades(self.account.id,
                                                     self.clock.now_ms() - HISTORY_MS)
            await self.risk.bootstrap(
                [(t.creation_timestamp, float(t.profit_and_loss or 0.0) - float(t.fees or 0.0))
                 for t in trades if t.creation_timestamp is not None and not t.voided],
                self.book.balance)
        self.ready = True
        log.info("ready: %d working orders, %d positions", len(self._working()),
                 len(self.book.held()))
        self._tasks.append(asyncio.ensure_future(self._reconcile_loop()))
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
        pending_writes = list(getattr(self, "_writes", ()))
        if pending_writes:
            await asyncio.gather(*pending_writes, return_exceptions=True)
        if getattr(self, "client", None) is not None:
            await self.client.aclose()
        if getattr(self, "risk", None) is not None:
            await self.risk.flush()
        if getattr(self, "journal", None) is not None:
            await self.journal.close()
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
        self.counters["ready"] = int(getattr(self, "ready", False))
        if getattr(self, "risk", None) is not None:
            self.counters["risk_flatten_held_back"] = self.risk.gate.held_back
            self.counters["risk_rejections"] = self.risk.gate.book.rejections
        return super().heartbeat()

    # ------------------------------------------------------------------ submit

    async def cmd_submit(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        self.counters["submits"] += 1
        if not self.ready:
            self.counters["not_ready"] += 1
            return {"status": "not_ready", "client_id": args.get("client_id"),
                    "message": "the gateway is reconciling with the venue; try again shortly"}
        owner = owner_of(sender)
        try:
            req = parse_submit(args, owner, max_client_id=self.s.gateway_max_client_id,
                               min_bracket_ticks=self.s.gateway_min_bracket_ticks)
        except Invalid as exc:
            return self._rejected(args.get("client_id"), exc.rule, str(exc), "rejected_invalid")
        cid = req.client_id
        if cid in self.intents or cid in self._reserved:
            old = self.intents.get(cid, {})
            return self._rejected(cid, "duplicate", f"client id {cid} was already used"
                                  + (f" (order {old['order_id']})" if old.get("order_id")
                                     else ""), "rejected_duplicate",
                                  order_id=old.get("order_id"))
        self._reserved.add(cid)
        try:
            try:
                contract = await self.resolver.resolve(req.contract)
            except ContractNotFound as exc:
                return self._rejected(cid, "invalid", f"unknown contract: {exc}",
                                      "rejected_invalid")
            spec = self._spec(contract)
            if contract.active_contract is False:   # the gate refuses a month not the front
                self.risk.gate.inactive.add(contract.id)
            net = self.book.venue.get(contract.id)
            try:
                intent = build_intent(req, owner, contract.id, spec.symbol, spec.tick_size,
                                      spec.tick_value, net.qty if net else 0, self.clock.now_ms())
            except Invalid as exc:
                return self._rejected(cid, exc.rule, str(exc), "rejected_invalid")
            verdict = self.gate.check(intent, self.view())
            self.risk.save_soon()
            if not verdict.permits(intent):
                rule = verdict.rule or "risk"
                reason = verdict.reason or "refused by the risk gate"
                self._risk_event("reject", reason, rule, owner, cid)
                return self._rejected(cid, rule, reason, "rejected_gate")
            # Counted as working by the next check until the venue's order exists.
            self._inflight[cid] = intent
            trail_price = None
            if intent.order_type == "trailing_stop":
                last = await self._last_price(contract.id)
                if last is None:
                    return self._rejected(cid, "invalid", f"no last price for {spec.symbol}: "
                                          "a trailing stop needs one", "rejected_invalid")
                off = (intent.trail_ticks or 0) * spec.tick_size
                trail_price = round(last - off if intent.side == SELL else last + off, 10)
            rec = self._new_intent(cid, owner, contract.id, intent.side, intent.size,
                                   intent.order_type, limit_price=intent.limit_price,
                                   stop_price=intent.stop_price, trail_ticks=intent.trail_ticks,
                                   sl_ticks=intent.sl_ticks, tp_ticks=intent.tp_ticks)
            return await self._send(rec, trail_price)
        finally:
            self._reserved.discard(cid)
            self._inflight.pop(cid, None)

    def _rejected(self, cid: Any, rule: str, message: str, counter: str,
                  code: int | None = None, order_id: int | None = None) -> dict[str, Any]:
        self.counters["rejected"] += 1
        self.counters[counter] += 1
        log.info("rejected %s: %s (%s)", cid, message, rule)
        out: dict[str, Any] = {"status": "rejected", "client_id": cid, "rule": rule,
                               "message": message}
        if code is not None:
            out["code"] = code
        if order_id is not None:
            out["order_id"] = order_id
        return out

    async def _send(self, rec: dict[str, Any], trail_price: float | None) -> dict[str, Any]:
        """Journal the intent, then place it once. Never resends; an unclear answer is
        resolved by customTag (`_resolve`)."""
        cid = rec["client_id"]
        managed = bool(rec["sl_ticks"] or rec["tp_ticks"]) and self.position_brackets
        rec["managed"] = int(managed)
        try:
            await self.journal.add_intent(rec)
        except sqlite3.IntegrityError:
            return self._rejected(cid, "duplicate", f"client id {cid} was already used",
                                  "rejected_duplicate")
        except sqlite3.Error as exc:  # a full or broken disk: nothing may be sent unjournaled
            self._alarm("journal", True, f"cannot write the journal: {exc}")
            return self._rejected(cid, "journal", f"the journal cannot be written ({exc}); "
                                  "nothing was sent", "rejected_invalid")
        self.intents[cid] = rec
        self.by_tag[rec["custom_tag"]] = cid
        sl, tp = (None, None) if managed else venue_brackets(rec["side"], rec["sl_ticks"],
                                                             rec["tp_ticks"])
        try:
            order_id = await self.client.place_order(
                self.account.id, rec["contract"], VENUE_TYPE[rec["order_type"]], rec["side"],
                rec["size"], limit_price=rec["limit_price"], stop_price=rec["stop_price"],
                trail_price=trail_price, custom_tag=rec["custom_tag"],
                stop_loss_bracket=sl, take_profit_bracket=tp)
        except ApiError as exc:
            vid = exc.payload.get("orderId") if isinstance(exc.payload, dict) else None
            msg = exc.message or f"errorCode {exc.code}"
            if (exc.code == 2 and POSITION_BRACKETS in msg.lower() and not managed
                    and rec["parent_id"] is None):
                return await self._retry_managed(rec, trail_price, msg)
            self._resolve_soon(rec, J.REJECTED, None, exc.code, msg)
            return self._rejected(cid, "venue", msg, "rejected_venue", code=exc.code,
                                  order_id=vid if isinstance(vid, int) else None)
        except OutcomeUnknown as exc:
            self.counters["unknown_outcomes"] += 1
            log.warning("%s: %s", cid, exc)
            self._spawn_resolve(rec)
            return {"status": "unknown", "client_id": cid,
                    "message": f"no clear answer from the venue ({exc.why}): being reconciled"}
        except VenueError as exc:  # refused before acting (HTTP 400 etc.): not placed
            self._resolve_soon(rec, J.NOT_PLACED, None, None, str(exc))
            return self._rejected(cid, "venue", str(exc), "rejected_venue")
        if rec["status"] == J.SENDING:
            self._resolve_soon(rec, J.PLACED, order_id)
        self._note_placed(rec, order_id, managed)
        self.counters["accepted"] += 1
        return {"status": "accepted", "client_id": cid, "order_id": order_id,
                "message": f"order {order_id} accepted"}

    async def _retry_managed(self, rec: dict[str, Any], trail_price: float | None,
                             why: str) -> dict[str, Any]:
        """The account is in Position Brackets mode: the venue refused the bracketed order
        outright (a clear answer, nothing is working), so place the entry alone under a new tag
        and protect it ourselves when it fills."""
        log.warning("venue refuses brackets (%s): the gateway manages the OCO from now on", why)
        self.position_brackets = True
        await self._resolve_as(rec, J.REJECTED, None, 2, why)
        rec = dict(rec, custom_tag=f"{rec['client_id']}-E", status=J.SENDING, code=None,
                   message=None, created_ms=self.clock.now_ms())
        rec["managed"] = 1
        await self.journal.retag_intent(rec["client_id"], rec["custom_tag"], rec["created_ms"])
        self.intents[rec["client_id"]] = rec
        self.by_tag[rec["custom_tag"]] = rec["client_id"]
        return await self._send_again_managed(rec, trail_price)

    async def _send_again_managed(self, rec: dict[str, Any],
                                  trail_price: float | None) -> dict[str, Any]:
        cid = rec["client_id"]
        try:
            order_id = await self.client.place_order(
                self.account.id, rec["contract"], VENUE_TYPE[rec["order_type"]], rec["side"],
                rec["size"], limit_price=rec["limit_price"], stop_price=rec["stop_price"],
                trail_price=trail_price, custom_tag=rec["custom_tag"])
        except ApiError as exc:
            msg = exc.message or f"errorCode {exc.code}"
            self._resolve_soon(rec, J.REJECTED, None, exc.code, msg)
            return self._rejected(cid, "venue", msg, "rejected_venue", code=exc.code)
        except OutcomeUnknown as exc:
            self.counters["unknown_outcomes"] += 1
            self._spawn_resolve(rec)
            return {"status": "unknown", "client_id": cid,
                    "message": f"no clear answer from the venue ({exc.why}): being reconciled"}
        if rec["status"] == J.SENDING:
            self._resolve_soon(rec, J.PLACED, order_id)
        self._note_placed(rec, order_id, True)
        self.counters["accepted"] += 1
        return {"status": "accepted", "client_id": cid, "order_id": order_id,
                "message": f"order {order_id} accepted (brackets managed by the gateway)"}

    def _note_placed(self, rec: dict[str, Any], order_id: int, managed: bool) -> None:
        if order_id not in self.orders:
            self._store_order(self._row_from_intent(rec, order_id))
        if managed:
            self.orders[order_id]["managed"] = True

    def _row_from_intent(self, rec: dict[str, Any], order_id: int) -> dict[str, Any]:
        return {"order_id": order_id, "account": self.account.id, "client_id": rec["client_id"],
                "owner": rec["owner"], "contract": rec["contract"], "side": rec["side"],
                "size": rec["size"], "order_type": VENUE_TYPE[rec["order_type"]], "status": 6,
                "state": "accepted", "fill_volume": 0, "filled_price": None,
                "limit_price": rec["limit_price"], "stop_price": rec["stop_price"],
                "custom_tag": rec["custom_tag"], "parent_id": rec["parent_id"],
                "created_ms": rec["created_ms"], "updated_ms": rec["created_ms"]}

    def _resolve_soon(self, rec: dict[str, Any], status: str, order_id: int | None,
                      code: int | None = None, message: str | None = None) -> None:
        """Record a clear venue answer: in memory now, in the journal without holding up the
        reply (a crash before that commit leaves the intent `sending`, which the restart
        resolves by customTag: the same outcome)."""
        rec.update(status=status, order_id=order_id or rec.get("order_id"), code=code,
                   message=message, resolved_ms=self.clock.now_ms())
        self._write_soon(self.journal.resolve_intent(
            rec["client_id"], status, rec["resolved_ms"], order_id, code, message))

    def _write_soon(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._writes.add(task)
        task.add_done_callback(self._write_done)

    def _write_done(self, task: "asyncio.Task[Any]") -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("journal write failed: %s", task.exception())
            self._alarm("journal", True, f"journal write failed: {task.exception()}")

    async def _resolve_as(self, rec: dict[str, Any], status: str, order_id: int | None,
                          code: int | None = None, message: str | None = None) -> None:
        rec.update(status=status, order_id=order_id or rec.get("order_id"), code=code,
                   message=message, resolved_ms=self.clock.now_ms())
        await self.journal.resolve_intent(rec["client_id"], status, rec["resolved_ms"],
                                          order_id, code, message)

    # ------------------------------------------------------------------ exactly once

    def _spawn_resolve(self, rec: dict[str, Any]) -> None:
        cid = rec["client_id"]
        if cid not in self._resolving:
            task = asyncio.ensure_future(self._resolve(rec))
            self._resolving[cid] = task
            task.add_done_callback(lambda _t: self._resolving.pop(cid, None))

    async def _resolve(self, rec: dict[str, Any], since_restart: bool = False) -> None:
        """Find an intent whose outcome is unknown by its customTag and adopt the order, or
        after GATEWAY_UNKNOWN_WAIT real seconds record it as not placed. Never sends."""
        deadline = time.monotonic() + self.s.gateway_unknown_wait
        tag = rec["custom_tag"]
        while rec["status"] == J.SENDING:
            try:
                found = [o for o in await self.client.search_orders(
                    self.account.id, rec["created_ms"] - SEARCH_MARGIN_MS)
                    if o.custom_tag == tag]
            except VenueError as exc:
                log.warning("%s: search by tag failed (%s); retrying", rec["client_id"], exc)
                found = []
            if found:
                order = found[0]
                if order.status == 5:
                    await self._resolve_as(rec, J.REJECTED, order.id, None,
                                           "rejected by the venue (found by customTag)")
                else:
                    await self._resolve_as(rec, J.PLACED, order.id)
                    self._note_placed(rec, order.id, bool(rec.get("managed")))
                self.counters["adopted_unknown"] += 1
                log.info("%s: found at the venue as order %d (status %s)", rec["client_id"],
                         order.id, order.status)
                await self._apply_order(order, "rest")
                return
            if time.monotonic() >= deadline:
                await self._resolve_as(rec, J.NOT_PLACED, None, None,
                                       "not found at the venue by customTag")
                self.counters["not_placed"] += 1
                log.warning("%s: not placed (no order with tag %s after %.0fs)",
                            rec["client_id"], tag, self.s.gateway_unknown_wait)
                return
            await asyncio.sleep(0.5)

    # ------------------------------------------------------------------ venue events

    def _owner_for(self, order: Order) -> tuple[str, str | None, int | None]:
        """(owner, client_id, parent_id) of a venue order, from its customTag or its parent."""
        tag = order.custom_tag or ""
        parent = order.parent_order_id
        if tag in self.by_tag:
            rec = self.intents[self.by_tag[tag]]
            return rec["owner"], rec["client_id"], rec["parent_id"] or parent
        for suffix in ("-SL", "-TP"):
            if tag.endswith(suffix) and tag[:-len(suffix)] in self.by_tag:
                rec = self.intents[self.by_tag[tag[:-len(suffix)]]]
                return rec["owner"], tag, parent
        if parent is not None and parent in self.orders:
            return self.orders[parent]["owner"], tag or None, parent
        return "external", tag or None, parent

    async def _apply_order(self, order: Order, source: str) -> None:
        if order.account_id not in (None, self.account.id):
            return
        known = self.orders.get(order.id)
        if known is not None:
            owner, cid, parent = known["owner"], known["client_id"], known["parent_id"]
            if owner == "external":
                owner, cid, parent = self._owner_for(order)
        else:
            owner, cid, parent = self._owner_for(order)
            if owner == "external":
                self.counters["external_adopted"] += 1
                log.info("adopted external order %d (%s)", order.id, order.contract_id)
        # A hub event can beat the place() reply: it resolves the intent too.
        managed = False
        if order.custom_tag in self.by_tag:
            rec = self.intents[self.by_tag[order.custom_tag]]
            if rec["custom_tag"] == order.custom_tag:
                managed = bool(rec.get("managed"))
                if rec["status"] == J.SENDING and rec.get("order_id") is None:
                    rec["order_id"] = order.id
                elif rec["status"] == J.NOT_PLACED and order.status != 5:
                    # it reached the venue after the bounded wait after all: adopt it
                    self._resolve_soon(rec, J.PLACED, order.id)
                    self._diff(f"order {order.id} ({rec['client_id']}) arrived after it was "
                               "recorded as not placed; adopted")
        base = known or {}
        size = order.size if order.size is not None else base.get("size", 0)
        tr = self.machine.apply(order.id, order.status, size, order.fill_volume,
                                order.filled_price, order.limit_price, order.stop_price)
        st = self.machine.orders.get(order.id)
        if tr.refused:
            log.info("order %d: %s (%s report refused)", order.id, tr.why, source)
        if st is None:
            return
        row = {"order_id": order.id, "account": self.account.id, "client_id": cid,
               "owner": owner, "contract": order.contract_id or base.get("contract", ""),
               "side": order.side if order.side is not None else base.get("side", 0),
               "size": st.size,
               "order_type": order.type if order.type is not None else base.get("order_type", 0),
               "status": st.status, "state": st.state, "fill_volume": st.fill_volume,
               "filled_price": st.filled_price, "limit_price": st.limit_price,
               "stop_price": st.stop_price, "custom_tag": order.custom_tag,
               "parent_id": parent,
               "created_ms": order.creation_timestamp or base.get("created_ms"),
               "updated_ms": order.update_timestamp or self.clock.now_ms()}
        changed = tr.changed or known is None or known.get("owner") != owner \
            or known.get("state") != st.state
        if managed or base.get("managed"):
            row["managed"] = True
        grew = st.fill_volume - int(base.get("fill_volume") or 0)
        if grew > 0 and row["contract"]:
            self._unposted_seq += 1
            mine = self._unposted.setdefault(row["contract"], {})
            mine[order.id] = (row["side"], mine.get(order.id, (0, 0, 0, 0.0))[1] + grew,
                              self._unposted_seq, time.monotonic())
        self._store_order(row)
        if changed:
            # Appended in arrival order by the writer thread; not awaited, so the hub is never
            # held up by a disk (a crash loses at most what the venue still has: the restart
            # reads orders and today's trades back).
            self._write_soon(self.journal.record_order(
                {k: v for k, v in row.items() if k != "managed"}, self.clock.now_ms(), source,
                True))
            self._publish_order(row)
            await self._on_order_changed(row)

    async def _apply_trade(self, t: HalfTrade, source: str) -> None:
        if t.account_id not in (None, self.account.id) or t.order_id is None:
            return
        if t.id in self.ledger.seen:
            self.ledger.add(t.id)
            return
        order = self.orders.get(t.order_id)
        owner = order["owner"] if order else "external"
        cid = order["client_id"] if order else None
        row: dict[str, Any] = {"trade_id": t.id, "account": self.account.id, "order_id": t.order_id,
               "owner": owner, "client_id": cid, "contract": t.contract_id or "",
               "side": t.side or 0, "size": t.size or 0, "price": float(t.price or 0.0),
               "fees": float(t.fees or 0.0) + float(t.commissions or 0.0),
               "pnl": t.profit_and_loss, "vt": t.creation_timestamp,
               "at_ms": self.clock.now_ms()}
        self.ledger.add(t.id)
        self._write_soon(self.journal.add_fill(row))
        self.counters["fills"] += 1
        await self._ensure_spec(row["contract"])
        if t.creation_timestamp is None or t.creation_timestamp >= self._day_start():
            self.book.add_trade(row["contract"], owner, row["side"], row["size"], row["price"],
                                row["fees"], row["pnl"], bool(t.voided))
        self.bus.publish(topics.fill_event(self.account.id, owner), FillEvent(
            account=self.account.id, trade_id=t.id, order_id=t.order_id,
            contract=row["contract"], side=row["side"], size=row["size"], price=row["price"],
            owner=owner, client_id=cid, fees=row["fees"], pnl=row["pnl"], vt=row["vt"]))
        self._publish_due.add((owner, row["contract"]))

    async def _apply_position(self, p: Position) -> None:
        if p.account_id not in (None, self.account.id) or not p.contract_id:
            return
        await self._ensure_spec(p.contract_id)
        self._unposted.pop(p.contract_id, None)   # the venue's position now includes them
        if self.book.set_venue_position(p.contract_id, p.type or 0, p.size or 0,
                                        p.average_price, p.creation_timestamp):
            self._publish_due.add((ACCOUNT, p.contract_id))
            self._watch_quotes()

    def _apply_account(self, a: Account) -> None:
        if a.id != self.account.id:
            return
        if a.balance is not None:
            self.book.balance = float(a.balance)
        if a.can_trade is not None:
            self.book.can_trade = bool(a.can_trade)

    async def _hub_order(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                await self._apply_order(Order.model_validate(data), "hub")
            except ValueError as exc:
                log.warning("bad order event from the hub: %s", exc)

    async def _hub_trade(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                await self._apply_trade(HalfTrade.model_validate(data), "hub")
            except ValueError as exc:
                log.warning("bad trade event from the hub: %s", exc)

    async def _hub_position(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                await self._apply_position(Position.model_validate(data))
            except ValueError as exc:
                log.warning("bad position event from the hub: %s", exc)

    async def _hub_account(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                self._apply_account(Account.model_validate(data))
            except ValueError as exc:
                log.warning("bad account event from the hub: %s", exc)

    async def _on_hub_open(self, agent: HubAgent) -> None:
        await self._subscribe_hub(agent)
        self._hub_opens += 1
        if self._hub_opens > 1 and self.ready:
            # Nothing is replayed after a reconnect: read the gap back by REST.
            self.counters["hub_gap_reads"] += 1
            asyncio.ensure_future(self._safe_reconcile())

    # ------------------------------------------------------------------ reconciliation

    def _day_start(self) -> int:
        return session_start_ms(self.clock.now_ms())

    async def reconcile(self, start: bool = False) -> None:
        """Read the venue's orders (incl. suspended children), trades of the day, positions
        and account, and apply them: the venue is authoritative."""
        self.counters["reconciles"] += 1
        self._diffs_now = 0
        acc = self.account.id
        day = self._day_start()
        since = min([day] + [r["created_ms"] for r in self._open.values()
                             if r.get("created_ms") and r["state"] not in TERMINAL])
        orders = await self.client.search_orders(acc, since - SEARCH_MARGIN_MS)
        suspended: list[Order] = []
        while True:  # the venue caps a page at 100 rows
            page, _ = await self.client.query_orders(acc, statuses=[1, 6, 7, 8], page_size=100,
                                                     page_offset=len(suspended))
            suspended += page
            if len(page) < 100:
                break
        seen = {o.id for o in orders}
        venue_open = {o.id for o in orders if o.status in (1, 6, 7, 8)} | {o.id for o in suspended}
        for o in sorted(orders + [o for o in suspended if o.id not in seen],
                        key=lambda o: (o.creation_timestamp or 0, o.id)):
            before = self.orders.get(o.id, {}).get("state")
            await self._apply_order(o, "rest")
            after = self.orders.get(o.id, {}).get("state")
            if not start and before is not None and before != after:
                self._diff(f"order {o.id}: {before} -> {after} found by REST")
        # our working orders the venue no longer lists as open: ask for each
        for oid, row in list(self.orders.items()):
            if row["state"] not in TERMINAL and oid not in venue_open and oid not in seen:
                try:
                    o = await self.client.order_by_id(acc, oid)
                    await self._apply_order(o, "rest")
                except VenueError:
                    pass
        trades = await self.client.search_trades(acc, day)
        for t in sorted(trades, key=lambda t: t.id):
            if t.id not in self.ledger.seen and not start:
                self._diff(f"trade {t.id} found by REST")
            await self._apply_trade(t, "rest")
        seq = self._unposted_seq
        positions = await self.client.search_open_positions(acc)
        for c in list(self._unposted):   # fills known before this read are in its positions
            self._unposted[c] = {o: v for o, v in self._unposted[c].items() if v[2] > seq}
        held = {p.contract_id for p in positions}
        for p in positions:
            await self._apply_position(p)
        for contract in list(self.book.held()):
            if contract not in held:
                self._diff(f"position {contract} flat at the venue")
                self.book.set_venue_position(contract, 0, 0, None)
                self._publish_due.add((ACCOUNT, contract))
        for a in await self.client.search_accounts(only_active=True):
            self._apply_account(a)
        if self._diffs_now == 0 and self._alarms.get("reconcile_diff"):
            self._alarms["reconcile_diff"] = False
            self._alarm("reconcile_diff", False, "the venue and the gateway agree again")

    def _diff(self, text: str) -> None:
        self.counters["reconcile_diffs"] += 1
        self._diffs_now += 1
        self._alarms["reconcile_diff"] = True
        self._alarm("reconcile_diff", True, f"the venue differed: {text} (corrected)")

    async def _safe_reconcile(self) -> None:
        try:
            await self.reconcile()
        except VenueError as exc:
            log.warning("reconcile failed: %s", exc)

    async def _reconcile_loop(self) -> None:
        while True:
            await self.clock.sleep(self.s.gateway_reconcile_interval)
            await self._safe_reconcile()

    # ------------------------------------------------------------------ managed OCO

    async def _on_order_changed(self, row: dict[str, Any]) -> None:
        """Managed OCO: protect a filling entry, and keep the sibling of a filling leg no
        larger than what is still open (cancelled once the leg is filled). Run as tasks so
        the hub is not held up by the REST calls."""
        if row.get("managed") and row["fill_volume"] > 0:
            self._spawn(self._protect(row))
        parent = row.get("parent_id")
        if parent is not None and row["fill_volume"] > 0:
            entry = self.orders.get(parent)
            if entry is not None and entry.get("managed"):
                self._spawn(self._adjust_sibling(entry, row))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    def _legs(self, entry_id: int) -> list[dict[str, Any]]:
        return [r for r in self.intents.values() if r["parent_id"] == entry_id]

    async def _protect(self, entry: dict[str, Any]) -> None:
        """Place the stop-loss and take-profit of a filled managed entry (once each, for the
        filled size at fill price -/+ the ticks); when more of the entry fills later, grow the
        working legs to the filled size."""
        rec = self.intents.get(entry["client_id"] or "")
        if rec is None or entry["filled_price"] is None:
            return
        legs = {r["client_id"]: r for r in self._legs(entry["order_id"])}
        spec = self._spec_of(entry["contract"])
        sl_px, tp_px = leg_prices(entry["side"], entry["filled_price"], spec.tick_size,
                                  rec["sl_ticks"], rec["tp_ticks"])
        exit_side = SELL if entry["side"] == BUY else BUY
        for suffix, otype, px in (("-SL", "stop", sl_px), ("-TP", "limit", tp_px)):
            cid = f"{rec['client_id']}{suffix}"
            if px is None or cid in self._reserved:
                continue
            if cid in legs:
                await self._grow_leg(legs[cid], entry["fill_volume"])
                continue
            self._reserved.add(cid)
            try:
                leg = self._new_intent(
                    cid, rec["owner"], entry["contract"], exit_side, entry["fill_volume"], otype,
                    limit_price=px if otype == "limit" else None,
                    stop_price=px if otype == "stop" else None, parent_id=entry["order_id"])
                self.counters["managed_legs"] += 1
                reply = await self._send(leg, None)
                if reply["status"] == "rejected":
                    self._alarms["unprotected"] = True  # the next check clears it when fine
                    self._alarm("unprotected", True, f"{entry['client_id']}: {suffix[1:]} leg "
                                f"rejected: {reply['message']}")
            finally:
                self._reserved.discard(cid)

    async def _grow_leg(self, leg: dict[str, Any], filled: int) -> None:
        row = self.orders.get(leg.get("order_id") or -1)
        if row is None or row["state"] in TERMINAL or row["size"] >= filled:
            return
        try:
            await self.client.modify_order(self.account.id, row["order_id"], size=filled)
            row["size"] = filled
        except VenueError as exc:
            self._alarms["unprotected"] = True
            self._alarm("unprotected", True, f"{leg['client_id']}: cannot grow to {filled} "
                        f"contracts: {exc}")

    async def _adjust_sibling(self, entry: dict[str, Any], leg_row: dict[str, Any]) -> None:
        """A leg filled (partly): the other leg covers what is still open, or goes."""
        still_open = max(0, leg_row["size"] - leg_row["fill_volume"])
        for leg in self._legs(entry["order_id"]):
            oid = leg.get("order_id")
            if not oid or oid == leg_row["order_id"]:
                continue
            row = self.orders.get(oid)
            if row is None or row["state"] in TERMINAL:
                continue
            try:
                if still_open == 0 or leg_row["state"] == FILLED:
                    await self.client.cancel_order(self.account.id, oid)
                elif row["size"] - row["fill_volume"] > still_open:
                    await self.client.modify_order(self.account.id, oid,
                                                   size=row["fill_volume"] + still_open)
            except VenueError as exc:
                log.warning("OCO: adjusting %d failed: %s", oid, exc)

    def _check_protection(self) -> None:
        """One alarm `unprotected` while any filled managed entry whose position is still open
        has fewer working legs than it asked for (after a 2 s grace for placing them)."""
        now = self.clock.now_ms()
        bare: list[str] = []
        for row in self.orders.values():
            if not row.get("managed") or row["fill_volume"] <= 0:
                continue
            net = self.book.venue.get(row["contract"])
            if net is None or net.qty == 0:
                continue
            if now - int(row.get("updated_ms") or now) < 2000 * self.clock.speed:
                continue
            legs = [self.orders.get(r["order_id"]) for r in self._legs(row["order_id"])
                    if r.get("order_id")]
            live = [lg for lg in legs if lg and lg["state"] not in TERMINAL]
            rec = self.intents.get(row["client_id"] or "", {})
            want = (1 if rec.get("sl_ticks") else 0) + (1 if rec.get("tp_ticks") else 0)
            if not any(lg and lg["state"] == FILLED for lg in legs) and len(live) < want:
                bare.append(f"{row['client_id']} ({row['contract']})")
        active = bool(bare)
        if self._alarms.get("unprotected", False) != active:
            self._alarms["unprotected"] = active
            if active:
                self.counters["unprotected_alarms"] += 1
            self._alarm("unprotected", active,
                        "positions without their protective legs: " + ", ".join(bare)
                        if active else "every managed position is protected")

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

    def _alarm(self, code: str, active: bool, text: str) -> None:
        (log.warning if active else log.info)("alarm %s: %s", code, text)
        # Carried in every heartbeat while active (Service.alarms): `chillly status`, which
        # listens for a few seconds only, sees an alarm raised before it started.
        if active:
            self.alarms[code] = text
        else:
            self.alarms.pop(code, None)
        self.bus.publish(topics.alarm(self.process_name), Alarm(
            name=self.process_name, code=code, active=active, text=text))

    # ------------------------------------------------------------------ cancel / modify

    def _find(self, args: dict[str, Any]) -> dict[str, Any]:
        oid = args.get("order_id")
        cid = args.get("client_id")
        if isinstance(oid, int) and not isinstance(oid, bool):
            row = self.orders.get(oid)
            if row is None:
                raise Invalid(f"order {oid} is not known on account {self.account.id}")
            return row
        if isinstance(cid, str):
            rec = self.intents.get(cid)
            if rec is None or not rec.get("order_id") or rec["order_id"] not in self.orders:
                raise Invalid(f"no venue order for client id {cid}")
            return self.orders[rec["order_id"]]
        raise Invalid("order_id (int) or client_id (str) is required")

    def _may_touch(self, row: dict[str, Any], sender: str) -> None:
        owner = owner_of(sender)
        if sender.startswith("strategy-") and row["owner"] != owner:
            raise Invalid(f"order {row['order_id']} belongs to {row['owner']}, not {owner}")

    async def cmd_cancel(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready:
            return {"status": "not_ready", "message": "the gateway is reconciling"}
        try:
            row = self._find(args)
            self._may_touch(row, sender)
        except Invalid as exc:
            self.counters["rejected_invalid"] += 1
            return {"status": "rejected", "order_id": args.get("order_id"), "message": str(exc)}
        return await self._cancel(row)

    async def _cancel(self, row: dict[str, Any]) -> dict[str, Any]:
        oid = row["order_id"]
        self.counters["cancels"] += 1
        if row["state"] in TERMINAL:
            return {"status": "rejected", "order_id": oid,
                    "message": f"order {oid} is already {row['state']}"}
        try:
            await self.client.cancel_order(self.account.id, oid)
        except ApiError as exc:
            return {"status": "rejected", "order_id": oid, "code": exc.code,
                    "message": exc.message or f"errorCode {exc.code}"}
        except OutcomeUnknown as exc:
            asyncio.ensure_future(self._safe_reconcile())
            return {"status": "unknown", "order_id": oid, "message": str(exc)}
        return {"status": "cancelled", "order_id": oid, "message": f"order {oid} cancelled"}

    async def cmd_modify(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready:
            return {"status": "not_ready", "message": "the gateway is reconciling"}
        try:
            row = self._find(args)
            self._may_touch(row, sender)
            spec = self._spec_of(row["contract"])
            size = args.get("size", row["size"])
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                raise Invalid(f"size must be a whole number > 0, got {size!r}")
            prices = {}
            for key in ("limit_price", "stop_price"):
                v = args.get(key)
                if v is not None:
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                        raise Invalid(f"{key} must be a positive number")
                    if spec.tick_size and abs(v / spec.tick_size - round(v / spec.tick_size)) \
                            > 1e-6:
                        raise Invalid(f"{key} {v} is not on the tick grid ({spec.tick_size})")
                    prices[key] = float(v)
        except Invalid as exc:
            self.counters["rejected_invalid"] += 1
            return {"status": "rejected", "order_id": args.get("order_id"), "message": str(exc)}
        intent = Intent(client_id=row["client_id"] or str(row["order_id"]), owner=row["owner"],
                        contract=row["contract"], symbol=spec.symbol, tick_size=spec.tick_size,
                        tick_value=spec.tick_value, side=row["side"], size=size,
                        order_type=TYPE_NAME.get(row["order_type"], "unknown"),
                        limit_price=prices.get("limit_price", row["limit_price"]),
                        stop_price=prices.get("stop_price", row["stop_price"]),
                        kind="modify", order_id=row["order_id"], ts=self.clock.now_ms(),
                        protective=row.get("parent_id") is not None)
        verdict = self.gate.check(intent, self.view())
        if not verdict.permits(intent):
            self._risk_event("reject", verdict.reason, verdict.rule, row["owner"],
                             row["client_id"])
            return {"status": "rejected", "order_id": row["order_id"], "rule": verdict.rule,
                    "message": verdict.reason}
        self.counters["modifies"] += 1
        try:
            await self.client.modify_order(self.account.id, row["order_id"],
                                           size=size if "size" in args else None,
                                           limit_price=prices.get("limit_price"),
                                           stop_price=prices.get("stop_price"))
        except ApiError as exc:
            return {"status": "rejected", "order_id": row["order_id"], "code": exc.code,
                    "message": exc.message or f"errorCode {exc.code}"}
        except OutcomeUnknown as exc:
            asyncio.ensure_future(self._safe_reconcile())
            return {"status": "unknown", "order_id": row["order_id"], "message": str(exc)}
        return {"status": "modified", "order_id": row["order_id"],
                "message": f"order {row['order_id']} modified"}

    def _store_order(self, row: dict[str, Any]) -> None:
        """The one place an order row is stored, so the indexes stay right."""
        oid = row["order_id"]
        self.orders[oid] = row
        if row["state"] in TERMINAL:
            self._open.pop(oid, None)
        else:
            self._open[oid] = row
        if row.get("client_id"):
            self._placed_cids.add(row["client_id"])

    def _working(self, contract: str | None = None, owner: str | None = None
                 ) -> list[dict[str, Any]]:
        return [r for r in self._open.values() if r["state"] not in TERMINAL
                and (contract is None or r["contract"] == contract)
                and (owner is None or r["owner"] == owner)]

    async def _contract_arg(self, args: dict[str, Any]) -> str | None:
        text = args.get("contract")
        if text is None:
            return None
        if not isinstance(text, str):
            raise Invalid("contract must be a string")
        try:
            return (await self.resolver.resolve(text)).id
        except ContractNotFound as exc:
            raise Invalid(f"unknown contract: {exc}") from None

    async def cmd_cancel_all(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready:
            return {"status": "not_ready", "cancelled": [], "message": "reconciling"}
        try:
            contract = await self._contract_arg(args)
        except Invalid as exc:
            return {"status": "rejected", "cancelled": [], "message": str(exc)}
        owner = owner_of(sender) if sender.startswith("strategy-") else args.get("owner")
        return await self._cancel_many(self._working(contract, owner))

    async def _cancel_many(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        done: list[int] = []
        failed: list[int] = []
        # All at once: a flatten at the loss limit must not wait on each cancel in turn.
        for row, out in zip(rows, await asyncio.gather(*(self._cancel(r) for r in rows))):
            (done if out["status"] in ("cancelled", "unknown") else failed).append(
                row["order_id"])
        return {"status": "done" if not failed else "partial", "cancelled": done,
                "failed": failed, "message": f"{len(done)} cancelled"
                + (f", {len(failed)} failed" if failed else "")}

    async def cmd_flatten(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready:
            return {"status": "not_ready", "orders": [], "message": "reconciling"}
        try:
            contract = await self._contract_arg(args)
        except Invalid as exc:
            return {"status": "rejected", "orders": [], "message": str(exc)}
        if contract is None and args.get("all") is not True:
            return {"status": "rejected", "orders": [],
                    "message": "flatten needs a contract or all: true"}
        owner = owner_of(sender) if sender.startswith("strategy-") else args.get("owner")
        return await self.flatten(contract, owner if isinstance(owner, str) else None)

    async def flatten(self, contract: str | None, owner: str | None = None) -> dict[str, Any]:
        """Cancel the working orders (legs included), then close the position(s) with the
        gateway's own market orders, one per owner's share (so every fill stays attributed);
        whatever the venue holds beyond the owners' shares is closed as "manual". With an
        owner: only its orders and its share. Flattening reduces risk by construction, so these
        orders do not pass the gate (the gate's own Flatten action uses this)."""
        cancelled = await self._cancel_many(self._working(contract, owner))
        targets: list[tuple[str, str, int]] = []
        contracts = {c for (o, c), n in self.book.owners.items() if n.qty} | self.book.held()
        for c in sorted(contracts):
            if contract is not None and c != contract:
                continue
            shares = {o: n.qty for (o, cc), n in self.book.owners.items() if cc == c and n.qty}
            if owner is not None:
                if shares.get(owner):
                    targets.append((owner, c, shares[owner]))
                continue
            net = self.book.venue.get(c)
            residual = (net.qty if net else 0) - sum(shares.values())
            if residual:
                shares["manual"] = shares.get("manual", 0) + residual
            targets += [(o, c, q) for o, q in sorted(shares.items()) if q]
        placed: list[int] = []
        problems: list[str] = []
        recs = []
        for o, c, qty in targets:
            self._flat_n += 1
            cid = f"{o}-flat-{self.clock.now_ms()}-{self._flat_n}"
            recs.append(self._new_intent(cid, o, c, SELL if qty > 0 else BUY, abs(qty),
                                         "market"))
        replies = await asyncio.gather(*(self._send(rec, None) for rec in recs))
        for (o, c, qty), reply in zip(targets, replies):
            if reply["status"] == "accepted":
                placed.append(reply["order_id"])
            else:
                problems.append(f"{o} {c}: {reply['status']}: {reply['message']}")
        return {"status": "done" if not problems else "partial",
                "orders": placed, "cancelled": cancelled["cancelled"], "problems": problems,
                "message": f"cancelled {len(cancelled['cancelled'])}, "
                           f"{len(placed)} closing orders"
                + (f"; problems: {'; '.join(problems)}" if problems else "")}

    def _new_intent(self, cid: str, owner: str, contract: str, side: int, size: int,
                    order_type: str, *, limit_price: float | None = None,
                    stop_price: float | None = None, trail_ticks: int | None = None,
                    sl_ticks: int | None = None, tp_ticks: int | None = None,
                    parent_id: int | None = None) -> dict[str, Any]:
        return {"client_id": cid, "custom_tag": cid, "rid": None, "owner": owner,
                "account": self.account.id, "contract": contract, "side": side, "size": size,
                "order_type": order_type, "limit_price": limit_price, "stop_price": stop_price,
                "trail_ticks": trail_ticks, "sl_ticks": sl_ticks, "tp_ticks": tp_ticks,
                "parent_id": parent_id, "managed": 0, "created_ms": self.clock.now_ms(),
                "status": J.SENDING, "order_id": None, "code": None, "message": None,
                "resolved_ms": None}

    # ------------------------------------------------------------------ queries

    async def cmd_orders(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        owner = args.get("owner")
        open_only = args.get("open_only", True) is not False
        rows = [r for r in self.orders.values()
                if (owner is None or r["owner"] == owner)
                and (not open_only or r["state"] not in TERMINAL)]
        rows.sort(key=lambda r: (r.get("created_ms") or 0, r["order_id"]))
        return {"orders": [self._order_msg(r).body() for r in rows], "ready": self.ready}

    async def cmd_positions(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        owner = args.get("owner")
        return {"positions": [self._position_msg(p.contract, p.owner).body()
                              for p in self.book.positions(owner)], "ready": self.ready}

    async def cmd_account(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        out = self._account_msg().body()
        out.update(account_id=self.account.id, ready=self.ready,
                   trading_state=self.trading_state)
        return out

    # ------------------------------------------------------------------ publishing

    def _order_msg(self, r: dict[str, Any]) -> OrderEvent:
        return OrderEvent(
            account=self.account.id, order_id=r["order_id"], contract=r["contract"],
            status=r["status"], side=r["side"], size=r["size"], order_type=r["order_type"],
            owner=r["owner"], state=r["state"], fill_volume=r["fill_volume"],
            filled_price=r["filled_price"], limit_price=r["limit_price"],
            stop_price=r["stop_price"], custom_tag=r["custom_tag"], client_id=r["client_id"],
            parent_id=r["parent_id"], vt=r.get("updated_ms"))

    def _publish_order(self, r: dict[str, Any]) -> None:
        self.bus.publish(topics.order_event(self.account.id, r["owner"]), self._order_msg(r))

    def _position_msg(self, contract: str, owner: str) -> PositionEvent:
        p = self.book.view(contract, owner)
        net = self.book.venue.get(contract) if owner == ACCOUNT else None
        return PositionEvent(account=self.account.id, contract=contract, side=p.side,
                             size=p.size, owner=owner, avg_price=p.avg_price,
                             realized_pnl=p.realized_pnl, open_pnl=p.open_pnl,
                             vt=net.vt if net else None)

    def _account_msg(self) -> AccountEvent:
        b = self.book
        open_pnl = b.open_pnl()
        return AccountEvent(account=self.account.id, name=self.account.name, balance=b.balance,
                            can_trade=b.can_trade, equity=round(b.balance + open_pnl, 2),
                            realized_pnl=b.realized(), open_pnl=open_pnl,
                            vt=self.clock.now_ms())

    def _publish_all(self) -> None:
        """Every second: held positions, those that changed, and the account."""
        due = set(self._publish_due)
        self._publish_due.clear()
        due |= {(ACCOUNT, c) for c in self.book.held()}
        due |= {(o, c) for (o, c), n in self.book.owners.items() if n.qty}
        for owner, contract in sorted(due):
            self.bus.publish(topics.position_event(self.account.id, owner),
                             self._position_msg(contract, owner))
        self.bus.publish(topics.account_event(self.account.id), self._account_msg())

    def _risk_event(self, event: str, reason: str, rule: str | None, owner: str | None = None,
                    client_id: str | None = None) -> None:
        view = self.view()
        g = self.risk.gate
        figures = dict(g.last_figures) if event == "reject" else {}
        figures.update(lots_allowed=g.max_lots(), day_pnl=round(g.day_pnl(view), 2))
        self.bus.publish(topics.risk_event(self.account.id), RiskEvent(
            account=self.account.id, event=event, state=self.trading_state, reason=reason,
            rule=rule, owner=owner, client_id=client_id, floor=g.floor(),
            equity=round(g.equity(view), 2), figures=figures))

    # ------------------------------------------------------------------ quotes, gate

    def _watch_quotes(self) -> None:
        """Mark held contracts from their quotes: take `quote.<contract>.` and ask the
        subscriptions service to stream the contract (fire and forget: without a feed the
        open P&L stays 0 and the periodic compare still keeps positions right)."""
        for contract in self.book.held() | {r["contract"] for r in self._working()}:
            prefix = topics.quote(contract)
            if prefix not in self._quoted:
                self._quoted.add(prefix)
                self.bus.on(prefix, self._on_quote)
                self._tasks.append(asyncio.ensure_future(self._ask_subscribe(contract)))

    async def _ask_subscribe(self, contract: str) -> None:
        try:
            await self.bus.request("subscriptions", "subscribe", {"contract": contract},
                                   timeout=2.0, attempts=3)
        except Exception as exc:
            log.info("could not subscribe %s for marking (%s)", contract, exc)

    async def _last_price(self, contract: str) -> float | None:
        """The last trade price: from the quotes, else the venue's forming 1m bar."""
        q = self.book.quotes.get(contract)
        if q is not None and q.last is not None:
            return q.last
        now = self.clock.now_ms()
        try:
            bars = await self.client.retrieve_bars(contract, now - 3_600_000, now, limit=1,
                                                   include_partial=True)
        except VenueError:
            return None
        return max(bars, key=lambda b: b.t).c if bars else None

    def _on_quote(self, env: Envelope) -> None:
        p = env.payload
        old = self.book.quotes.get(p["contract"])
        self.book.set_quote(QuoteView(
            p["contract"], p.get("bid") if p.get("bid") is not None else (old.bid if old else None),
            p.get("ask") if p.get("ask") is not None else (old.ask if old else None),
            p.get("last") if p.get("last") is not None else (old.last if old else None),
            self.clock.now_ms()))
        if self.ready:
            self._run_gate()

    def view(self) -> BookView:
        b = self.book
        working = tuple(WorkingOrder(
            order_id=r["order_id"], client_id=r["client_id"], owner=r["owner"],
            contract=r["contract"], side=r["side"], size=r["size"],
            remaining=max(0, r["size"] - r["fill_volume"]),
            order_type=TYPE_NAME.get(r["order_type"], "unknown"), status=r["status"],
            limit_price=r["limit_price"], stop_price=r["stop_price"], parent_id=r["parent_id"],
            protective=r["parent_id"] is not None) for r in self._working())
        # Orders the gate let through that are not venue orders yet (in flight, or an unknown
        # outcome being resolved) may still fill: the gate counts them too.
        placed = self._placed_cids
        pending = [(i.client_id, i.owner, i.contract, i.side, i.size, i.order_type)
                   for i in self._inflight.values()]
        pending += [(r["client_id"], r["owner"], r["contract"], r["side"], r["size"],
                     r["order_type"]) for r in self.intents.values()
                    if r["status"] == J.SENDING and r["client_id"] not in self._inflight
                    and r["parent_id"] is None]
        working += tuple(WorkingOrder(
            order_id=-(n + 1), client_id=cid, owner=owner, contract=contract, side=side,
            size=size, remaining=size, order_type=otype, status=6)
            for n, (cid, owner, contract, side, size, otype) in enumerate(pending)
            if cid not in placed)
        # Filled at the venue but not yet in its position: still counted, as if working, for
        # at most UNPOSTED_S real seconds (a Position event normally follows within ms).
        fresh = time.monotonic() - UNPOSTED_S
        working += tuple(WorkingOrder(
            order_id=-oid, client_id=None, owner=self.orders.get(oid, {}).get("owner", "?"),
            contract=contract, side=side, size=qty, remaining=qty, order_type="market",
            status=2) for contract, fills in self._unposted.items()
            for oid, (side, qty, _, at) in fills.items() if at >= fresh)
        return BookView(account_id=self.account.id, account_name=self.account.name,
                        now_ms=self.clock.now_ms(), balance=b.balance, realized_pnl=b.realized(),
                        open_pnl=b.open_pnl(), can_trade=b.can_trade,
                        trading_state=self.trading_state, positions=tuple(b.positions()),
                        orders=working, quotes=dict(b.quotes))

    def _run_gate(self) -> None:
        try:
            actions = self.gate.due(self.view(), self.clock.now_ms())
        except Exception:
            log.exception("gate.due failed")
            return
        self.risk.save_soon()
        for action in actions:
            self.counters["gate_actions"] += 1
            log.info("risk gate: %s", action)
            if isinstance(action, SetTradingState):
                if action.state != self.trading_state:
                    self.trading_state = action.state
                    self._risk_event("state", action.reason, action.rule)
            elif isinstance(action, CancelEntries):
                rows = [r for r in self._working(action.contract, action.owner)
                        if r["parent_id"] is None]
                self._risk_event("action", f"cancel entries: {action.reason}", action.rule)
                asyncio.ensure_future(self._cancel_many(rows))
            elif isinstance(action, CancelOrders):
                ids = set(action.order_ids)
                rows = [r for r in self._working() if r["order_id"] in ids]
                self._risk_event("action", f"cancel {sorted(ids)}: {action.reason}", action.rule)
                asyncio.ensure_future(self._cancel_many(rows))
            elif isinstance(action, Flatten):
                if self._flattening:
                    continue        # one gate flatten at a time: never a second closing order
                self._risk_event("action", f"flatten: {action.reason}", action.rule,
                                 action.owner)
                asyncio.ensure_future(self._gate_flatten(action))

    async def _gate_flatten(self, action: Flatten) -> None:
        self._flattening = True
        try:
            await self.flatten(action.contract, action.owner)
        except Exception:
            log.exception("gate flatten failed")
        finally:
            self._flattening = False

    # ------------------------------------------------------------------ risk commands

    async def cmd_halt(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        out = await self.risk.halt(args, sender)
        self._run_gate()
        return out

    async def cmd_resume(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        out = await self.risk.resume(args, sender, self.view())
        self._run_gate()
        return out

    async def cmd_risk(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        return await self.risk.risk(args, sender, self.view())

    # ------------------------------------------------------------------ contracts

    def _spec(self, contract: Any) -> Spec:
        spec = Spec(float(contract.tick_size or 0.0), float(contract.tick_value or 0.0),
                    symbol_of(contract))
        self.book.specs[contract.id] = spec
        return spec

    def _spec_of(self, contract_id: str) -> Spec:
        return self.book.specs.get(contract_id) or Spec(0.0, 0.0, contract_id)

    async def _ensure_spec(self, contract_id: str) -> None:
        if contract_id and contract_id not in self.book.specs:
            try:
                self._spec(await self.resolver.resolve(contract_id))
            except (ContractNotFound, VenueError) as exc:
                log.warning("no metadata for %s: %s", contract_id, exc)


def cli(args: Any = None) -> int:
    return run_service(GatewayService)

