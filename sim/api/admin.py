"""The admin endpoint: switch faults at run time and read the counters other tests assert on.

Loopback tooling for tests and demos, outside the venue's API (no auth, no rate limit, never
faulted):
- GET  /admin/faults            -> the current fault state (sim/api/faults.py lists the fields)
- POST /admin/faults  {json}    -> change fields and/or run one-shot actions; answers
                                   {"faults": {...}, "done": {"drop_hubs_now": 3, ...}}
                                   or 400 {"error": "..."} naming the bad field
- GET  /admin/counters          -> requests per endpoint class and path, 429s served, 401s,
                                   hub connections and events, prints generated
- POST /admin/counters/reset    -> zero the request counters and the rate-limit windows
- GET  /admin/state             -> market time, clock speed, listed contracts
- GET  /admin/breaches[?account=ID] -> {"breaches": [...]}: every Topstep rule violation seen
- GET  /admin/accounts/{id}/risk -> the referee's view of one account (floor, high water, ...)
- POST /admin/accounts/{id}/reset [{"balance": N}] -> the account flattened and started again
                                   as a fresh account of its program; answers its risk view
- GET  /admin/rules             -> {"enforce": [...], "rules": [...]}
- POST /admin/rules {"enforce": [...] | "all" | "none"} -> the same, after the change
- GET  /admin/market            -> {"drifts": [...]}
- POST /admin/market {"contractId", "ticks", "over_seconds", "volatility"} -> {"drift": {...}}
docs/sim.md gives every shape.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from chillly.clock import ms_to_iso
from sim.api.faults import FaultError
from sim.exchange.rules import RULES

if TYPE_CHECKING:
    from sim.venue import Venue


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=orjson.dumps(obj).decode(), status=status,
                        content_type="application/json")


async def _object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object body (an empty body is {}), or the 400 that says why not."""
    try:
        body = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        return _json({"error": "the body is not valid JSON"}, 400)
    if not isinstance(body, dict):
        return _json({"error": "expected a JSON object"}, 400)
    return body


