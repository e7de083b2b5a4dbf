"""The risk gate's side of the gateway: the marks of held contracts (the bus's quotes, else the
venue's forming 1m bar: trading/marks.py), and the gate's due actions (trading state, cancels,
flatten) run after every quote, every venue mark and every second. The view the gate judges
is the blotter's (trading/blotter/)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from chillly import topics
from chillly.bus import Bus
from chillly.clock import Clock
from chillly.codec import Envelope
from trading import marks as M
from trading.backoff import Backoff
from trading.risk.types import (
    Action,
    BookView,
    CancelEntries,
    CancelOrders,
    Flatten,
    Intent,
    QuoteView,
    SetTradingState,
)
from gateway.closing import Closer
from gateway.publishing import Publisher
from gateway.risk_runtime import RiskRuntime
from gateway.settings import GatewaySettings
from gateway.venue_events import Specs
from topstepx.client import ProjectXClient
from topstepx.budget import priority
from topstepx.errors import VenueError
from trading.blotter import Blotter
from trading.orders.records import OrderRecord

log = logging.getLogger("gateway")

#: How long an entry waits for a held contract's venue poll under way before the gate judges
#: it (real seconds): an entry right after a fill is judged on a price, not refused blind.
MARK_WAIT_S = 1.0


class GateRunner:
    """Marks held contracts, runs the gate's due actions, raises the `blind` alarm.

    `alarm` is the service's (raised once per change, carried in heartbeats); `ready` says
    whether start-up is done (before it, nothing is acted on)."""

    def __init__(self, s: GatewaySettings, bus: Bus, client: ProjectXClient, blotter: Blotter,
                 risk: RiskRuntime, closer: Closer, publisher: Publisher, specs: Specs,
                 clock: Clock, counters: dict[str, int], alarms: dict[str, str],
                 alarm: Callable[[str, bool, str], None], ready: Callable[[], bool],
                 tasks: list[asyncio.Task[Any]]) -> None:
        self.s, self.bus, self.client, self.blotter, self.risk = s, bus, client, blotter, risk
        self.closer, self.publisher, self.specs, self.clock = closer, publisher, specs, clock
        self.counters, self.alarms, self.alarm, self.ready = counters, alarms, alarm, ready
        self._tasks = tasks
        self._quoted: set[str] = set()
        #: venue marks: last poll start per contract, polls under way
        self._mark_tried: dict[str, int] = {}
        self._mark_polls: dict[str, asyncio.Task[None]] = {}
        self._mark_wake = asyncio.Event()
        self._flattening = False
        #: the gate's closes the venue refused, tried again with backoff
        self._retry = Backoff(first_ms=1_000, cap_ms=60_000)

    def view(self) -> BookView:
        return self.blotter.view(self.clock.now_ms())

    def watch_quotes(self) -> None:
        """Mark held contracts from their quotes: take `quote.<contract>.` and ask the
        subscriptions service to stream the contract (fire and forget: without a feed the
        venue's bars mark it, `mark_loop`)."""
        for contract in self.blotter.book.held() | {r.contract for r in self.blotter.working()}:
            prefix = topics.quote(contract)
            if prefix not in self._quoted:
                self._quoted.add(prefix)
                self.bus.on(prefix, self._on_quote)
                self._tasks.append(asyncio.ensure_future(self._ask_subscribe(contract)))
        self._mark_wake.set()       # a newly held contract without a quote is polled at once

    async def _ask_subscribe(self, contract: str) -> None:
        try:
            await self.bus.request("subscriptions", "subscribe", {"contract": contract},
                                   timeout=2.0, attempts=3)
        except Exception as exc:
            log.info("could not subscribe %s for marking (%s)", contract, exc)

    async def last_price(self, contract: str) -> float | None:
        """The last trade price: the newest mark if fresh, else the venue's forming 1m bar."""
        q = self.blotter.book.mark_of(contract)
        if M.fresh(q, self.clock.now_ms(), self._mark_age_ms()) and q is not None \
                and q.last is not None:
            return q.last
        return await self._venue_price(contract)

    async def _venue_price(self, contract: str) -> float | None:
        """The close of the venue's newest 1m bar, the forming one included (None: no answer)."""
        now = self.clock.now_ms()
        try:
            bars = await self.client.retrieve_bars(contract, now - 3_600_000, now, limit=1,
                                                   include_partial=True)
        except VenueError:
            return None
        return max(bars, key=lambda b: b.t).c if bars else None

    def _mark_age_ms(self) -> int:
        return int(self.s.risk_mark_max_age * 1000)

    async def mark_loop(self) -> None:
        """Mark held contracts whose quotes stopped from the venue's bars, one poll per contract
        per RISK_MARK_POLL_INTERVAL at most (and the gateway's bars budget), woken the moment a
        quote goes stale or a contract becomes held; raise or clear the `blind` alarm."""
        s = self.s
        book = self.blotter.book
        interval = int(s.risk_mark_poll_interval * 1000)
        while True:
            now = self.clock.now_ms()
            held = book.held()
            wake = now + interval
            try:
                if s.risk_mark_fallback and self.ready():
                    for c in M.polls_due(held, book.quotes, book.venue_marks,
                                         self._mark_tried, now, self._mark_age_ms(), interval):
                        self._start_poll(c, now)
                self.check_blind(now)       # the same instant as the polls just decided
                wake = M.next_due_ms(held, book.quotes, self._mark_tried, now,
                                     self._mark_age_ms(), interval,
                                     self._mark_polls if s.risk_mark_fallback else None)
            except Exception:
                log.exception("venue marks: loop step failed")
            self._mark_wake.clear()
            try:
                await asyncio.wait_for(self._mark_wake.wait(),
                                       max(0.0, (wake - now) / 1000.0 / self.clock.speed))
            except asyncio.TimeoutError:
                pass

    def _start_poll(self, contract: str, now: int) -> None:
        if contract not in self._mark_polls:
            self._mark_tried[contract] = now
            task = asyncio.ensure_future(self._poll_mark(contract))
            self._mark_polls[contract] = task
            self._tasks.append(task)
            task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def await_marks(self, intent: Intent) -> None:
        """Before the gate judges an entry: a held contract without a fresh mark gets its venue
        poll (started now if one is due), waited for up to MARK_WAIT_S; the gate then judges
        on what the book has (blind if still nothing). Exits and protective legs never wait."""
        s = self.s
        book = self.blotter.book
        now = self.clock.now_ms()
        ages = M.blind(book.held(), book.marks(), now, self._mark_age_ms())
        if not ages or not s.risk_mark_fallback or intent.protective:
            return
        g, view = self.risk.gate, self.view()
        if g.reduces(intent, view, g.net(view)):
            return
        interval = int(s.risk_mark_poll_interval * 1000)
        for c in M.polls_due(ages, book.quotes, book.venue_marks, self._mark_tried,
                             now, self._mark_age_ms(), interval):
            self._start_poll(c, now)
        polls = [self._mark_polls[c] for c in ages if c in self._mark_polls]
        if polls:
            self.counters["marks_waits"] += 1
            await asyncio.wait(polls, timeout=MARK_WAIT_S)

    async def _poll_mark(self, contract: str) -> None:
        try:
            price = await self._venue_price(contract)
        except Exception:                   # never lose the loop's bookkeeping to a surprise
            log.exception("venue mark of %s failed", contract)
            price = None
        finally:
            self._mark_polls.pop(contract, None)
            self._mark_wake.set()           # its next poll is scheduled from now
        if price is None:
            self.counters["marks_venue_failed"] += 1
        else:
            self.counters["marks_venue"] += 1
            self.blotter.book.set_venue_mark(M.venue_mark(
                contract, price, self.specs.of(contract).tick_size, self.clock.now_ms()))
            if self.ready():
                self.run_gate()
        self.check_blind()

    def check_blind(self, now: int | None = None) -> None:
        """Alarm `blind` while a held contract has no fresh mark (the gate then refuses entries
        that add risk); a contract whose venue poll is under way is judged when it answers
        (`M.blind_unpolled`). `now`: the instant the mark loop decided its polls at."""
        now = self.clock.now_ms() if now is None else now
        book = self.blotter.book
        ages = M.blind_unpolled(book.held(), book.marks(), self._mark_polls, self._mark_tried,
                                now, self._mark_age_ms(),
                                int(self.s.risk_mark_poll_interval * 1000)) \
            if self.ready() else {}
        self.counters["marks_blind_contracts"] = len(ages)
        if ages:
            text = (f"no price for {', '.join(sorted(ages))}: quotes "
                    f"{'and venue bars ' if self.s.risk_mark_fallback else ''}silent; entries "
                    "refused until a price returns")
            if self.alarms.get("blind") != text:
                self.counters["marks_blind_alarms"] += 1
                log.warning("alarm blind: %s (%s)", text, M.describe(ages))
            self.alarm("blind", True, text)
        elif "blind" in self.alarms:
            log.info("alarm blind cleared: every held contract is priced again")
            self.alarm("blind", False, "every held contract is priced again")

    def _on_quote(self, env: Envelope) -> None:
        p = env.payload
        book = self.blotter.book
        old = book.quotes.get(p["contract"])
        book.set_quote(QuoteView(
            p["contract"], p.get("bid") if p.get("bid") is not None else (old.bid if old else None),
            p.get("ask") if p.get("ask") is not None else (old.ask if old else None),
            p.get("last") if p.get("last") is not None else (old.last if old else None),
            self.clock.now_ms()))
        if self.ready():
            self.run_gate()
            if "blind" in self.alarms:
                self.check_blind()

    def run_gate(self) -> None:
        """What the gate says is due now, carried out (one gate flatten at a time)."""
        try:
            actions = self.risk.gate.due(self.view(), self.clock.now_ms())
        except Exception:
            log.exception("gate.due failed")
            return
        self.risk.save_soon()
        # The gate's own cancels and flattens may use the venue budget's reserved share
        # (topstepx/budget.py): the tasks started here inherit it.
        with priority():
            self._carry_out(actions)

    def _carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            self.counters["gate_actions"] += 1
            log.info("risk gate: %s", action)
            if isinstance(action, SetTradingState):
                if action.state != self.blotter.trading_state:
                    self.blotter.trading_state = action.state
                    self.publisher.risk_event("state", action.reason, action.rule)
            elif isinstance(action, CancelEntries):
                rows = [r for r in self.blotter.working(action.contract, action.owner)
                        if r.parent_id is None]
                self.publisher.risk_event("action", f"cancel entries: {action.reason}",
                                          action.rule)
                self._cancel(rows)
            elif isinstance(action, CancelOrders):
                ids = set(action.order_ids)
                rows = [r for r in self.blotter.working() if r.order_id in ids]
                self.publisher.risk_event("action", f"cancel {sorted(ids)}: {action.reason}",
                                          action.rule)
                self._cancel(rows)
            elif isinstance(action, Flatten):
                if self._flattening:
                    continue        # one gate flatten at a time: never a second closing order
                if not self._retry.ready((action.contract, action.owner), self.clock.now_ms()):
                    self.counters["risk_flatten_backoff"] += 1
                    continue        # the venue refused the last close: wait (trading/backoff)
                self.publisher.risk_event("action", f"flatten: {action.reason}", action.rule,
                                          action.owner)
                asyncio.ensure_future(self._gate_flatten(action))
        if not self._flattening and self._retry.failing() and not self.blotter.book.held():
            self._closed_after_refusal()

    def _cancel(self, rows: list[OrderRecord]) -> None:
        """The gate's cancels. Where the venue refuses every cancel they are not sent (each
        pass would spend a request on a certain refusal): the orders are named as stranded
        (alarm `orders_stranded`) for the trader to cancel on the venue's platform."""
        if not rows:
            return
        if not self.blotter.book.can_cancel:
            self.closer.strand([r.order_id for r in rows])
            return
        asyncio.ensure_future(self.closer.cancel_many(rows))

    async def _gate_flatten(self, action: Flatten) -> None:
        self._flattening = True
        key = (action.contract, action.owner)
        try:
            out = await self.closer.flatten(action.contract, action.owner)
            if out["problems"]:
                wait = self._retry.refused(key, self.clock.now_ms())
                self._refused_alarm(out["problems"], wait)
            elif self._retry.accepted(key) and not self._retry.failing():
                self._closed_after_refusal()
        except Exception:
            log.exception("gate flatten failed")
        finally:
            self._flattening = False

    def _refused_alarm(self, problems: list[str], wait_ms: int) -> None:
        """One alarm while the venue refuses the gate's close: what is open, why it cannot be
        closed, and that its protective orders are kept (raised again only if that changes)."""
        held = ", ".join(f"{'long' if n.qty > 0 else 'short'} {abs(n.qty)} {c}"
                         for c, n in sorted(self.blotter.book.venue.items()) if n.qty)
        kept = len([r for r in self.blotter.working() if r.parent_id is not None])
        why = "; ".join(sorted({p.split(": ", 2)[-1] for p in problems}))
        text = (f"cannot close {held or 'the position'}: the venue refused ({why}); "
                f"{kept} protective orders kept; retried with backoff")
        if self.alarms.get("flatten_refused") != text:
            log.warning("alarm flatten_refused: %s (next try in %.0f s)", text, wait_ms / 1000)
        self.alarm("flatten_refused", True, text)

    def _closed_after_refusal(self) -> None:
        for key in self._retry.failing():
            self._retry.accepted(key)
        if "flatten_refused" in self.alarms:
            self.alarm("flatten_refused", False, "the position is closed")
