"""The TopstepX / ProjectX Gateway REST client (httpx), for every endpoint of projectx-api.md §3.

Every call goes through `_call`, which is where the rules live:
- a rate budget per endpoint class (`bars` for History/retrieveBars, `rest` for the rest) is
  taken before the request, so normal work never causes a 429;
- the bearer token comes from the process's one `TokenManager`; a 401 on a READ call triggers
  one refresh and one retry;
- READ calls back off and retry on timeouts, 429 (honouring Retry-After) and 5xx;
- MUTATING calls (order place/cancel/modify, position close/partial close) are sent once: any
  answer other than a clear envelope raises `OutcomeUnknown` (the caller reconciles);
- every 200 answer must be the documented envelope; `success: false` raises `ApiError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from chillly.clock import Clock, ms_to_iso
from chillly.timeframes import parse_tf
from topstepx.auth import TokenManager
from topstepx.budget import RateBudget
from topstepx.errors import (ApiError, AuthError, BadResponse, HttpError, OutcomeUnknown,
                             UnreadableEntities, VenueUnavailable)
from topstepx.models import Account, Contract, HalfTrade, Order, Position, VenueBar
from topstepx.settings import ClientSettings, parse_budget
from trading.venue_codes import OrderStatus, OrderType, Side

log = logging.getLogger("topstepx.client")

READ, MUTATE, AUTH = "read", "mutate", "auth"
BARS, REST = "bars", "rest"
MAX_BARS = 20_000  # the venue's cap per retrieveBars request

# AggregateBarUnit (projectx-api.md §4)
UNIT_SECOND, UNIT_MINUTE, UNIT_HOUR, UNIT_DAY, UNIT_WEEK, UNIT_MONTH = 1, 2, 3, 4, 5, 6

M = TypeVar("M", bound=BaseModel)


def tf_to_unit(tf: str) -> tuple[int, int]:
    """Our timeframe ("1m", "15m", "4h", "1d") -> the venue's (unit, unitNumber)."""
    n, unit = parse_tf(tf)  # the kernel's one parser; ValueError names a bad timeframe
    return {"m": UNIT_MINUTE, "h": UNIT_HOUR, "d": UNIT_DAY}[unit], n


def _plain_http(url: str) -> bool:
    """Whether `url` is plain http (no TLS at all), rather than https or anything else."""
    return url.strip().lower().startswith("http://")