class Admin:
    def __init__(self, venue: "Venue") -> None:
        self.venue = venue

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/faults", self.get_faults)
        app.router.add_post("/admin/faults", self.post_faults)
        app.router.add_get("/admin/counters", self.get_counters)
        app.router.add_post("/admin/counters/reset", self.reset_counters)
        app.router.add_get("/admin/state", self.get_state)
        app.router.add_get("/admin/breaches", self.get_breaches)
        app.router.add_get("/admin/accounts/{id}/risk", self.get_risk)
        app.router.add_post("/admin/accounts/{id}/reset", self.post_reset)
        app.router.add_get("/admin/rules", self.get_rules)
        app.router.add_post("/admin/rules", self.post_rules)
        app.router.add_get("/admin/market", self.get_market)
        app.router.add_post("/admin/market", self.post_market)

    async def get_faults(self, request: web.Request) -> web.Response:
        return _json({"faults": self.venue.faults.snapshot()})

    async def post_faults(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read() or b"{}")
            actions = self.venue.faults.update(changes)
        except orjson.JSONDecodeError:
            return _json({"error": "the body is not valid JSON"}, 400)
        except FaultError as exc:
            return _json({"error": str(exc)}, 400)
        done: dict[str, int] = {}
        for action in actions:
            if action == "drop_hubs_now":
                done[action] = await self.venue.drop_hubs()
            elif action == "expire_tokens_now":
                await self.venue.expire_tokens()
                done[action] = 1
            elif action == "logout_now":
                done[action] = await self.venue.logout_all()
            elif action == "release_stale_now":
                done[action] = self.venue.faults.release_held()
            elif action == "silence_hubs_now":
                done[action] = sum(hub.silence(self.venue.faults.silence.get(hub.name, set()))
                                   for hub in self.venue.hubs()
                                   if hub.name in self.venue.faults.silence)
        return _json({"faults": self.venue.faults.snapshot(), "done": done})

    async def get_counters(self, request: web.Request) -> web.Response:
        api = self.venue.api
        return _json({"counters": self.venue.all_counters(), "paths": dict(api.by_path)})

    async def reset_counters(self, request: web.Request) -> web.Response:
        api = self.venue.api
        api.counters.clear()
        api.by_path.clear()
        for limit in api.limits.values():
            limit.reset()
        return _json({"ok": True})

    async def get_state(self, request: web.Request) -> web.Response:
        v = self.venue
        now = v.clock.now_ms()
        return _json({"now": now, "nowIso": ms_to_iso(now), "speed": v.clock.speed,
                      "open": v.market.is_open(now), "engine": True,
                      "contracts": [c.id for c in v.catalogue.all()],
                      "historyStart": ms_to_iso(v.tape.history_start_ms)})

    # ---- the referee and the rules ----------------------------------------------------------
    async def get_breaches(self, request: web.Request) -> web.Response:
        account = request.query.get("account")
        if account is not None and not account.lstrip("-").isdigit():
            return _json({"error": "account must be an integer"}, 400)
        return _json({"breaches": self.venue.engine.breaches(
            None if account is None else int(account))})

    async def get_risk(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        risk = self.venue.engine.risk(int(raw)) if raw.lstrip("-").isdigit() else None
        if risk is None:
            return _json({"error": f"no account {raw}"}, 404)
        return _json(risk)

    async def post_reset(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        body = await _object(request)
        if isinstance(body, web.Response):
            return body
        balance = body.get("balance")
        if balance is not None and (isinstance(balance, bool)
                                    or not isinstance(balance, (int, float))
                                    or not math.isfinite(balance) or balance < 0):
            return _json({"error": "balance: expected a number >= 0"}, 400)
        engine = self.venue.engine
        risk = engine.reset_account(int(raw), balance) if raw.lstrip("-").isdigit() else None
        if risk is None:
            return _json({"error": f"no account {raw}"}, 404)
        await self.venue.save_state()
        return _json(risk)

    def _rules(self) -> dict[str, Any]:
        return {"enforce": sorted(self.venue.engine.enforce), "rules": list(RULES)}

    async def get_rules(self, request: web.Request) -> web.Response:
        return _json(self._rules())

    async def post_rules(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            return _json({"error": "the body is not valid JSON"}, 400)
        value = body.get("enforce") if isinstance(body, dict) else None
        if value == "all":
            value = list(RULES)
        elif value == "none":
            value = []
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            return _json({"error": 'enforce: expected a list of rule names, "all" or "none"'},
                         400)
        try:
            self.venue.engine.set_enforcement(value)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        await self.venue.save_state()       # a restarted sim comes back with this switch
        return _json(self._rules())

    # ---- the market -------------------------------------------------------------------------
    async def get_market(self, request: web.Request) -> web.Response:
        return _json({"drifts": [d.to_api() for d in self.venue.tape.drifts]})

    async def post_market(self, request: web.Request) -> web.Response:
        body = await _object(request)
        if isinstance(body, web.Response):
            return body
        cid = body.get("contractId")
        contract = self.venue.catalogue.get(cid) if isinstance(cid, str) else None
        if contract is None:
            return _json({"error": f"contractId: unknown contract {cid!r}"}, 400)
        values: dict[str, float] = {}
        for key, default in (("ticks", 0.0), ("over_seconds", 0.0), ("volatility", 1.0)):
            v = body.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return _json({"error": f"{key}: expected a number"}, 400)
            values[key] = float(v)
        try:
            drift = self.venue.add_drift(contract.id, values["ticks"], values["over_seconds"],
                                         values["volatility"])
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        await self.venue.save_state()
        return _json({"drift": drift.to_api(), "contractId": contract.id,
                      "now": self.venue.clock.now_ms()})
