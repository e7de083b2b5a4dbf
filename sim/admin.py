"""The admin endpoint: switch faults at run time and read the counters other tests assert on.

Loopback tooling for tests and demos, outside the venue's API (no auth, no rate limit, never
faulted):
- GET  /admin/faults            -> the current fault state (sim/faults.py lists the fields)
- POST /admin/faults  {json}    -> change fields and/or run one-shot actions; answers
                                   {"faults": {...}, "done": {"drop_hubs_now": 3, ...}}
                                   or 400 {"error": "..."} naming the bad field
- GET  /admin/counters          -> requests per endpoint class and path, 429s served, 401s,
                                   hub connections and events, prints generated
- POST /admin/counters/reset    -> zero the request counters and the rate-limit windows
- GET  /admin/state             -> market time, clock speed, listed contracts, engine on/off
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from chillly.clock import ms_to_iso
from sim.faults import FaultError

if TYPE_CHECKING:
    from sim.server import Venue


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=orjson.dumps(obj).decode(), status=status,
                        content_type="application/json")


class Admin:
    def __init__(self, venue: "Venue") -> None:
        self.venue = venue

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/faults", self.get_faults)
        app.router.add_post("/admin/faults", self.post_faults)
        app.router.add_get("/admin/counters", self.get_counters)
        app.router.add_post("/admin/counters/reset", self.reset_counters)
        app.router.add_get("/admin/state", self.get_state)

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
