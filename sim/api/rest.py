"""The REST side: one middleware for every /api path (faults, auth, rate limits, counters) and
the non-trading handlers (Auth, Contract, History, Status).

Conventions (projectx-api.md §2): POST with JSON, property names case-insensitive (ASP.NET model
binding), the `success`/`errorCode`/`errorMessage` envelope with the endpoint's own codes and
HTTP 200 on business errors; HTTP 400 (RFC 7807 ProblemDetails) when the body is not JSON or a
required string is missing; 401 with an empty body and `WWW-Authenticate: Bearer` without a
usable token; 429 with `Retry-After` over budget. Paths are matched case-insensitively too.

Handlers are plain functions `(ctx, body) -> dict` so the trading engine's handlers
(`sim.api.trading.build_handlers`) sit behind exactly the same middleware as these.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from chillly.clock import Clock, iso_to_ms
from sim.api.auth import Claims, TokenError, Tokens, bearer
from sim.api.binding import BadRequest, Body, problem
from sim.market.contracts import Catalogue
from sim.api.faults import Faults
from sim.market.history import BarError, History
from sim.api.ratelimit import Limit, SlidingWindow

log = logging.getLogger("sim.rest")

BARS_PATH = "/api/history/retrievebars"
PUBLIC = {"/api/auth/loginkey", "/api/auth/loginapp", "/api/status/ping"}


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def envelope(payload: dict[str, Any] | None = None, code: int = 0,
             message: str | None = None) -> dict[str, Any]:
    out = dict(payload or {})
    out.update({"success": code == 0, "errorCode": code, "errorMessage": message})
    return out


def _missing(names: list[str]) -> BadRequest:
    errors = {n: [f"The {n[0].upper() + n[1:]} field is required."] for n in names}
    return BadRequest(problem("Required fields are missing.", errors))


def bar_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


class Api:
    """Everything the /api handlers share: clock, tokens, catalogue, history, faults, limits."""

    def __init__(self, settings: Any, clock: Clock, tokens: Tokens, catalogue: Catalogue,
                 history: History, faults: Faults,
                 on_logout: Callable[[Claims], None] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.tokens = tokens
        self.catalogue = catalogue
        self.history = history
        self.faults = faults
        self.on_logout = on_logout
        now_fn: Callable[[], float]
        if settings.sim_rate_clock == "real":
            now_fn = lambda: time.monotonic() * 1000.0  # noqa: E731
        else:
            now_fn = lambda: float(clock.now_ms())  # noqa: E731
        self.limits = {
            "bars": SlidingWindow(Limit(settings.sim_rate_bars, settings.sim_rate_bars_window_s),
                                  now_fn),
            "other": SlidingWindow(Limit(settings.sim_rate_other,
                                         settings.sim_rate_other_window_s), now_fn),
        }
        self.handlers: dict[str, Callable[[Body, Claims | None], dict[str, Any]]] = {
            "/api/auth/loginkey": self.login_key,
            "/api/auth/loginapp": self.login_app,
            "/api/auth/validate": self.validate,
            "/api/auth/logout": self.logout,
            "/api/contract/search": self.contract_search,
            "/api/contract/searchbyid": self.contract_by_id,
            "/api/contract/available": self.contract_available,
            BARS_PATH: self.retrieve_bars,
        }
        self.counters: Counter[str] = Counter()
        self.by_path: Counter[str] = Counter()
        # Awaited after every trading handler, before the answer leaves (state persistence).
        self.after_trading: Callable[[], Awaitable[None]] | None = None
        self._trading_paths: set[str] = set()

    def add_engine_handlers(self, handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]
                            ) -> None:
        """Register the trading engine's handlers behind the same middleware."""
        for path, fn in handlers.items():
            self.handlers[path.lower()] = (lambda f: lambda body, claims: f(body.data))(fn)
            self._trading_paths.add(path.lower())

    # ---- HTTP entry -------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lower().rstrip("/")
        if path == "/api/status/ping":
            if request.method != "GET":
                return web.Response(status=405, headers={"Allow": "GET"})
            return await self._guarded(request, path, None)
        if path not in self.handlers:
            return web.Response(status=404)
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"})
        return await self._guarded(request, path, self.handlers[path])

    async def _guarded(self, request: web.Request, path: str,
                       fn: Callable[[Body, Claims | None], dict[str, Any]] | None
                       ) -> web.StreamResponse:
        cls = "bars" if path == BARS_PATH else "other"
        self.counters[f"requests_{cls}"] += 1
        self.by_path[path] += 1
        faulted = self.faults.applies(path)
        # 1. the body (needed for a login's rate-limit key and every handler). Read before the
        # injected delay: a request that has arrived is carried out even if its caller goes
        # away during the delay (a client crash mid-call).
        body = Body({})
        raw = await request.read() if fn is not None else b""
        if faulted and self.faults.rest_delay_ms:
            self.counters["faulted_delayed"] += 1   # received in full, now held
            await asyncio.sleep(self.faults.rest_delay_ms / 1000.0)
        if fn is not None:
            if raw.strip():
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    self.counters["bad_requests"] += 1
                    return self._problem(problem("The request body is not valid JSON."))
                if not isinstance(data, dict):
                    self.counters["bad_requests"] += 1
                    return self._problem(problem("The request body must be a JSON object."))
                body = Body(data)
        # 2. auth
        claims: Claims | None = None
        if path not in PUBLIC:
            token = bearer(request.headers.get("Authorization"))
            try:
                claims = self.tokens.check(token)
            except TokenError as exc:
                if not (path == "/api/auth/validate" and exc.reason == "expired"
                        and self.settings.sim_validate_expired != "401"):
                    self.counters["unauthorized"] += 1
                    return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
                claims = self.tokens.decode(token)
        # 3. rate limits
        key = self._rate_key(claims, body, request)
        if self.faults.force_429:
            return self._too_many(cls, float(self.faults.force_429_retry_after_s))
        wait = self.limits[cls].try_acquire(key)
        if wait is not None:
            return self._too_many(cls, wait)
        # 4. injected server errors
        if faulted and self.faults.should_fail():
            self.counters["faulted_500"] += 1
            return web.Response(status=500, text="Internal Server Error (sim fault)")
        if fn is None:
            if "application/json" in request.headers.get("Accept", ""):
                return web.Response(text='"pong"', content_type="application/json")
            return web.Response(text="pong", content_type="text/plain")
        try:
            result = fn(body, claims)
        except BadRequest as exc:
            self.counters["bad_requests"] += 1
            return self._problem(exc.problem)
        except Exception:
            log.exception("handler %s failed", path)
            self.counters["server_errors"] += 1
            return web.Response(status=500, text="Internal Server Error")
        if self.after_trading is not None and path in self._trading_paths:
            try:
                await self.after_trading()     # persisted before the answer leaves
            except OSError:
                log.exception("saving the trading state failed")
                self.counters["state_save_errors"] += 1
                return web.Response(status=500, text="Internal Server Error (state not saved)")
        if faulted and self.faults.rest_stale_ms:   # done now, answered late: a stale read
            self.counters["faulted_stale"] += 1
            await self.faults.hold_answer()
        if faulted and self.faults.should_fail_after():  # done, but the answer is lost
            self.counters["faulted_500_after"] += 1
            return web.Response(status=500, text="Internal Server Error (sim fault, after)")
        return web.Response(text=dumps(result), content_type="application/json")

    def _rate_key(self, claims: Claims | None, body: Body, request: web.Request) -> str:
        scope = self.settings.sim_rate_scope
        if scope == "global":
            return "*"
        if claims is not None:
            return claims.jti if scope == "token" else claims.sub.lower()
        user = body.get("userName")
        if isinstance(user, str) and user:
            return user.lower()
        return request.remote or "?"

    def _too_many(self, cls: str, wait: float) -> web.Response:
        self.counters[f"rate_limited_{cls}"] += 1
        self.counters["rate_limited"] += 1
        return web.Response(status=429, text="Too Many Requests",
                            headers={"Retry-After": str(int(max(1, wait)))})

    def _problem(self, body: dict[str, Any]) -> web.Response:
        return web.Response(status=400, text=dumps(body), content_type="application/problem+json")

    # ---- Auth -------------------------------------------------------------------------------
    def _credentials_ok(self, user: str, key: str) -> bool:
        want_user, want_key = self.settings.sim_username, self.settings.sim_api_key
        if not want_user and not want_key:
            return True  # demo mode: any userName/apiKey
        return (not want_user or user.lower() == want_user.lower()) and (
            not want_key or key == want_key)

    def _login(self, user: str, key: str) -> dict[str, Any]:
        if not self._credentials_ok(user, key):
            return {"token": None, "success": False, "errorCode": 3, "errorMessage": None}
        token = self.tokens.issue(user, self.faults.token_lifetime_s)
        return envelope({"token": token})

    def login_key(self, body: Body, claims: Claims | None) -> dict[str, Any]:
        missing = body.required_str("userName", "apiKey")
        if missing:
            raise _missing(missing)
        return self._login(body.get("userName"), body.get("apiKey"))

    def login_app(self, body: Body, claims: Claims | None) -> dict[str, Any]:
        missing = body.required_str("userName", "password", "deviceId", "appId", "verifyKey")
        if missing:
            raise _missing(missing)
        return self._login(body.get("userName"), body.get("password"))

    def validate(self, body: Body, claims: Claims | None) -> dict[str, Any]:
        assert claims is not None
        if not self.tokens.is_live(claims):
            if self.settings.sim_validate_expired == "error":
                return envelope({"newToken": None}, 3, "The session token has expired.")
        return envelope({"newToken": self.tokens.issue(claims.sub, self.faults.token_lifetime_s)})

    def logout(self, body: Body, claims: Claims | None) -> dict[str, Any]:
        assert claims is not None
        self.tokens.revoke(claims)
        if self.on_logout is not None:
            self.on_logout(claims)
        return envelope()

    # ---- Contracts --------------------------------------------------------------------------
    def contract_search(self, body: Body, claims: Claims | None) -> dict[str, Any]:
        text = body.get("searchText", "")
        found = self.catalogue.search(text if isinstance(text, str) else str(text))
        return envelope({"contracts": [c.to_api() for c in found]})

    def contract_by_id(self, body: Body, claims: Claims | None) -> dict[str, Any]:
        missing = body.required_str("contractId")
        if missing:
            raise _missing(missing)
        c = self.catalogue.get(body.get("contractId"))
        if c is None:
            return envelope({"contract": None}, 1, "Contract not found.")
        return envelope({"contract": c.to_api()})

    def contract_available(self, body: Body, claims: Claims | None) -> dict[str, Any]:
        return envelope({"contracts": [c.to_api() for c in self.catalogue.all()]})

    # ---- History ----------------------------------------------------------------------------
    def retrieve_bars(self, body: Body, claims: Claims | None) -> dict[str, Any]:
        cid = body.get("contractId")
        if isinstance(cid, int) and not isinstance(cid, bool):
            cid = str(cid)
        if not isinstance(cid, str) or not cid:
            raise _missing(["contractId"])
        times: dict[str, int] = {}
        for name in ("startTime", "endTime"):
            value = body.get(name)
            if value is None:
                times[name] = 0 if name == "startTime" else -1
                continue
            try:
                times[name] = iso_to_ms(str(value))
            except ValueError:
                raise BadRequest(problem(f"{name} is not a valid date-time.",
                                         {name: [f"The JSON value could not be converted to "
                                                 f"System.DateTime: {value!r}."]})) from None
        ints: dict[str, int] = {}
        for name, default in (("unit", 0), ("unitNumber", 0), ("limit", 0)):
            value = body.get(name, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequest(problem(f"{name} must be an integer.",
                                         {name: ["The JSON value could not be converted to "
                                                 "System.Int32."]}))
            ints[name] = int(value)
        contract = self.catalogue.get(cid)
        if contract is None:
            return envelope({"bars": None}, 1, "Contract not found.")
        try:
            bars = self.history.retrieve(
                cid, times["startTime"], times["endTime"], ints["unit"], ints["unitNumber"],
                ints["limit"], bool(body.get("includePartialBar", False)), self.clock.now_ms())
        except BarError as exc:
            return envelope({"bars": None}, exc.code, str(exc))
        to_price = self.history.tape.to_price
        return envelope({"bars": [
            {"t": bar_time(b[0]), "o": to_price(cid, b[1]), "h": to_price(cid, b[2]),
             "l": to_price(cid, b[3]), "c": to_price(cid, b[4]), "v": b[5]} for b in bars]})
