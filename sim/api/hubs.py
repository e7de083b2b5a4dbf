"""The two SignalR hubs, /hubs/user and /hubs/market: JSON hub protocol v1 over WebSockets.

What a client sees (projectx-api.md §6): POST <hub>/negotiate (optional) returns a connectionId;
the WebSocket (token in `access_token` or `Authorization: Bearer`, refused with 401 before the
upgrade when missing, bad or expired; any `id` is accepted, so reconnecting with a stale one
works) answers the handshake `{"protocol":"json","version":1}` with `{}`; then records end with
\\x1e. Invocations (type 1) are answered with a completion (type 3) only when they carry an
invocationId; an unknown target gets the completion error "Method does not exist."; pings
(type 6) go both ways; the server says goodbye with a close message (type 7). Subscriptions
live on the connection only: nothing is replayed after a reconnect.

Each connection has an outgoing queue drained by its own writer task, so broadcasting is a
synchronous, non-blocking call (the trading engine's `emit` is sync) and a slow client never
holds up the market loop: several queued records go out in one frame, and a client that falls
`MAX_QUEUE` records behind is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from sim.api.auth import Claims, TokenError, Tokens, bearer
from trading.venue_codes import HubAction

log = logging.getLogger("sim.hubs")

RS = "\x1e"
MAX_QUEUE = 50_000
MAX_FRAME = 256 * 1024
MAX_ARRAY = 1000   # prints or depth entries per market record
PING = '{"type":6}' + RS
TRANSPORTS = [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}]


def record(msg: dict[str, Any]) -> str:
    return orjson.dumps(msg).decode() + RS


def event(target: str, arguments: list[Any]) -> str:
    return record({"type": 1, "target": target, "arguments": arguments})


class HubError(Exception):
    """An invocation error, sent back as the completion's error text."""


