"""The gateway's commands (service `gateway`, docs/wire-format.md): who may ask what, by the
door a command came through (`Authority`), the validation of each command's arguments and who
may touch which order, then the action (`Commands`). Every command replies; order commands
reply `not_ready` until start-up is done.

Two doors (docs/architecture.md, "Trust"):
- the trader's tools socket (chillly/tools_socket.py): the kernel vouches that the peer runs
  as the trader's own user, so everything is served there, for any owner ("manual" orders);
- the bus: a command's sender is the envelope's `src`, which only our own processes can set
  (strategy code has no bus socket: its trusted parent stamps `strategy-NAME`). Served there:
  the reads (`orders`, `positions`, `account`, `fills`, `refusals`, `risk` without a setting;
  a strategy host's parent relays none of `fills` and `refusals`), and a strategy's own
  order commands (`submit`, `cancel`, `modify`, `cancel_all`, `flatten`) about its own orders.
  Everything else is the trader's (halt, resume, risk settings, manual orders, another owner's
  order): refused, counted and alarmed, and the gateway goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chillly.bus import CommandError
from chillly.calendar import session_start_ms, trading_date
from chillly.clock import Clock
from chillly.tools_socket import ToolsError
from trading.risk.types import SELL, Intent
from gateway.gate_runner import GateRunner
from trading.orders.views import Refusals, show_waiting_legs
from gateway.closing import Closer
from gateway.journal import Journal
from gateway.placing import Placer
from gateway.publishing import Publisher, fill_msg, intent_fields, order_fields
from gateway.reconcile import Reconciler
from gateway.risk_runtime import RiskRuntime
from gateway.settings import GatewaySettings
from gateway.venue_events import Specs
from topstepx.client import ProjectXClient
from topstepx.contracts import ContractNotFound, ContractResolver
from topstepx.errors import ApiError, OutcomeUnknown
from trading.blotter import Blotter
from trading.orders.records import OrderRecord
from trading.orders.requests import (
    TYPE_NAME,
    Invalid,
    build_intent,
    owner_of,
    parse_modify,
    parse_submit,
)

log = logging.getLogger("gateway")

READS = frozenset({"orders", "positions", "account", "fills", "refusals", "risk"})
STRATEGY_COMMANDS = frozenset({"submit", "cancel", "modify", "cancel_all", "flatten"})
ABOUT_AN_ORDER = frozenset({"cancel", "modify"})
TOOLS_SENDER = "tools"          # owner_of() makes it "manual"
ALARM = "refused_command"
QUIET_S = 60.0                  # the alarm clears after this long without a refusal
FILLS_MAX = 1000                # the most fills one `fills` answer carries
REFUSALS_MAX = 1000             # the most refusals one `refusals` answer carries

Handler = Callable[[dict[str, Any], str], Awaitable[Any]]
Alarm = Callable[[str, bool, str], None]


def bus_refusal(name: str, args: dict[str, Any], sender: str) -> str | None:
    """Why `sender` may not send `name` over the bus, or None when it may."""
    if name in READS and not (name == "risk" and args.get("set_high_water") is not None):
        return None
    if name in STRATEGY_COMMANDS and owner_of(sender) != "manual":
        return None
    what = "risk --set-high-water" if name == "risk" else name
    return (f"{what} from {sender!r} over the bus: that is the trader's, served only on the "
            "tools socket")


class Authority:
    """Wraps the gateway's command handlers for each door and counts what it refuses."""

    def __init__(self, handlers: dict[str, Handler], counters: dict[str, Any], alarm: Alarm,
                 owner_of_order: Callable[[dict[str, Any]], str | None]) -> None:
        self.handlers = handlers
        self.counters = counters
        self.alarm = alarm
        self.owner_of_order = owner_of_order
        self._quiet: asyncio.TimerHandle | None = None
        counters.update(refused_bus=0, refused_not_owner=0, refused_peer=0)

    def bus_handlers(self) -> dict[str, Any]:
        return {name: self._bus(name, h) for name, h in self.handlers.items()}

    def _bus(self, name: str, handler: Handler) -> Handler:
        async def guarded(args: dict[str, Any], sender: str) -> Any:
            why = bus_refusal(name, args, sender)
            if why is not None:
                self.refused("refused_bus", why)
                raise CommandError(why)
            if name in ABOUT_AN_ORDER:
                try:
                    owner = self.owner_of_order(args)
                except Invalid:
                    owner = None      # unknown order: the handler says so
                if owner is not None and owner != owner_of(sender):
                    why = (f"{name} from {sender!r}: order {args.get('order_id') or args.get('client_id')} "
                           f"belongs to {owner}")
                    self.refused("refused_not_owner", why)
                    return {"status": "rejected", "order_id": args.get("order_id"),
                            "rule": "not_owner", "message": why}
            return await handler(args, sender)
        return guarded

    async def tools(self, name: str, args: dict[str, Any]) -> Any:
        """A command from the tools socket: the trader, any owner."""
        handler = self.handlers.get(name)
        if handler is None:
            raise ToolsError(f"unknown command {name!r}")
        try:
            return await handler(args, TOOLS_SENDER)
        except CommandError as exc:
            raise ToolsError(str(exc)) from None

    def refused_peer(self, pid: int, uid: int, gid: int) -> None:
        self.refused("refused_peer", f"tools socket: pid {pid} runs as uid {uid}, not the "
                                     "trader's user")

    def refused(self, counter: str, why: str) -> None:
        self.counters[counter] = self.counters.get(counter, 0) + 1
        log.warning("refused: %s (%s %d)", why, counter, self.counters[counter])
        self.alarm(ALARM, True, why)
        if self._quiet is not None:
            self._quiet.cancel()
        self._quiet = asyncio.get_running_loop().call_later(
            QUIET_S, lambda: self.alarm(ALARM, False, "no refused command for a minute"))


