"""The state every part of the gateway shares, and the small helpers they all use.

The gateway's jobs (gateway/commands.py, placing.py, venue_events.py, reconcile.py,
brackets.py, closing.py, gate_runner.py, publishing.py) are mixins over this one base, composed
by `GatewayService` (gateway/process.py), which fills these attributes in `on_start`. They share
a dozen mutable indexes (intents, orders, the open-order index, in-flight and unposted orders,
the fill ledger) and call one another both ways, so the calls one part makes into another are
declared below for the type checker: the list of what the parts need of each other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from chillly import topics
from chillly.calendar import session_start_ms
from chillly.messages import AccountEvent, Alarm, OrderEvent, PositionEvent
from chillly.process import Service
from chillly.singleton import Lock
from gateway import journal as J
from gateway.book import Book, Spec
from gateway.gate import BookView, Gate, Intent
from gateway.journal import Journal
from gateway.orders import TERMINAL, FillLedger, OrderBookMachine
from gateway.requests import VENUE_TYPE
from gateway.risk_runtime import RiskRuntime
from gateway.settings import GatewaySettings
from topstepx.client import ProjectXClient
from topstepx.contracts import ContractNotFound, ContractResolver, symbol_of
from topstepx.errors import VenueError
from topstepx.hub import HubAgent, OpenHandler
from topstepx.models import Account, HalfTrade, Order, Position

log = logging.getLogger("gateway")

#: Clock skew margin when searching the venue's orders by time.
SEARCH_MARGIN_MS = 5 * 60_000


class GatewayState(Service):
    """The gateway's shared state (set by GatewayService.on_start) and common helpers."""

    s: GatewaySettings
    lock: Lock
    ready: bool
    trading_state: str
    journal: Journal
    risk: RiskRuntime
    gate: Gate
    _risk_known: bool
    #: passed the gate, not yet a venue order
    _inflight: dict[str, Intent]
    #: fills the venue reported on an order before its Position event: (side, qty, seq, at)
    #: per order id per contract, counted by the gate until the position shows them
    _unposted: dict[str, dict[int, tuple[int, int, int, float]]]
    _unposted_seq: int
    _flattening: bool
    intents: dict[str, dict[str, Any]]
    by_tag: dict[str, str]
    orders: dict[int, dict[str, Any]]
    #: indexes kept by _store_order: working orders, client ids with a venue order
    _open: dict[int, dict[str, Any]]
    _placed_cids: set[str]
    machine: OrderBookMachine
    ledger: FillLedger
    _journal_fills: list[dict[str, Any]]
    _reserved: set[str]
    _resolving: dict[str, asyncio.Task[None]]
    _publish_due: set[tuple[str, str]]
    _alarms: dict[str, bool]
    client: ProjectXClient
    resolver: ContractResolver
    account: Account
    book: Book
    position_brackets: bool
    hub: HubAgent
    _subscribe_hub: OpenHandler
    _hub_opens: int
    _tasks: list[asyncio.Task[Any]]
    _flat_n: int
    _diffs_now: int
    _quoted: set[str]
    #: venue marks (gate_runner._mark_loop): last poll start per contract, polls under way
    _mark_tried: dict[str, int]
    _mark_polls: dict[str, asyncio.Task[None]]
    _mark_wake: asyncio.Event

    if TYPE_CHECKING:
        # What the parts call of one another, each defined once in the module named.
        # brackets.py
        async def _on_order_changed(self, row: dict[str, Any]) -> None: ...
        # closing.py
        async def _cancel(self, row: dict[str, Any]) -> dict[str, Any]: ...
        async def _cancel_many(self, rows: list[dict[str, Any]]) -> dict[str, Any]: ...
        async def flatten(self, contract: str | None, owner: str | None = None) -> dict[str, Any]: ...
        # gate_runner.py
        def _watch_quotes(self) -> None: ...
        async def _last_price(self, contract: str) -> float | None: ...
        async def _mark_loop(self) -> None: ...
        async def _await_marks(self, intent: Intent) -> None: ...
        def view(self) -> BookView: ...
        def _run_gate(self) -> None: ...
        # placing.py
        def _rejected(self, cid: Any, rule: str, message: str, counter: str,
                      code: int | None = None, order_id: int | None = None) -> dict[str, Any]: ...
        async def _send(self, rec: dict[str, Any], trail_price: float | None) -> dict[str, Any]: ...
        def _resolve_soon(self, rec: dict[str, Any], status: str, order_id: int | None,
                          code: int | None = None, message: str | None = None) -> None: ...
        async def _resolve(self, rec: dict[str, Any], since_restart: bool = False) -> None: ...
        # publishing.py
        def _order_msg(self, r: dict[str, Any]) -> OrderEvent: ...
        def _publish_order(self, r: dict[str, Any]) -> None: ...
        def _position_msg(self, contract: str, owner: str) -> PositionEvent: ...
        def _account_msg(self) -> AccountEvent: ...
        def _risk_event(self, event: str, reason: str, rule: str | None, owner: str | None = None,
                        client_id: str | None = None) -> None: ...
        # reconcile.py
        def _diff(self, text: str) -> None: ...
        async def _safe_reconcile(self) -> None: ...
        # venue_events.py
        async def _apply_order(self, order: Order, source: str) -> None: ...
        async def _apply_trade(self, t: HalfTrade, source: str) -> None: ...
        async def _apply_position(self, p: Position) -> None: ...
        def _apply_account(self, a: Account) -> None: ...

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

    def _row_from_intent(self, rec: dict[str, Any], order_id: int) -> dict[str, Any]:
        return {"order_id": order_id, "account": self.account.id, "client_id": rec["client_id"],
                "owner": rec["owner"], "contract": rec["contract"], "side": rec["side"],
                "size": rec["size"], "order_type": VENUE_TYPE[rec["order_type"]], "status": 6,
                "state": "accepted", "fill_volume": 0, "filled_price": None,
                "limit_price": rec["limit_price"], "stop_price": rec["stop_price"],
                "custom_tag": rec["custom_tag"], "parent_id": rec["parent_id"],
                "created_ms": rec["created_ms"], "updated_ms": rec["created_ms"]}

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

    def _day_start(self) -> int:
        return session_start_ms(self.clock.now_ms())

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


    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)
