"""SignalR hub agents (pysignalr) that stay connected, subscribed and on a valid token.

pysignalr 1.3.x reconnects by itself but forgets subscriptions, keeps using the URL (and so the
token) it started with, and raises out of `run()` when the server closes with an error. So an
agent owns the whole cycle itself, one `SignalRClient` per connection:

1. take the process's current token (TokenManager) and build the client with
   `?access_token=` in the URL (the first socket carries no header; projectx-api.md §1, §8.17)
   and `max_size` >= 1 MiB (DOM snapshots are large);
2. on open, send every subscription again (nothing survives a reconnect at the venue);
3. wait until the connection drops, `run()` raises, the server sends GatewayLogout, the token
   is due for refresh, or the feed is stale; then tear the client down and start over, backing
   off exponentially while connections keep failing.

Sends are serialized with a lock (concurrent `send()` interleaves frames otherwise). Staleness is
judged in MARKET time: only while the market is open (chillly.calendar) and only when the owner
says data is expected (a quiet user hub is normal), counting from the last message, the last
(re)connect or the moment the market reopened, whichever is latest; a few seconds of real quiet
are required too, so a high CLOCK_SPEED cannot make the threshold shorter than a reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pysignalr.client import SignalRClient

from chillly.calendar import is_market_open
from chillly.clock import Clock
from topstepx.auth import TokenManager

log = logging.getLogger("topstepx.hub")

MAX_FRAME = 4 * 2**20
EventHandler = Callable[[list[Any]], Any]
OpenHandler = Callable[["HubAgent"], Awaitable[None]]
AlarmHandler = Callable[[str, bool, str], None]


def with_token(url: str, token: str) -> str:
    """The hub URL with `access_token=<token>` (replacing any earlier one)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != "access_token"]
    query.append(("access_token", token))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class HubAgent:
    """One hub connection kept alive. Register handlers with `on`, subscriptions in `on_open`."""

    def __init__(self, name: str, url: str, tokens: TokenManager, clock: Clock, *,
                 on_open: OpenHandler | None = None, stale_after_s: float | None = None,
                 expects_data: Callable[[], bool] = lambda: True,
                 on_alarm: AlarmHandler | None = None, backoff_min_s: float = 0.2,
                 backoff_max_s: float = 10.0, connect_timeout_s: float = 10.0,
                 market_open: Callable[[int], bool] = is_market_open,
                 stale_min_real_s: float = 3.0) -> None:
        self.name = name
        self.url = url
        self.tokens = tokens
        self.clock = clock
        self._on_open = on_open
        self.stale_after_ms = int(stale_after_s * 1000) if stale_after_s else None
        self.expects_data = expects_data
        self.on_alarm = on_alarm
        self.backoff_min = backoff_min_s
        self.backoff_max = backoff_max_s
        self.connect_timeout = connect_timeout_s
        self.market_open = market_open
        # Also require this much REAL quiet time: at a high CLOCK_SPEED a market-time threshold
        # alone is shorter than a reconnect, and the agent would thrash.
        self.stale_min_real = stale_min_real_s
        self._last_real = 0.0
        self._handlers: dict[str, EventHandler] = {}
        self._client: SignalRClient | None = None
        self._send_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._reason = ""
        self.connected = asyncio.Event()
        self.last_msg_ms = 0
        self._opened_ms = 0
        self._reopened_ms = 0
        self.stale = False
        self.counters: dict[str, int] = {
            "connects": 0, "drops": 0, "connect_failures": 0, "logouts": 0, "token_reconnects": 0,
            "stale_alarms": 0, "messages": 0, "handler_errors": 0, "send_errors": 0,
        }

    def on(self, event: str, handler: EventHandler) -> None:
        """Handle a hub event; the handler gets pysignalr's `arguments` list (sync or async)."""
        self._handlers[event] = handler

    # ------------------------------------------------------------------ sending

    async def send(self, method: str, arguments: list[Any]) -> bool:
        """Invoke a hub method (fire and forget). False when not connected (the next on_open
        resubscribes anyway)."""
        client = self._client
        if client is None or not self.connected.is_set():
            return False
        async with self._send_lock:
            try:
                await client.send(method, arguments)
                return True
            except Exception as exc:
                self.counters["send_errors"] += 1
                log.info("%s: send %s failed: %s", self.name, method, exc)
                return False

    def reconnect(self, reason: str) -> None:
        """Drop the current connection and start a new one."""
        self._reason = reason
        self._wake.set()

    # ------------------------------------------------------------------ the cycle

    async def run(self) -> None:
        """Run until cancelled."""
        watchdog = asyncio.ensure_future(self._watchdog()) if self.stale_after_ms else None
        failures = 0
        loop = asyncio.get_running_loop()
        try:
            while True:
                began = loop.time()
                opened = await self._one_connection()
                if opened and loop.time() - began >= 1.0:
                    failures = 0
                elif opened:  # accepted, then dropped at once: back off like a failure
                    failures += 1
                else:
                    failures += 1
                    self.counters["connect_failures"] += 1
                delay = 0.0 if failures == 0 else min(
                    self.backoff_max, self.backoff_min * 2 ** max(0, failures - 1))
                if delay:
                    await asyncio.sleep(delay * (0.75 + random.random() / 2))
        finally:
            if watchdog is not None:
                watchdog.cancel()

    async def _one_connection(self) -> bool:
        """One client from token to teardown. True if it opened (and so ran for a while)."""
        try:
            token = await self.tokens.token()
        except Exception as exc:
            log.warning("%s: no token (%s)", self.name, exc)
            return False
        self._wake.clear()
        self._reason = ""
        opened = asyncio.Event()
        client = SignalRClient(with_token(self.url, token), access_token_factory=lambda: token,
                               max_size=MAX_FRAME, retry_count=1,
                               connection_timeout=int(self.connect_timeout))
        for event, handler in self._handlers.items():
            client.on(event, self._wrap(event, handler))
        client.on("GatewayLogout", self._logout)

        async def on_open() -> None:
            self.counters["connects"] += 1
            self._opened_ms = self.clock.now_ms()
            self._last_real = time.monotonic()
            self.connected.set()
            opened.set()
            if self._on_open is not None:
                try:
                    await self._on_open(self)
                except Exception:
                    log.exception("%s: subscribing on open failed", self.name)
                    self.reconnect("subscribe failed")

        async def on_close() -> None:
            if self.connected.is_set():
                self.reconnect("connection closed")

        client.on_open(on_open)
        client.on_close(on_close)
        self._client = client
        run_task = asyncio.ensure_future(client.run())
        wake_task = asyncio.ensure_future(self._wake.wait())
        refresh_task = asyncio.ensure_future(self._token_due(token))
        watch_task = asyncio.ensure_future(self._connect_watch(opened))
        tasks = (run_task, wake_task, refresh_task, watch_task)
        try:
            done, _ = await asyncio.wait({run_task, wake_task, refresh_task},
                                         timeout=None, return_when=asyncio.FIRST_COMPLETED)
            if run_task in done:
                error = run_task.exception()
                if error is not None:
                    self._reason = f"run() raised {type(error).__name__}: {error}"
                    if "Authorization" in type(error).__name__:
                        await self._refresh_quietly(token)
                else:
                    self._reason = self._reason or "run() returned"
            elif refresh_task in done:
                self.counters["token_reconnects"] += 1
                self._reason = "token refresh"
        finally:
            self.connected.clear()
            self._client = None
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if opened.is_set():
            self.counters["drops"] += 1
        log.info("%s: %s (%s)", self.name, "reconnecting" if opened.is_set() else "connect failed",
                 self._reason)
        return opened.is_set()

    async def _token_due(self, token: str) -> None:
        """Return when the token must be refreshed; leave with the new token in hand."""
        await self.clock.sleep_until(self.tokens.refresh_at_ms)
        await self._refresh_quietly(token)

    async def _refresh_quietly(self, stale: str) -> None:
        try:
            await self.tokens.refresh(stale=stale)
        except Exception as exc:
            log.warning("%s: token refresh failed: %s", self.name, exc)

    async def _connect_watch(self, opened: asyncio.Event) -> None:
        await asyncio.sleep(self.connect_timeout)
        if not opened.is_set():
            self.reconnect("connect timeout")

    def _wrap(self, event: str, handler: EventHandler) -> Callable[[list[Any]], Awaitable[None]]:
        is_async = asyncio.iscoroutinefunction(handler)

        async def call(args: list[Any]) -> None:
            self.last_msg_ms = self.clock.now_ms()
            self._last_real = time.monotonic()
            self.counters["messages"] += 1
            if self.stale:
                self._set_stale(False, f"{event} received")
            try:
                if is_async:
                    await handler(args)
                else:
                    handler(args)
            except Exception:  # never let input kill the connection (pysignalr re-raises)
                self.counters["handler_errors"] += 1
                log.exception("%s: handler for %s failed", self.name, event)
            return None

        return call

    async def _logout(self, args: list[Any]) -> None:
        self.counters["logouts"] += 1
        log.warning("%s: GatewayLogout %r: logging in again", self.name, args)
        self.tokens.forget()
        self.reconnect("GatewayLogout")

    # ------------------------------------------------------------------ stale feed

    def _set_stale(self, active: bool, text: str) -> None:
        self.stale = active
        if active:
            self.counters["stale_alarms"] += 1
        if self.on_alarm is not None:
            try:
                self.on_alarm("stale_feed", active, text)
            except Exception:
                log.exception("alarm callback failed")

    def quiet_ms(self, now_ms: int) -> int:
        """Market time since data last could have been expected."""
        return now_ms - max(self.last_msg_ms, self._opened_ms, self._reopened_ms)

    def check_stale(self, now_ms: int) -> None:
        """One watchdog step (pure enough to unit-test with a manual clock)."""
        assert self.stale_after_ms is not None
        if not self.market_open(now_ms) or not self.expects_data():
            self._reopened_ms = now_ms
            self._last_real = time.monotonic()
            if self.stale:
                self._set_stale(False, "market closed or nothing subscribed")
            return
        if not self.connected.is_set():
            return
        quiet = self.quiet_ms(now_ms)
        real_quiet = time.monotonic() - self._last_real
        if quiet >= self.stale_after_ms and real_quiet >= self.stale_min_real and not self.stale:
            self._set_stale(True, f"no {self.name} data for {quiet / 1000:.0f}s of market time")
            self.reconnect("stale feed")

    async def _watchdog(self) -> None:
        assert self.stale_after_ms is not None
        step = max(0.05, self.stale_after_ms / 4000)
        while True:
            await self.clock.sleep(step)
            self.check_stale(self.clock.now_ms())


def user_events(args: list[Any]) -> list[tuple[int | None, dict[str, Any]]]:
    """A user-hub event's entities as (action, data): accepts a flat dict, an {action, data}
    envelope, or a list of either (projectx-api.md §6)."""
    out: list[tuple[int | None, dict[str, Any]]] = []
    stack: list[Any] = list(args)
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack[0:0] = item
        elif isinstance(item, dict):
            data = item.get("data")
            if isinstance(data, dict):
                action = item.get("action")
                out.append((action if isinstance(action, int) else None, data))
            else:
                out.append((None, item))
    return out


def user_hub_subscriber(account_ids: Callable[[], list[int]]) -> OpenHandler:
    """on_open for the user hub: orders/positions/trades of each account, then accounts LAST:
    the hub answers SubscribeAccounts with the account snapshot, and since one connection is
    processed in order, that GatewayUserAccount proves every earlier subscription is in place."""

    async def subscribe(agent: HubAgent) -> None:
        for acc in account_ids():
            for method in ("SubscribeOrders", "SubscribePositions", "SubscribeTrades"):
                await agent.send(method, [acc])
        await agent.send("SubscribeAccounts", [])

    return subscribe