def _retry_after_s(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ProjectXClient:
    """Async client for one venue account login. Use `async with` or call `aclose()`."""

    def __init__(
        self,
        base_url: str,
        username: str,
        api_key: str,
        clock: Clock,
        *,
        bars_budget: tuple[int, float] = (30, 30.0),
        rest_budget: tuple[int, float] = (200, 60.0),
        timeout_s: float = 10.0,
        read_retries: int = 4,
        retry_after_max_s: float = 60.0,
        refresh_before_s: float = 300.0,
        live: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.clock = clock
        self.username = username
        self._api_key = api_key
        self.live = live
        self.read_retries = read_retries
        self.retry_after_max_s = retry_after_max_s
        # An https venue (TopstepX) is verified by httpx's own context (certifi's CAs), as ever.
        # A plain-http one (the sim on loopback) has no certificate to check, and loading the CA
        # bundle it would never use cost each process ~85 ms of CPU at start.
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                      transport=transport, verify=not _plain_http(base_url),
                                      headers={"Accept": "application/json"})
        # The margin absorbs send-to-receipt jitter: 2% of the window plus 100 ms of real time
        # (in market time, so it scales with CLOCK_SPEED like the venue's window does).
        margin = lambda w: w * 0.02 + 0.1 * clock.speed  # noqa: E731
        self.budgets = {BARS: RateBudget(BARS, *bars_budget, clock=clock,
                                         margin_s=margin(bars_budget[1])),
                        REST: RateBudget(REST, *rest_budget, clock=clock,
                                         margin_s=margin(rest_budget[1]))}
        self.auth = TokenManager(clock, self._login, self._validate, refresh_before_s)
        self.counters: dict[str, int] = {
            "requests": 0, "retries": 0, "http_401": 0, "http_429": 0, "http_5xx": 0,
            "transport_errors": 0, "outcome_unknown": 0, "rejected_items": 0,
            **{f"rejected_{key}": 0 for key in (
                "bars", "contracts", "accounts", "orders", "positions", "trades")},
        }

    @classmethod
    def from_settings(cls, settings: ClientSettings, clock: Clock,
                      transport: httpx.AsyncBaseTransport | None = None) -> "ProjectXClient":
        key = settings.topstep_api_key.get_secret_value() if settings.topstep_api_key else ""
        username = settings.topstep_username
        if not settings.uses_live_venue:  # the sim in demo mode takes any name and key
            username = username or "chillly"
            key = key or "sim"
        return cls(
            settings.topstep_api_url, username, key, clock,
            bars_budget=parse_budget(settings.feed_bars_budget),
            rest_budget=parse_budget(settings.feed_rest_budget),
            timeout_s=settings.feed_http_timeout, read_retries=settings.feed_read_retries,
            retry_after_max_s=settings.feed_retry_after_max,
            refresh_before_s=settings.feed_token_refresh_before, live=settings.topstep_live,
            transport=transport,
        )

    def stats(self) -> dict[str, int]:
        """Counters for a heartbeat: requests and failures by kind, token logins/refreshes,
        and how often the budget made a call wait."""
        out = {f"venue_{k}": v for k, v in self.counters.items()}
        out.update({f"venue_{k}": v for k, v in self.auth.counters.items()})
        out.update({f"budget_waits_{k}": b.waits for k, b in self.budgets.items()})
        return out

    async def __aenter__(self) -> "ProjectXClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ the one call path

    async def _backoff(self, attempt: int, retry_after: float | None) -> None:
        """Wait before retrying a read. Real seconds: backoff and Retry-After model the network
        and the venue's wall clock, not the market (with CLOCK_SPEED > 1 this is the cautious
        reading; at speed 1 both are the same)."""
        self.counters["retries"] += 1
        delay = min(10.0, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max_s))
        await asyncio.sleep(delay)

    async def _send(self, rate: RateBudget, path: str, body: dict[str, Any] | None,
                    headers: dict[str, str]) -> httpx.Response:
        """One request within its budget: it holds a place from before it is sent until its
        answer (or failure), and is dated by the answer (topstepx/budget.py says why)."""
        await rate.acquire()
        self.counters["requests"] += 1
        try:
            return await self.http.post(path, json=body if body is not None else {},
                                        headers=headers)
        finally:
            rate.answered(self.clock.now_ms())

    async def _call(self, path: str, body: dict[str, Any] | None, *, mode: str = READ,
                    budget: str = REST, token: str | None = None,
                    authenticated: bool = True) -> dict[str, Any]:
        attempt = 0
        refreshed = False
        while True:
            headers: dict[str, str] = {}
            used = token
            if authenticated:
                if used is None:
                    used = await self.auth.token()   # may log in: before our place is taken
                headers["Authorization"] = f"Bearer {used}"
            try:
                resp = await self._send(self.budgets[budget], path, body, headers)
            except httpx.HTTPError as exc:
                self.counters["transport_errors"] += 1
                why = type(exc).__name__
                if mode == MUTATE:
                    self.counters["outcome_unknown"] += 1
                    raise OutcomeUnknown(path, why) from exc
                if attempt >= self.read_retries:
                    raise VenueUnavailable(path, why) from exc
                attempt += 1
                await self._backoff(attempt, None)
                continue
            status = resp.status_code
            if status == 401:
                self.counters["http_401"] += 1
                log.info("%s: HTTP 401 (%s call)", path, mode)
                if mode == AUTH:
                    raise AuthError(f"{path}: HTTP 401")
                if mode == MUTATE:
                    self.counters["outcome_unknown"] += 1
                    await self._quiet_refresh(used)
                    raise OutcomeUnknown(path, "HTTP 401")
                if refreshed or token is not None:
                    raise AuthError(f"{path}: HTTP 401 after a token refresh")
                refreshed = True
                await self.auth.refresh(stale=used)
                continue
            if status == 429 or status >= 500:
                retry_after = _retry_after_s(resp)
                if status == 429:
                    self.counters["http_429"] += 1
                    pause = min(retry_after if retry_after is not None else 1.0,
                                self.retry_after_max_s)
                    self.budgets[budget].block_until(
                        self.clock.now_ms() + int(pause * 1000 * self.clock.speed))
                else:
                    self.counters["http_5xx"] += 1
                if mode == MUTATE:
                    self.counters["outcome_unknown"] += 1
                    raise OutcomeUnknown(path, f"HTTP {status}")
                if attempt >= self.read_retries:
                    raise VenueUnavailable(path, f"HTTP {status}")
                attempt += 1
                await self._backoff(attempt, retry_after)
                continue
            if status != 200:  # 400 and other refusals: the venue did not act on it
                raise HttpError(path, status, resp.text)
            try:
                data = resp.json()
            except ValueError as exc:
                if mode == MUTATE:
                    self.counters["outcome_unknown"] += 1
                    raise OutcomeUnknown(path, "undecodable body") from exc
                raise BadResponse(f"{path}: body is not JSON") from exc
            return self._envelope(path, data, mode)

    async def _quiet_refresh(self, stale: str | None) -> None:
        try:
            await self.auth.refresh(stale=stale)
        except Exception as exc:  # the caller's error is the OutcomeUnknown, not this
            log.warning("token refresh after a 401 failed: %s", exc)

    def _envelope(self, path: str, data: Any, mode: str) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("success"), bool):
            if mode == MUTATE:
                self.counters["outcome_unknown"] += 1
                raise OutcomeUnknown(path, "no envelope in the answer")
            raise BadResponse(f"{path}: answer without the success/errorCode envelope")
        if not data["success"]:
            code = data.get("errorCode")
            raise ApiError(path, code if isinstance(code, int) else -1,
                           data.get("errorMessage"), data)
        return data

    def _items(self, data: dict[str, Any], key: str, model: type[M],
               path: str | None = None) -> list[M]:
        """The entities under `key`, each validated.

        Market data reads (bars, contracts, accounts) are tolerant: an entity that does not
        parse is logged, counted (`rejected_items`, `rejected_<key>`) and left out. A trading
        read names its `path` and is strict: the same entities are counted and logged, then the
        read raises `UnreadableEntities`, because a reconcile that misses an order or a position
        would believe the account is flat. A strict read without the list at all is a
        `BadResponse` too.
        """
        raw = data.get(key)
        if raw is None:
            if path is not None:
                raise BadResponse(f"{path}: no {key!r} list in the answer")
            return []
        if not isinstance(raw, list):
            raise BadResponse(f"{key}: expected a list, got {type(raw).__name__}")
        out: list[M] = []
        problems: list[str] = []
        for item in raw:
            try:
                out.append(model.model_validate(item))
            except (ValidationError, ValueError) as exc:
                self.counters["rejected_items"] += 1
                self.counters[f"rejected_{key}"] = self.counters.get(f"rejected_{key}", 0) + 1
                problems.append(f"{item!r:.200}: {exc}".replace("\n", " "))
                log.warning("rejected a %s from the venue: %s", model.__name__, exc)
        if problems and path is not None:
            log.error("%s: %d unreadable %s; the read fails rather than drop them",
                      path, len(problems), key)
            raise UnreadableEntities(path, key, problems, out)
        return out

    def _one(self, data: dict[str, Any], key: str, model: type[M]) -> M:
        raw = data.get(key)
        if isinstance(raw, list) and raw:  # old docs showed a list for a single entity
            raw = raw[0]
        try:
            return model.model_validate(raw)
        except (ValidationError, ValueError) as exc:
            raise BadResponse(f"{key}: {exc}") from exc

    # ------------------------------------------------------------------ auth

    async def _login(self) -> str:
        if not self.username or not self._api_key:
            raise AuthError("TOPSTEP_USERNAME and TOPSTEP_API_KEY are needed to log in")
        try:
            data = await self._call("/api/Auth/loginKey",
                                    {"userName": self.username, "apiKey": self._api_key},
                                    mode=AUTH, authenticated=False)
        except ApiError as exc:
            raise AuthError(f"login refused: errorCode {exc.code}"
                            + (f" ({exc.message})" if exc.message else ""), exc.code) from exc
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise AuthError("login answered success without a token")
        return token

    async def _validate(self, token: str) -> str | None:
        try:
            data = await self._call("/api/Auth/validate", None, mode=AUTH, token=token)
        except (ApiError, AuthError):
            return None
        new = data.get("newToken")
        return new if isinstance(new, str) and new else token

    async def login(self) -> str:
        """Log in now (normally implicit on first use)."""
        return await self.auth.refresh(relogin=True)

    async def logout(self) -> None:
        await self._call("/api/Auth/logout", None)

    async def ping(self) -> str:
        resp = await self.http.get("/api/Status/ping")
        return resp.text.strip().strip('"')

    # ------------------------------------------------------------------ accounts, contracts

    async def search_accounts(self, only_active: bool = True) -> list[Account]:
        data = await self._call("/api/Account/search", {"onlyActiveAccounts": only_active})
        return self._items(data, "accounts", Account)

    async def search_contracts(self, text: str, live: bool | None = None) -> list[Contract]:
        data = await self._call("/api/Contract/search",
                                {"searchText": text, "live": self.live if live is None else live})
        return self._items(data, "contracts", Contract)

    async def contract_by_id(self, contract_id: str) -> Contract:
        data = await self._call("/api/Contract/searchById", {"contractId": contract_id})
        return self._one(data, "contract", Contract) if data.get("contract") is not None \
            else self._one(data, "contracts", Contract)

    async def available_contracts(self, live: bool | None = None) -> list[Contract]:
        data = await self._call("/api/Contract/available",
                                {"live": self.live if live is None else live})
        return self._items(data, "contracts", Contract)

    # ------------------------------------------------------------------ history

    async def retrieve_bars(self, contract_id: str, start_ms: int, end_ms: int, *,
                            unit: int = UNIT_MINUTE, unit_number: int = 1,
                            limit: int = MAX_BARS, include_partial: bool = False,
                            live: bool | None = None) -> list[VenueBar]:
        """One request; the venue answers newest first, at most `limit` (the newest ones)."""
        data = await self._call("/api/History/retrieveBars", {
            "contractId": contract_id, "live": self.live if live is None else live,
            "startTime": ms_to_iso(start_ms), "endTime": ms_to_iso(end_ms), "unit": unit,
            "unitNumber": unit_number, "limit": limit, "includePartialBar": include_partial,
        }, budget=BARS)
        return self._items(data, "bars", VenueBar)

    async def bars_between(self, contract_id: str, start_ms: int, end_ms: int, *,
                           unit: int = UNIT_MINUTE, unit_number: int = 1,
                           include_partial: bool = False, page_limit: int = MAX_BARS,
                           live: bool | None = None) -> list[VenueBar]:
        """Every bar with start <= t <= end, oldest first, paging backwards at the cap.

        Each next page ends at the oldest bar of the previous one (inclusive overlap, deduped
        by t), so whatever the venue's endTime semantics, no bar falls between two pages.
        """
        found: dict[int, VenueBar] = {}
        end = end_ms
        last_oldest: int | None = None
        while True:
            page = await self.retrieve_bars(contract_id, start_ms, end, unit=unit,
                                            unit_number=unit_number, limit=page_limit,
                                            include_partial=include_partial, live=live)
            for bar in page:
                if start_ms <= bar.t <= end_ms:
                    found.setdefault(bar.t, bar)
            if len(page) < page_limit or not page:
                break
            oldest = min(b.t for b in page)
            if oldest <= start_ms or oldest == last_oldest:
                break
            last_oldest = oldest
            end = oldest
        return [found[t] for t in sorted(found)]

    # ------------------------------------------------------------------ orders (mutating: never retried)

    async def place_order(self, account_id: int, contract_id: str, type: OrderType, side: Side,
                          size: int, *, limit_price: float | None = None,
                          stop_price: float | None = None, trail_price: float | None = None,
                          custom_tag: str | None = None,
                          stop_loss_bracket: dict[str, int] | None = None,
                          take_profit_bracket: dict[str, int] | None = None) -> int:
        """Place an order; returns its id. A rejection raises ApiError (its payload still has
        the venue's `orderId`); no clear answer raises OutcomeUnknown."""
        body: dict[str, Any] = {"accountId": account_id, "contractId": contract_id,
                                "type": type, "side": side, "size": size,
                                "limitPrice": limit_price, "stopPrice": stop_price,
                                "trailPrice": trail_price, "customTag": custom_tag}
        if stop_loss_bracket is not None:
            body["stopLossBracket"] = stop_loss_bracket
        if take_profit_bracket is not None:
            body["takeProfitBracket"] = take_profit_bracket
        data = await self._call("/api/Order/place", body, mode=MUTATE)
        order_id = data.get("orderId")
        if not isinstance(order_id, int):
            self.counters["outcome_unknown"] += 1
            raise OutcomeUnknown("/api/Order/place", "success without an orderId", data)
        return order_id

    async def modify_order(self, account_id: int, order_id: int, *, size: int | None = None,
                           limit_price: float | None = None, stop_price: float | None = None,
                           trail_price: float | None = None) -> None:
        await self._call("/api/Order/modify", {
            "accountId": account_id, "orderId": order_id, "size": size,
            "limitPrice": limit_price, "stopPrice": stop_price, "trailPrice": trail_price,
        }, mode=MUTATE)

    async def cancel_order(self, account_id: int, order_id: int) -> None:
        await self._call("/api/Order/cancel", {"accountId": account_id, "orderId": order_id},
                         mode=MUTATE)

    async def search_orders(self, account_id: int, start_ms: int,
                            end_ms: int | None = None) -> list[Order]:
        body: dict[str, Any] = {"accountId": account_id, "startTimestamp": ms_to_iso(start_ms)}
        if end_ms is not None:
            body["endTimestamp"] = ms_to_iso(end_ms)
        path = "/api/Order/search"
        return self._items(await self._call(path, body), "orders", Order, path)

    async def search_open_orders(self, account_id: int) -> list[Order]:
        path = "/api/Order/searchOpen"
        data = await self._call(path, {"accountId": account_id})
        return self._items(data, "orders", Order, path)

    async def order_by_id(self, account_id: int, order_id: int) -> Order:
        data = await self._call("/api/Order/searchById",
                                {"accountId": account_id, "orderId": order_id})
        return self._one(data, "order", Order)

    async def query_orders(self, account_id: int, *, statuses: Sequence[OrderStatus] | None = None,
                           contract_id: str | None = None, created_after_ms: int | None = None,
                           created_before_ms: int | None = None, page_size: int | None = None,
                           page_offset: int | None = None, sort_by: int | None = None,
                           sort_direction: int | None = None,
                           include_total_count: bool | None = None
                           ) -> tuple[list[Order], int | None]:
        """/api/Order/v2/query: (orders, totalCount or None)."""
        flt: dict[str, Any] = {"accountId": account_id}
        if statuses is not None:
            flt["statuses"] = list(statuses)
        if contract_id is not None:
            flt["contractId"] = contract_id
        if created_after_ms is not None:
            flt["createdAfter"] = ms_to_iso(created_after_ms)
        if created_before_ms is not None:
            flt["createdBefore"] = ms_to_iso(created_before_ms)
        body: dict[str, Any] = {"filter": flt}
        for key, value in (("pageSize", page_size), ("pageOffset", page_offset),
                           ("sortBy", sort_by), ("sortDirection", sort_direction),
                           ("includeTotalCount", include_total_count)):
            if value is not None:
                body[key] = value
        data = await self._call("/api/Order/v2/query", body)
        total = data.get("totalCount")
        orders = self._items(data, "orders", Order, "/api/Order/v2/query")
        return orders, total if isinstance(total, int) else None

    # ------------------------------------------------------------------ positions, trades

    async def search_open_positions(self, account_id: int) -> list[Position]:
        path = "/api/Position/searchOpen"
        data = await self._call(path, {"accountId": account_id})
        return self._items(data, "positions", Position, path)

    async def close_position(self, account_id: int, contract_id: str) -> None:
        await self._call("/api/Position/closeContract",
                         {"accountId": account_id, "contractId": contract_id}, mode=MUTATE)

    async def partial_close_position(self, account_id: int, contract_id: str, size: int) -> None:
        await self._call("/api/Position/partialCloseContract",
                         {"accountId": account_id, "contractId": contract_id, "size": size},
                         mode=MUTATE)

    async def search_trades(self, account_id: int, start_ms: int,
                            end_ms: int | None = None) -> list[HalfTrade]:
        body: dict[str, Any] = {"accountId": account_id, "startTimestamp": ms_to_iso(start_ms)}
        if end_ms is not None:
            body["endTimestamp"] = ms_to_iso(end_ms)
        path = "/api/Trade/search"
        return self._items(await self._call(path, body), "trades", HalfTrade, path)