class Commands:
    """The command handlers served on the bus (`handlers`)."""

    def __init__(self, s: GatewaySettings, client: ProjectXClient, resolver: ContractResolver,
                 blotter: Blotter, risk: RiskRuntime, runner: GateRunner, placer: Placer,
                 closer: Closer, reconciler: Reconciler, publisher: Publisher, specs: Specs,
                 journal: Journal, clock: Clock, counters: dict[str, int],
                 ready: Callable[[], bool]) -> None:
        self.s, self.client, self.resolver, self.blotter = s, client, resolver, blotter
        self.journal = journal
        self.risk, self.runner, self.placer, self.closer = risk, runner, placer, closer
        self.reconciler, self.publisher, self.specs = reconciler, publisher, specs
        self.clock, self.counters, self.ready = clock, counters, ready
        self.refusals = Refusals()     # the day's refused submits, for `orders --all`

    def handlers(self) -> dict[str, Any]:
        return {"submit": self.submit, "cancel": self.cancel, "modify": self.modify,
                "cancel_all": self.cancel_all, "flatten": self.flatten,
                "orders": self.orders, "positions": self.positions,
                "account": self.account, "fills": self.fills, "refusals": self.day_refusals,
                "halt": self.halt, "resume": self.resume,
                "risk": self.risk_report}

    async def submit(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        out = await self._submit(args, sender)
        if out.get("status") == "rejected" and out.get("order_id") not in self.blotter.orders:
            self.refusals.add(args, sender, out, self.clock.now_ms())
        return out

    async def _submit(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        self.counters["submits"] += 1
        if not self.ready():
            self.counters["not_ready"] += 1
            return {"status": "not_ready", "client_id": args.get("client_id"),
                    "message": "the gateway is reconciling with the venue; try again shortly"}
        owner = owner_of(sender)
        placer = self.placer
        try:
            req = parse_submit(args, owner, max_client_id=self.s.gateway_max_client_id,
                               min_bracket_ticks=self.s.gateway_min_bracket_ticks)
        except Invalid as exc:
            return placer.rejected(args.get("client_id"), exc.rule, str(exc), "rejected_invalid")
        cid = req.client_id
        taken = self.blotter.reserve(cid)
        if taken is not True:
            old = taken.order_id if taken else None
            return placer.rejected(cid, "duplicate", f"client id {cid} was already used"
                                   + (f" (order {old})" if old else ""), "rejected_duplicate",
                                   order_id=old)
        try:
            try:
                contract = await self.resolver.resolve(req.contract)
            except ContractNotFound as exc:
                return placer.rejected(cid, "invalid", f"unknown contract: {exc}",
                                       "rejected_invalid")
            spec = self.specs.of_contract(contract)
            if contract.active_contract is False:   # the gate refuses a month not the front
                self.risk.gate.inactive.add(contract.id)
            net = self.blotter.book.venue.get(contract.id)
            try:
                intent = build_intent(req, owner, contract.id, spec.symbol, spec.tick_size,
                                      spec.tick_value, net.qty if net else 0, self.clock.now_ms())
            except Invalid as exc:
                return placer.rejected(cid, exc.rule, str(exc), "rejected_invalid")
            b = self.blotter
            why = b.resting_refusal(intent.order_type, None) \
                or b.bracket_refusal(bool(intent.sl_ticks or intent.tp_ticks),
                                     placer.position_brackets) \
                or b.reduce_refusal(contract.id, intent.side, intent.size, None)
            if why is not None:
                return placer.rejected(cid, "cannot_cancel", why, "rejected_invalid")
            await self.runner.await_marks(intent)     # a price for what is held, if one is coming
            verdict = self.risk.gate.check(intent, self.runner.view())
            self.risk.save_soon()
            if not verdict.permits(intent):
                rule = verdict.rule or "risk"
                reason = verdict.reason or "refused by the risk gate"
                await self.publisher.refusal(reason, rule, owner, cid, intent_fields(intent))
                return placer.rejected(cid, rule, reason, "rejected_gate")
            # Counted as working by the next check until the venue's order exists.
            self.blotter.judged(intent)
            trail_price = None
            if intent.order_type == "trailing_stop":
                last = await self.runner.last_price(contract.id)
                if last is None:
                    return placer.rejected(cid, "invalid", f"no last price for {spec.symbol}: "
                                           "a trailing stop needs one", "rejected_invalid")
                off = (intent.trail_ticks or 0) * spec.tick_size
                trail_price = round(last - off if intent.side == SELL else last + off, 10)
            rec = self.blotter.new_intent(
                cid, owner, contract.id, intent.side, intent.size, intent.order_type,
                self.clock.now_ms(), limit_price=intent.limit_price,
                stop_price=intent.stop_price, trail_ticks=intent.trail_ticks,
                sl_ticks=intent.sl_ticks, tp_ticks=intent.tp_ticks)
            return await placer.send(rec, trail_price)
        finally:
            self.blotter.release(cid)

    async def cancel(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready():
            return {"status": "not_ready", "message": "the gateway is reconciling"}
        try:
            row = self.find(args)
            self._may_touch(row, sender)
        except Invalid as exc:
            self.counters["rejected_invalid"] += 1
            return {"status": "rejected", "order_id": args.get("order_id"), "message": str(exc)}
        refused = await self._rate_refusal(sender, row.client_id,
                                           order_fields("cancel", row, None))
        if refused is not None:
            return {"status": "rejected", "order_id": row.order_id, **refused}
        return await self.closer.cancel(row)

    async def _rate_refusal(self, sender: str, client_id: str | None,
                      order: dict[str, Any]) -> dict[str, Any] | None:
        """A cancel counts in the fair-use rate like any order action (the gate's own cancels
        do not pass here); the refusal's rule and message when the minute's allowance is used."""
        owner = owner_of(sender)
        verdict = self.risk.gate.count_cancel(owner, self.clock.now_ms())
        if verdict.allowed:
            return None
        await self.publisher.refusal(verdict.reason, verdict.rule, owner, client_id, order)
        return {"rule": verdict.rule, "message": verdict.reason}

    async def modify(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready():
            return {"status": "not_ready", "message": "the gateway is reconciling"}
        try:
            row = self.find(args)
            self._may_touch(row, sender)
            spec = self.specs.of(row.contract)
            size, prices = parse_modify(args, row.size, spec.tick_size)
        except Invalid as exc:
            self.counters["rejected_invalid"] += 1
            return {"status": "rejected", "order_id": args.get("order_id"), "message": str(exc)}
        intent = Intent(client_id=row.client_id or str(row.order_id), owner=row.owner,
                        contract=row.contract, symbol=spec.symbol, tick_size=spec.tick_size,
                        tick_value=spec.tick_value, side=row.side, size=size,
                        order_type=TYPE_NAME.get(row.order_type, "unknown"),
                        limit_price=prices.get("limit_price", row.limit_price),
                        stop_price=prices.get("stop_price", row.stop_price),
                        kind="modify", order_id=row.order_id, ts=self.clock.now_ms(),
                        protective=row.parent_id is not None)
        await self.runner.await_marks(intent)
        verdict = self.risk.gate.check(intent, self.runner.view())
        if not verdict.permits(intent):
            await self.publisher.refusal(verdict.reason, verdict.rule, row.owner,
                                         row.client_id, intent_fields(intent))
            return {"status": "rejected", "order_id": row.order_id, "rule": verdict.rule,
                    "message": verdict.reason}
        self.counters["modifies"] += 1
        try:
            await self.client.modify_order(self.blotter.account_id, row.order_id,
                                           size=size if "size" in args else None,
                                           limit_price=prices.get("limit_price"),
                                           stop_price=prices.get("stop_price"))
        except ApiError as exc:
            return {"status": "rejected", "order_id": row.order_id, "code": exc.code,
                    "message": exc.message or f"errorCode {exc.code}"}
        except OutcomeUnknown as exc:
            asyncio.ensure_future(self.reconciler.safe_reconcile())
            return {"status": "unknown", "order_id": row.order_id, "message": str(exc)}
        return {"status": "modified", "order_id": row.order_id,
                "message": f"order {row.order_id} modified"}

    async def cancel_all(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready():
            return {"status": "not_ready", "cancelled": [], "message": "reconciling"}
        try:
            contract = await self._contract_arg(args)
        except Invalid as exc:
            return {"status": "rejected", "cancelled": [], "message": str(exc)}
        owner = owner_of(sender) if sender.startswith("strategy-") else args.get("owner")
        refused = await self._rate_refusal(sender, None,
                                           order_fields("cancel_all", None, contract))
        if refused is not None:
            return {"status": "rejected", "cancelled": [], **refused}
        return await self.closer.cancel_many(self.blotter.working(contract, owner))

    async def flatten(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready():
            return {"status": "not_ready", "orders": [], "message": "reconciling"}
        try:
            contract = await self._contract_arg(args)
        except Invalid as exc:
            return {"status": "rejected", "orders": [], "message": str(exc)}
        if contract is None and args.get("all") is not True:
            return {"status": "rejected", "orders": [],
                    "message": "flatten needs a contract or all: true"}
        owner = owner_of(sender) if sender.startswith("strategy-") else args.get("owner")
        return await self.closer.flatten(contract, owner if isinstance(owner, str) else None)

    async def orders(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        owner = args.get("owner")
        open_only = args.get("open_only", True) is not False
        rows = [r for r in self.blotter.orders.values()
                if (owner is None or r.owner == owner) and (not open_only or not r.terminal)]
        bodies = show_waiting_legs(
            [{**self.publisher.order_msg(r).body(), "created_ms": r.created_ms} for r in rows],
            self.blotter.orders, self.blotter.intents, self._tick_of)
        if not open_only:       # the day's refusals too, with their reason
            bodies += self.refusals.of(owner)
        bodies.sort(key=lambda b: (b.get("created_ms") or 0, b["order_id"] or 0))
        return {"orders": bodies, "ready": self.ready()}

    def _tick_of(self, contract: str) -> float:
        spec = self.blotter.book.specs.get(contract)
        return spec.tick_size if spec is not None else 0.0

    async def positions(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        owner = args.get("owner")
        return {"positions": [self.publisher.position_msg(p.contract, p.owner).body()
                              for p in self.blotter.book.positions(owner)],
                "ready": self.ready()}

    async def account(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        out = self.publisher.account_msg().body()
        out.update(account_id=self.blotter.account_id, ready=self.ready(),
                   trading_state=self.blotter.trading_state,
                   can_cancel=self.blotter.book.can_cancel)
        return out

    async def fills(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        """The account's fills of the current trading day (17:00 CT on, in market time), newest
        first, each as its `fill` event: from the journal, so a page restarted mid-session
        lists the day's fills again. `limit` (default and most FILLS_MAX)."""
        limit = _limit("fills", args, FILLS_MAX)
        now = self.clock.now_ms()
        rows = await self.journal.day_fills(self.blotter.account_id, session_start_ms(now),
                                            limit)
        bodies = []
        for f in rows:
            body = fill_msg(f, f.pnl).body()      # the venue's P&L of the trade
            if body["vt"] is None:
                body["vt"] = f.at_ms               # when the gateway took it: a time to draw
            bodies.append(body)
        return {"fills": bodies, "trading_date": trading_date(now).isoformat(),
                "ready": self.ready()}

    async def day_refusals(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        """The `refusals` command: the gate's refusals of the account's current trading day
        (17:00 CT on, in market time), newest first, each as the `risk` event published then
        with `ts` its time: from the journal, so a page restarted mid-session lists them again.
        `limit` (default and most REFUSALS_MAX)."""
        limit = _limit("refusals", args, REFUSALS_MAX)
        now = self.clock.now_ms()
        rows = await self.journal.day_refusals(self.blotter.account_id, session_start_ms(now),
                                               limit)
        return {"refusals": [{**msg.body(), "ts": at_ms} for at_ms, msg in rows],
                "trading_date": trading_date(now).isoformat(), "ready": self.ready()}

    async def halt(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        """Latched at once (it only restricts); the gate acts on it (cancels, flatten) once
        start-up reconciliation is done, never on a book not yet read from the venue."""
        out = await self.risk.halt(args, sender)
        if self.ready():
            self.runner.run_gate()
        else:
            out["message"] = "latched; the gate acts once start-up reconciliation is done"
        return out

    async def resume(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        self._reconciled("resume")     # "the account is flat" is not known before
        out = await self.risk.resume(args, sender, self.runner.view())
        self.runner.run_gate()
        return out

    async def risk_report(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        self._reconciled("risk")       # its figures and settings judge the venue's book
        out = await self.risk.risk(args, sender, self.runner.view())
        out["can_cancel"] = self.blotter.book.can_cancel
        return out

    def _reconciled(self, what: str) -> None:
        if not self.ready():
            self.counters["not_ready"] += 1
            raise CommandError(f"{what}: the gateway is still reconciling with the venue at "
                               "start-up; try again in a moment")

    def find(self, args: dict[str, Any]) -> OrderRecord:
        oid = args.get("order_id")
        cid = args.get("client_id")
        if isinstance(oid, int) and not isinstance(oid, bool):
            row = self.blotter.orders.get(oid)
            if row is None:
                raise Invalid(f"order {oid} is not known on account {self.blotter.account_id}")
            return row
        if isinstance(cid, str):
            row = self.blotter.order_of_client(cid)
            if row is None:
                raise Invalid(f"no venue order for client id {cid}")
            return row
        raise Invalid("order_id (int) or client_id (str) is required")

    def _may_touch(self, row: OrderRecord, sender: str) -> None:
        owner = owner_of(sender)
        if sender.startswith("strategy-") and row.owner != owner:
            raise Invalid(f"order {row.order_id} belongs to {row.owner}, not {owner}")

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


def _limit(command: str, args: dict[str, Any], most: int) -> int:
    """A day's read's `limit`: an integer from 1 to `most` (its default)."""
    limit = args.get("limit", most)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= most:
        raise CommandError(f"{command}: limit must be an integer from 1 to {most}")
    return limit