class Connection:
    """One client's socket, its subscriptions and its outgoing queue."""

    def __init__(self, hub: "Hub", ws: web.WebSocketResponse, request: web.Request,
                 claims: Claims, token: str) -> None:
        self.hub = hub
        self.ws = ws
        self.request = request
        self.claims = claims
        self.token = token
        self.id = uuid.uuid4().hex[:16]
        self.subs: dict[str, set[Any]] = {}
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False
        self.sent = 0
        # Keys (contract ids, "*" = all) whose events this connection no longer gets while it
        # stays open and answers pings (POST /admin/faults silence_hubs_now).
        self.silent: set[str] = set()
        self._writer: asyncio.Task[None] | None = None

    def quiet(self, key: str) -> bool:
        """Whether the silence fault withholds events for `key` from this connection."""
        return bool(self.silent) and ("*" in self.silent or key in self.silent)

    def subscribed(self, kind: str, key: Any) -> bool:
        got = self.subs.get(kind)
        return got is not None and key in got

    def send(self, text: str) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= MAX_QUEUE:
            log.warning("hub %s: connection %s fell %d records behind; dropping it",
                        self.hub.name, self.id, MAX_QUEUE)
            self.hub.counters["slow_consumer_drops"] += 1
            self.abort()
            return
        self.queue.put_nowait(text)

    def start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while True:
                first = await self.queue.get()
                if first is None:
                    return
                parts = [first]
                size = len(first)
                while size < MAX_FRAME and not self.queue.empty():
                    nxt = self.queue.get_nowait()
                    if nxt is None:
                        await self.ws.send_str("".join(parts))
                        return
                    parts.append(nxt)
                    size += len(nxt)
                self.sent += len(parts)
                self.hub.counters["events_sent"] += len(parts)
                await self.ws.send_str("".join(parts))
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return
        except Exception:
            log.exception("hub %s: writer of %s failed", self.hub.name, self.id)

    async def close(self, error: str | None = None, allow_reconnect: bool = True) -> None:
        """Send a close message (after what is queued), then close the socket."""
        if self.closed:
            return
        msg: dict[str, Any] = {"type": 7}
        if error:
            msg["error"] = error
            msg["allowReconnect"] = allow_reconnect
        self.queue.put_nowait(record(msg))
        self.queue.put_nowait(None)
        self.closed = True
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
            except (asyncio.TimeoutError, Exception):
                pass
        try:
            await asyncio.wait_for(self.ws.close(), 1.0)
        except (asyncio.TimeoutError, Exception):
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection with no close frame: what a network fault looks like."""
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        if self._writer is not None:
            self._writer.cancel()


Method = Callable[[Connection, list[Any]], None]


class Hub:
    """Protocol handling common to both hubs; subclasses register their methods."""

    name = "hub"

    def __init__(self, tokens: Tokens, ping_s: float = 15.0) -> None:
        self.tokens = tokens
        self.ping_s = ping_s
        self.connections: set[Connection] = set()
        self.methods: dict[str, tuple[int, Method]] = {}
        self.counters: dict[str, int] = {"connections_total": 0, "events_sent": 0,
                                          "invocations": 0, "unknown_methods": 0,
                                          "rejected_auth": 0, "slow_consumer_drops": 0,
                                          "silenced": 0}

    # ---- HTTP side --------------------------------------------------------------------------
    def _token(self, request: web.Request) -> str | None:
        return request.query.get("access_token") or bearer(request.headers.get("Authorization"))

    def _authorise(self, request: web.Request) -> tuple[Claims, str]:
        token = self._token(request)
        try:
            return self.tokens.check(token), token or ""
        except TokenError:
            self.counters["rejected_auth"] += 1
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"}) from None

    async def negotiate(self, request: web.Request) -> web.Response:
        self._authorise(request)
        conn_id = uuid.uuid4().hex
        body: dict[str, Any] = {"connectionId": conn_id, "availableTransports": TRANSPORTS}
        try:
            version = int(request.query.get("negotiateVersion", "0"))
        except ValueError:
            version = 0
        if version >= 1:
            body["negotiateVersion"] = 1
            body["connectionToken"] = conn_id
        else:
            body["negotiateVersion"] = 0
        return web.json_response(body)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        claims, token = self._authorise(request)
        ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024, autoping=True)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="WebSockets only (no long polling or SSE)")
        await ws.prepare(request)
        conn = Connection(self, ws, request, claims, token)
        try:
            rest = await self._handshake(ws)
            if rest is None:
                return ws
            self.connections.add(conn)
            self.counters["connections_total"] += 1
            conn.start_writer()
            self.on_connect(conn)
            for text in rest:
                self._record(conn, text)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._frame(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._frame(conn, msg.data.decode("utf-8", "replace"))
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
                if conn.closed:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.connections.discard(conn)
            if not conn.closed:
                conn.closed = True
                conn.queue.put_nowait(None)
        return ws

    async def _handshake(self, ws: web.WebSocketResponse) -> list[str] | None:
        """Answer the handshake; returns any records that came in the same frame."""
        try:
            msg = await ws.receive(timeout=15.0)
        except asyncio.TimeoutError:
            await ws.close()
            return None
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        data = msg.data if isinstance(msg.data, str) else msg.data.decode("utf-8", "replace")
        records = [r for r in data.split(RS) if r.strip()]
        try:
            hello = orjson.loads(records[0]) if records else None
        except orjson.JSONDecodeError:
            hello = None
        if not isinstance(hello, dict) or hello.get("protocol") != "json":
            what = hello.get("protocol") if isinstance(hello, dict) else None
            error = (f"The protocol '{what}' is not supported." if what else
                     "Handshake was canceled: expected {\"protocol\":\"json\",\"version\":1}.")
            await ws.send_str(record({"error": error}))
            await ws.close()
            return None
        if hello.get("version", 1) != 1:
            await ws.send_str(record({"error": f"The server does not support version "
                                               f"{hello.get('version')} of the 'json' protocol."}))
            await ws.close()
            return None
        await ws.send_str("{}" + RS)
        return records[1:]

    # ---- protocol ---------------------------------------------------------------------------
    def _frame(self, conn: Connection, data: str) -> None:
        for text in data.split(RS):
            if text.strip():
                self._record(conn, text)

    def _record(self, conn: Connection, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            conn.send(record({"type": 7, "error": "Connection closed with an error. "
                                                  "InvalidDataException: invalid JSON.",
                              "allowReconnect": True}))
            conn.queue.put_nowait(None)
            conn.closed = True
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind == 1:
            self._invoke(conn, msg)
        elif kind == 7:
            conn.queue.put_nowait(None)
            conn.closed = True
        elif kind in (4, 5):
            inv = msg.get("invocationId")
            if inv is not None:
                conn.send(record({"type": 3, "invocationId": inv,
                                  "error": "Streaming is not supported by this hub."}))
        # type 6 (ping) and anything else: nothing to answer

    def _invoke(self, conn: Connection, msg: dict[str, Any]) -> None:
        self.counters["invocations"] += 1
        target = msg.get("target")
        inv = msg.get("invocationId")
        args = msg.get("arguments") or []
        entry = self.methods.get(target) if isinstance(target, str) else None
        error: str | None = None
        if entry is None:
            self.counters["unknown_methods"] += 1
            error = "Method does not exist."
        else:
            argc, fn = entry
            if not isinstance(args, list) or len(args) < argc:
                n = len(args) if isinstance(args, list) else 0
                error = (f"Failed to invoke '{target}' due to an error on the server. "
                         f"InvalidDataException: Invocation provides {n} argument(s) "
                         f"but target expects {argc}.")
            else:
                try:
                    fn(conn, args)
                except HubError as exc:
                    error = f"Failed to invoke '{target}' due to an error on the server. {exc}"
                except Exception:
                    log.exception("hub %s: %s failed", self.name, target)
                    error = f"An unexpected error occurred invoking '{target}' on the server."
        if inv is not None:
            reply: dict[str, Any] = {"type": 3, "invocationId": inv}
            if error is None:
                reply["result"] = None
            else:
                reply["error"] = error
            conn.send(record(reply))

    # ---- hooks and fan-out ------------------------------------------------------------------
    def on_connect(self, conn: Connection) -> None:
        pass

    def ping(self) -> None:
        for conn in list(self.connections):
            conn.send(PING)

    def silence(self, keys: set[str]) -> int:
        """The silence fault: the connections open now stop getting events for `keys`."""
        for conn in self.connections:
            conn.silent |= keys
        return len(self.connections)

    def send_all(self, text: str) -> None:
        for conn in list(self.connections):
            conn.send(text)

    async def close_all(self, error: str | None = None, allow_reconnect: bool = True) -> None:
        conns = list(self.connections)
        await asyncio.gather(*(c.close(error, allow_reconnect) for c in conns),
                             return_exceptions=True)

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()
        self.connections.clear()

    async def close_expired(self) -> int:
        """Close connections whose token expired (SIM_HUB_CLOSE_ON_EXPIRY)."""
        dead = [c for c in self.connections if not self.tokens.is_live(c.claims)]
        for c in dead:
            await c.close("Unauthorized: the access token expired.", True)
        return len(dead)


def _contract_arg(args: list[Any]) -> str:
    value = args[0]
    if not isinstance(value, str) or not value:
        raise HubError("InvalidDataException: Error binding arguments: expected a contract id "
                       "string.")
    return value


def _account_arg(args: list[Any]) -> int:
    value = args[0]
    if isinstance(value, bool):
        raise HubError("InvalidDataException: Error binding arguments: expected an account id.")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise HubError("InvalidDataException: Error binding arguments: expected an account "
                       "id.") from None


class MarketHub(Hub):
    """Quotes, trades and depth per contract: events `[contractId, data]`."""

    name = "market"

    def __init__(self, tokens: Tokens, market: Any, clock: Any, ping_s: float = 15.0) -> None:
        super().__init__(tokens, ping_s)
        self.market = market
        self.clock = clock
        for kind, suffix in (("quotes", "ContractQuotes"), ("trades", "ContractTrades"),
                             ("depth", "ContractMarketDepth")):
            self.methods["Subscribe" + suffix] = (1, self._subscriber(kind))
            self.methods["Unsubscribe" + suffix] = (1, self._unsubscriber(kind))

    def _subscriber(self, kind: str) -> Method:
        def subscribe(conn: Connection, args: list[Any]) -> None:
            cid = _contract_arg(args)
            conn.subs.setdefault(kind, set()).add(cid)
            if conn.quiet(cid):
                return
            now = self.clock.now_ms()
            if kind == "quotes":
                q = self.market.quote(cid, now)
                if q is not None:
                    conn.send(event("GatewayQuote", [cid, q]))
            elif kind == "depth":
                reset, snap = self.market.depth_snapshot(cid, now)
                conn.send(event("GatewayDepth", [cid, reset]))
                if snap:
                    conn.send(event("GatewayDepth", [cid, snap]))
        return subscribe

    def _unsubscriber(self, kind: str) -> Method:
        def unsubscribe(conn: Connection, args: list[Any]) -> None:
            conn.subs.get(kind, set()).discard(_contract_arg(args))
        return unsubscribe

    def publish(self, updates: list[Any]) -> None:
        """Fan one market step out: each payload encoded once, sent to its subscribers."""
        if not self.connections:
            return
        for up in updates:
            cid = up.contract_id
            for kind, target, data in (("quotes", "GatewayQuote", up.quote),
                                       ("trades", "GatewayTrade", up.trades),
                                       ("depth", "GatewayDepth", up.depth)):
                if not data:
                    continue
                texts: list[str] | None = None
                for conn in self.connections:
                    if conn.subscribed(kind, cid):
                        if conn.quiet(cid):
                            self.counters["silenced"] += 1
                            continue
                        if texts is None:
                            texts = self._encode(target, cid, data)
                        for text in texts:
                            conn.send(text)

    @staticmethod
    def _encode(target: str, cid: str, data: Any) -> list[str]:
        """One record, or several when an array is long (a fast clock batches many prints):
        keeps every frame well under the 1 MiB a default websockets client accepts."""
        if isinstance(data, list) and len(data) > MAX_ARRAY:
            return [event(target, [cid, data[i:i + MAX_ARRAY]])
                    for i in range(0, len(data), MAX_ARRAY)]
        return [event(target, [cid, data])]


class UserHub(Hub):
    """Account, order, position and trade events of the subscribed accounts: `[{action,data}]`."""

    name = "user"
    KINDS = {"GatewayUserOrder": "orders", "GatewayUserPosition": "positions",
             "GatewayUserTrade": "trades"}

    def __init__(self, tokens: Tokens, ping_s: float = 15.0,
                 accounts: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        super().__init__(tokens, ping_s)
        self.accounts = accounts or (lambda: [])
        self.methods["SubscribeAccounts"] = (0, self._sub_accounts)
        self.methods["UnsubscribeAccounts"] = (0, self._unsub_accounts)
        for name, kind in (("Orders", "orders"), ("Positions", "positions"),
                           ("Trades", "trades")):
            self.methods["Subscribe" + name] = (1, self._subscriber(kind))
            self.methods["Unsubscribe" + name] = (1, self._unsubscriber(kind))

    def _sub_accounts(self, conn: Connection, args: list[Any]) -> None:
        conn.subs["accounts"] = {True}
        if conn.quiet("*"):
            return
        for acc in self.accounts():
            conn.send(event("GatewayUserAccount", [{"action": HubAction.UPDATE, "data": acc}]))

    def _unsub_accounts(self, conn: Connection, args: list[Any]) -> None:
        conn.subs.pop("accounts", None)

    def _subscriber(self, kind: str) -> Method:
        def subscribe(conn: Connection, args: list[Any]) -> None:
            conn.subs.setdefault(kind, set()).add(_account_arg(args))
        return subscribe

    def _unsubscriber(self, kind: str) -> Method:
        def unsubscribe(conn: Connection, args: list[Any]) -> None:
            conn.subs.get(kind, set()).discard(_account_arg(args))
        return unsubscribe

    def broadcast(self, event_name: str, account_id: int, envelope: dict[str, Any]) -> None:
        """The trading engine's emit: one user event to every connection subscribed to it."""
        if not self.connections:
            return
        key: int | bool
        if event_name == "GatewayUserAccount":
            kind, key = "accounts", True
        else:
            kind, key = self.KINDS.get(event_name, ""), account_id
        text: str | None = None
        for conn in self.connections:
            if conn.subscribed(kind, key):
                if conn.quiet("*"):
                    self.counters["silenced"] += 1
                    continue
                if text is None:
                    text = event(event_name, [envelope])
                conn.send(text)
