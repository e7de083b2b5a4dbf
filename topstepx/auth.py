"""One venue token per process: log in with the API key, refresh with `validate` before `exp`.

The token is a JWT; we read its `exp` claim (payload only, no signature check: we are not the
one who trusts it, the venue is) to know when to refresh. Refresh happens lazily, on the first
use after `refresh_at_ms`; a hub agent asks for the token at that moment too, so a connection
that makes no REST calls still moves to a fresh token in time. When `validate` fails (expired,
unknown session, 401) we log in again. Concurrent callers share one refresh (a lock), and a
caller that saw a 401 with an older token gets the newer one without a second refresh.
Times are on the process clock, like the sim's token clock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chillly.clock import Clock, HOUR_MS

log = logging.getLogger("topstepx.auth")

DEFAULT_LIFETIME_MS = 12 * HOUR_MS  # when a token carries no exp: refresh twice a day


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT (no signature check), or None when it is not JWT-shaped."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    seg = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(seg.encode("ascii")))
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def jwt_exp_ms(token: str) -> int | None:
    """The `exp` claim as epoch ms, or None."""
    claims = jwt_claims(token)
    exp = claims.get("exp") if claims else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return int(exp * 1000)


def refresh_due_ms(obtained_ms: int, exp_ms: int | None, before_ms: int) -> int:
    """When to refresh: `before_ms` ahead of exp, but never earlier than 4/5 of the life."""
    if exp_ms is None:
        return obtained_ms + DEFAULT_LIFETIME_MS
    life = max(0, exp_ms - obtained_ms)
    return exp_ms - min(before_ms, life // 5)


Login = Callable[[], Awaitable[str]]
Validate = Callable[[str], Awaitable[str | None]]


class TokenManager:
    """Holds the process's token. `login()` returns a token or raises; `validate(token)` returns
    the new token, or None when the session cannot be refreshed (then we log in again)."""

    def __init__(self, clock: Clock, login: Login, validate: Validate,
                 refresh_before_s: float = 300.0) -> None:
        self.clock = clock
        self._login = login
        self._validate = validate
        self.refresh_before_ms = int(refresh_before_s * 1000)
        self._token: str | None = None
        self.obtained_ms = 0
        self.exp_ms: int | None = None
        self.refresh_at_ms = 0
        self._lock = asyncio.Lock()
        self.counters = {"logins": 0, "refreshes": 0, "refresh_failures": 0}
        self._listeners: list[Callable[[str], Any]] = []
        self._changed = asyncio.Event()

    @property
    def current(self) -> str | None:
        return self._token

    def on_new_token(self, callback: Callable[[str], Any]) -> None:
        self._listeners.append(callback)

    def _set(self, token: str) -> None:
        self._token = token
        self.obtained_ms = self.clock.now_ms()
        self.exp_ms = jwt_exp_ms(token)
        self.refresh_at_ms = refresh_due_ms(self.obtained_ms, self.exp_ms, self.refresh_before_ms)
        self._changed.set()
        for cb in self._listeners:
            try:
                cb(token)
            except Exception:
                log.exception("token listener failed")

    async def token(self) -> str:
        """A usable token, logging in or refreshing first when needed."""
        tok = self._token
        if tok is not None and self.clock.now_ms() < self.refresh_at_ms:
            return tok
        return await self.refresh(stale=tok)

    async def refresh(self, stale: str | None = None, relogin: bool = False) -> str:
        """Get a newer token than `stale` (validate, else log in). Shared by concurrent callers."""
        async with self._lock:
            tok = self._token
            if tok is not None and tok != stale and self.clock.now_ms() < self.refresh_at_ms:
                return tok  # someone refreshed while we waited
            if tok is not None and not relogin:
                try:
                    new = await self._validate(tok)
                except Exception as exc:  # an expired/unknown session: log in again
                    log.info("validate failed (%s); logging in again", exc)
                    new = None
                if new:
                    self.counters["refreshes"] += 1
                    self._set(new)
                    return new
                self.counters["refresh_failures"] += 1
            new = await self._login()
            self.counters["logins"] += 1
            self._set(new)
            return new

    async def keep_fresh(self, retry_s: float = 5.0) -> None:
        """Refresh at `refresh_at_ms` even when no call needs the token then: a process that
        calls the venue every 30 s would otherwise meet a token that expired between two calls
        (a 401, then a refresh). Runs until cancelled; never logs in before the first use."""
        while True:
            due = self.refresh_at_ms
            self._changed.clear()
            if self._token is None:
                await asyncio.sleep(retry_s)
                continue
            sleeper = asyncio.ensure_future(self.clock.sleep_until(due))
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                changed.cancel()
            if self._token is None or self.refresh_at_ms != due:
                continue  # a new token (login, refresh) or none: start over with its due time
            try:
                await self.token()
            except Exception as exc:
                log.warning("background token refresh failed: %s", exc)
                await asyncio.sleep(retry_s)

    def forget(self) -> None:
        """Drop the token (GatewayLogout: the session is gone); the next use logs in."""
        self._token = None
        self.refresh_at_ms = 0
        self._changed.set()
