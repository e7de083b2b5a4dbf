"""The page's HTTP side (aiohttp): the page and its assets, the push channel (a WebSocket),
the chart's bars, and the action endpoints.

Routes: `GET /` the page; `GET /static/...` its script, style and the charting library (served
from this machine: the page needs no internet); `GET /ws` the push channel (a snapshot, then
changes); `GET /api/bars?contract=&tf=&last=` a chart's candles (the series cache as `chillly
bars` asks it, the database when the cache does not answer); `POST /api/action/NAME` halt,
resume, flatten, cancel (web/guard.py says who may).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from chillly.bus import Bus, BusNotReady, RequestTimeout
from chillly.timeframes import is_tf
from store import queries
from web import guard
from web.actions import BadAction, act
from web.board import Board
from web.live import Live
from web.outbox import Hub
from web.settings import WebSettings, is_loopback

log = logging.getLogger("web")

STATIC = Path(__file__).resolve().parent / "static"
#: the charting library, installed by scripts/bootstrap from web/package-lock.json
CHART_JS = (Path(__file__).resolve().parent / "node_modules" / "lightweight-charts" / "dist"
            / "lightweight-charts.standalone.production.js")
MAX_BARS = 2000
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class Page:
    """The aiohttp application of one `chillly web` process."""

    def __init__(self, settings: WebSettings, bus: Bus, hub: Hub, board: Board, live: Live,
                 counters: dict[str, int]) -> None:
        self.s = settings
        self.bus = bus
        self.hub = hub
        self.board = board
        self.live = live
        self.counters = counters
        self.csrf = guard.new_secret()
        self.token = settings.web_token.get_secret_value() if settings.web_token else None
        self.sockets: set[web.WebSocketResponse] = set()
        counters.update({"actions": 0, "actions_refused": 0, "reads_refused": 0,
                         "bars_requests": 0})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/", self.index)
        app.router.add_get("/static/lightweight-charts.js", self.chart_js)
        app.router.add_static("/static/", STATIC, show_index=False)
        app.router.add_get("/favicon.ico", self.no_icon)
        app.router.add_get("/reports/{path:.*}", self.report_file)
        app.router.add_get("/ws", self.ws)
        app.router.add_get("/api/bars", self.bars)
        app.router.add_post("/api/action/{name}", self.action)
        app.on_shutdown.append(self._close_sockets)
        return app

    # ------------------------------------------------------------------ access

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self.s.read_only and not is_loopback(guard.host_of(request.headers.get("Host"))):
            # A page on loopback is only ever asked for by this machine's own name: anything
            # else is a DNS-rebinding page borrowing the browser.
            self.counters["reads_refused"] += 1
            return web.Response(status=403, text="this page answers to its loopback address")
        if not guard.may_read(request.headers, request.cookies, request.query, self.token):
            self.counters["reads_refused"] += 1
            return web.Response(status=401, text="WEB_TOKEN required: open /?token=...")
        resp = await handler(request)
        resp.headers.setdefault("Content-Security-Policy", _CSP)
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        if self.token and request.query.get("token") and guard.same(request.query["token"],
                                                                     self.token):
            resp.set_cookie(guard.TOKEN_COOKIE, self.token, httponly=True, samesite="Strict")
        return resp

    # ------------------------------------------------------------------ the page

    async def index(self, request: web.Request) -> web.StreamResponse:
        html = (STATIC / "index.html").read_text()
        html = html.replace("{{CSRF}}", "" if self.s.read_only else self.csrf)
        html = html.replace("{{READ_ONLY}}", "1" if self.s.read_only else "0")
        return web.Response(text=html, content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def report_file(self, request: web.Request) -> web.StreamResponse:
        """A file of a backtest report, sandboxed: its page runs in an opaque origin."""
        root = self.s.reports_dir.resolve()
        path = (root / request.match_info["path"]).resolve()
        if root not in path.parents or not path.is_file() or \
                path.suffix not in (".html", ".json", ".csv"):
            return web.Response(status=404, text="no such report file")
        return web.FileResponse(path, headers={
            "Content-Security-Policy": "sandbox allow-scripts; default-src 'none'; "
                                       "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                       "img-src data:"})

    async def no_icon(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def chart_js(self, request: web.Request) -> web.StreamResponse:
        if not CHART_JS.is_file():
            return web.Response(status=404, text="the charting library is not installed: run "
                                                 "scripts/bootstrap")
        return web.FileResponse(CHART_JS)

    async def ws(self, request: web.Request) -> web.StreamResponse:
        if not guard.origin_ok(request.headers):
            self.counters["reads_refused"] += 1
            return web.Response(status=403, text="cross-site WebSocket refused")
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1 << 16)
        await ws.prepare(request)
        self.sockets.add(ws)
        first = self.board.snapshot()      # with serve() registering before any await: no gap
        pusher = asyncio.ensure_future(self.hub.serve(first, ws.send_bytes))
        self.live.page_opened()
        try:
            reader = asyncio.ensure_future(self._read(ws))
            await asyncio.wait({pusher, reader}, return_when=asyncio.FIRST_COMPLETED)
            reader.cancel()
        finally:
            pusher.cancel()
            await asyncio.wait({pusher}, timeout=1.0)
            self.sockets.discard(ws)
            if not ws.closed:
                await ws.close()
        return ws

    async def _read(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:     # the page sends nothing we act on; this notices the close
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return

    async def _close_sockets(self, app: web.Application) -> None:
        for ws in list(self.sockets):
            await ws.close(code=1001, message=b"chillly web is stopping")

    # ------------------------------------------------------------------ the chart

    async def bars(self, request: web.Request) -> web.StreamResponse:
        contract = request.query.get("contract", "")
        tf = request.query.get("tf", "1m")
        try:
            last = max(1, min(MAX_BARS, int(request.query.get("last", "300"))))
        except ValueError:
            return web.json_response({"error": "last must be a whole number"}, status=400)
        if not contract or not is_tf(tf):
            return web.json_response({"error": "contract and a timeframe (1m..1d) are needed"},
                                     status=400)
        self.counters["bars_requests"] += 1
        try:
            result = await self._series(contract, tf, last)
            source = "series"
            if result is None:
                result = await asyncio.to_thread(self._from_db, contract, tf, last)
                source = "database"
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response({**result, "source": source})

    async def _series(self, contract: str, tf: str, last: int) -> dict[str, Any] | None:
        """The series cache's `window`, the command `chillly bars` sends; None if it is down."""
        try:
            reply = await self.bus.request("series", "window",
                                           {"contract": contract, "tf": tf, "last": last},
                                           timeout=2.0, attempts=1)
        except (BusNotReady, RequestTimeout):
            return None
        if not reply.ok:
            raise LookupError(reply.error or "series refused the request")
        return reply.result  # type: ignore[no-any-return]

    def _from_db(self, contract: str, tf: str, last: int) -> dict[str, Any]:
        path = self.s.database_path
        missing = queries.missing_database(path)
        if missing:
            raise LookupError(f"the series cache does not answer and {missing}")
        try:
            conn = queries.open_reader(path)
        except sqlite3.OperationalError as exc:
            raise LookupError(f"cannot open {path}: {exc}") from None
        try:
            problem = queries.venue_problem(conn, self.s.venue, path)
            if problem:
                raise LookupError(problem)
            cid = queries.resolve_contract(conn, contract, queries.known_contracts(conn))
            if cid is None:
                raise LookupError(f"unknown contract {contract!r}")
            rows = queries.last_bars(conn, cid, tf, last)
        finally:
            conn.close()
        return {"contract": cid, "tf": tf,
                "bars": [[b.t, b.o, b.h, b.l, b.c, b.volume, b.final] for b in rows]}

    # ------------------------------------------------------------------ actions

    async def action(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        peer = request.transport.get_extra_info("peername") if request.transport else None
        why = guard.action_refusal(read_only=self.s.read_only,
                                   peer=peer[0] if peer else None, headers=request.headers,
                                   csrf=self.csrf)
        if why is None and request.content_type != "application/json":
            why = "an action is a JSON request"
        if why is not None:
            self.counters["actions_refused"] += 1
            log.warning("refused action %s from %s: %s", name, peer, why)
            return web.json_response({"ok": False, "error": why}, status=403)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise BadAction("the body must be a JSON object")
            outcome = await act(name, body, self.s)
        except (BadAction, ValueError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        self.counters["actions"] += 1
        log.info("action %s %s from the page: %s", name, body, outcome.message)
        self.live.refresh_soon()
        return web.json_response({"ok": outcome.ok, "message": outcome.message,
                                  "result": outcome.result})
