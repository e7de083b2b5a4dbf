"""REST handlers of the trading endpoints: parse and check a body, call the engine, wrap the reply.

Each handler takes the parsed JSON body and returns the whole response dict (payload field,
`success`, `errorCode`, `errorMessage`, explicit nulls), or raises `sim.api.binding.BadRequest`
for an HTTP 400 ProblemDetails. Binding follows ASP.NET Core, which the venue runs on: property
names match case-insensitively, numbers may arrive as numeric strings, and a value of the wrong
JSON type is a 400 ("The JSON value could not be converted to ..."). A missing required field is never a
crash: it gets the endpoint's own errorCode (an unknown account, order or contract, or
OrderRejected with "The X field is required." on place). docs/sim-trading.md lists the choices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.api.binding import Body, invalid
from sim.exchange.engine import TradingEngine
from sim.exchange.wire import (OPEN, PENDING, PENDING_CANCEL, Bracket, Order, PlaceRequest,
                               TradingError)

Handler = Callable[[dict[str, Any]], dict[str, Any]]

MAX_PAGE = 100


def ok(**payload: Any) -> dict[str, Any]:
    return {**payload, "success": True, "errorCode": 0, "errorMessage": None}


def fail(code: int, message: str | None, **payload: Any) -> dict[str, Any]:
    return {**payload, "success": False, "errorCode": code, "errorMessage": message}


def _orders(rows: list[Order]) -> list[dict[str, Any]]:
    return [o.to_api() for o in rows]


def _window(rows: list[Any], start: int | None, end: int | None) -> list[Any]:
    return [r for r in rows
            if (start is None or r.created_ms >= start) and (end is None or r.created_ms <= end)]


def build_handlers(engine: TradingEngine) -> dict[str, Handler]:
    """The path -> handler table the sim server registers (POST, behind auth and rate limits)."""

    def account_search(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Account/search")
        return ok(accounts=engine.accounts(only_active=bool(b.flag("onlyActiveAccounts"))))

    def order_place(data: dict[str, Any]) -> dict[str, Any]:
        path = "/api/Order/place"
        b = Body(data, path)
        brackets: list[Bracket | None] = []
        for name in ("stopLossBracket", "takeProfitBracket"):
            sub = b.obj(name)
            brackets.append(None if sub is None else Bracket(ticks=sub.integer("ticks") or 0,
                                                             type=sub.integer("type") or 0))
        account_id = b.integer("accountId")
        req = PlaceRequest(
            account_id=account_id if account_id is not None else 0,
            contract_id=b.text("contractId") or "", type=b.integer("type"),
            side=b.integer("side"), size=b.integer("size"), limit_price=b.number("limitPrice"),
            stop_price=b.number("stopPrice"), trail_price=b.number("trailPrice"),
            custom_tag=b.text("customTag"), stop_loss=brackets[0], take_profit=brackets[1])
        order_id, code, message = engine.place(req)
        if code:
            return fail(code, message, orderId=order_id)
        return ok(orderId=order_id)

    def order_modify(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Order/modify")
        try:
            engine.modify(b.integer("accountId") or 0, b.integer("orderId"),
                          size=b.integer("size"), limit_price=b.number("limitPrice"),
                          stop_price=b.number("stopPrice"), trail_price=b.number("trailPrice"))
        except TradingError as e:
            return fail(e.code, e.message)
        return ok()

    def order_cancel(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Order/cancel")
        try:
            engine.cancel(b.integer("accountId") or 0, b.integer("orderId"))
        except TradingError as e:
            return fail(e.code, e.message)
        return ok()

    def order_search(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Order/search")
        start, end = b.time_ms("startTimestamp"), b.time_ms("endTimestamp")
        try:
            rows = engine.orders(b.integer("accountId") or 0)
        except TradingError as e:
            return fail(e.code, e.message, orders=None)
        return ok(orders=_orders(_window(rows, start, end)))

    def order_search_open(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Order/searchOpen")
        try:
            rows = engine.orders(b.integer("accountId") or 0)
        except TradingError as e:
            return fail(e.code, e.message, orders=None)
        # Open only: Suspended bracket children are left out, as the live venue does.
        return ok(orders=_orders([o for o in rows if o.status in (OPEN, PENDING, PENDING_CANCEL)]))

    def order_search_by_id(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Order/searchById")
        try:
            order = engine.order_by_id(b.integer("accountId") or 0, b.integer("orderId"))
        except TradingError as e:
            return fail(e.code, e.message, order=None)
        return ok(order=order.to_api())

    def order_query(data: dict[str, Any]) -> dict[str, Any]:
        path = "/api/Order/v2/query"
        b = Body(data, path)
        f = b.obj("filter")
        if f is None:
            raise invalid(path, "$.filter", "The filter field is required.")
        account_id = f.integer("accountId")
        if account_id is None:
            raise invalid(path, "$.filter.accountId", "The accountId field is required.")
        statuses = f.int_list("statuses")
        if statuses is not None and any(s < 0 or s > 8 for s in statuses):
            raise invalid(path, "$.filter.statuses",
                          f"Unknown order status in {statuses}; valid values are 0 to 8.")
        contract_id = f.text("contractId")
        after, before = f.time_ms("createdAfter"), f.time_ms("createdBefore")
        size = b.integer("pageSize")
        size = MAX_PAGE if size is None else size
        if not 1 <= size <= MAX_PAGE:
            raise invalid(path, "$.pageSize", f"pageSize must be between 1 and {MAX_PAGE}.")
        offset = b.integer("pageOffset") or 0
        if offset < 0:
            raise invalid(path, "$.pageOffset", "pageOffset must be 0 or more.")
        sort_by = b.integer("sortBy") or 0
        direction = b.integer("sortDirection")
        direction = 1 if direction is None else direction
        if sort_by not in (0, 1):
            raise invalid(path, "$.sortBy", "sortBy must be 0 (CreatedAt) or 1 (Id).")
        if direction not in (0, 1):
            raise invalid(path, "$.sortDirection", "sortDirection must be 0 (Asc) or 1 (Desc).")
        try:
            rows = engine.orders(account_id)
        except TradingError as e:
            return fail(e.code, e.message, orders=None, totalCount=None)
        rows = [o for o in rows
                if (statuses is None or o.status in statuses)
                and (contract_id is None or o.contract_id == contract_id)
                and (after is None or o.created_ms >= after)
                and (before is None or o.created_ms <= before)]
        key = (lambda o: (o.created_ms, o.id)) if sort_by == 0 else (lambda o: o.id)
        rows.sort(key=key, reverse=direction == 1)
        total = len(rows) if b.flag("includeTotalCount") else None
        return ok(orders=_orders(rows[offset:offset + size]), totalCount=total)

    def position_search_open(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Position/searchOpen")
        try:
            rows = engine.positions(b.integer("accountId") or 0)
        except TradingError as e:
            return fail(e.code, e.message, positions=None)
        return ok(positions=[p.to_api() for p in rows])

    def position_close(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Position/closeContract")
        try:
            engine.close_position(b.integer("accountId") or 0, b.text("contractId") or "")
        except TradingError as e:
            return fail(e.code, e.message)
        return ok()

    def position_partial_close(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Position/partialCloseContract")
        try:
            size = b.integer("size")
            engine.partial_close(b.integer("accountId") or 0, b.text("contractId") or "",
                                 size if size is not None else 0)
        except TradingError as e:
            return fail(e.code, e.message)
        return ok()

    def trade_search(data: dict[str, Any]) -> dict[str, Any]:
        b = Body(data, "/api/Trade/search")
        start, end = b.time_ms("startTimestamp"), b.time_ms("endTimestamp")
        try:
            rows = engine.trades(b.integer("accountId") or 0)
        except TradingError as e:
            return fail(e.code, e.message, trades=None)
        return ok(trades=[t.to_api() for t in _window(rows, start, end)])

    return {
        "/api/Account/search": account_search,
        "/api/Order/place": order_place,
        "/api/Order/modify": order_modify,
        "/api/Order/cancel": order_cancel,
        "/api/Order/search": order_search,
        "/api/Order/searchOpen": order_search_open,
        "/api/Order/searchById": order_search_by_id,
        "/api/Order/v2/query": order_query,
        "/api/Position/searchOpen": position_search_open,
        "/api/Position/closeContract": position_close,
        "/api/Position/partialCloseContract": position_partial_close,
        "/api/Trade/search": trade_search,
    }

