"""Faults on demand: the state the REST middleware and the hubs consult on every call.

Tests of the other processes switch these at run time through POST /admin/faults (sim/api/admin.py)
to prove they recover; SIM_FAULT_* settings give the starting state. Durations here are real
seconds (they model the network and the operator, not the market).

Settable fields (JSON keys of POST /admin/faults; null resets an optional one):
- rest_fail_rate: fraction 0..1 of API requests answered HTTP 500 (before any work is done);
- rest_delay_ms: delay added before every API response (after the body is read, before the
  work, which is done even if the caller has gone meanwhile);
- rest_fail_after_rate: fraction 0..1 of API requests that are carried out and then answered
  HTTP 500 (the work is done, the answer lost: a placed order whose reply never arrives);
- rest_stale_ms: a request is carried out the moment it arrives and its answer held this long
  (or until `release_stale_now`): a read answers with the state as it was when it arrived,
  after the hub events sent meanwhile (a stale snapshot, the venue's "REST older than the hub");
- rest_fault_paths: API paths (e.g. ["/api/Order/place"]) the four faults above apply to;
  null or empty = every path;
- force_429: every rate-limited API request gets 429 (Retry-After = force_429_retry_after_s);
- drop_hubs_every_s: drop every hub connection every N seconds (0 = never);
- drop_mode: "abrupt" (TCP closed, no close frame) or "close" (SignalR close message with an
  error and allowReconnect true, then the socket closes);
- token_lifetime_s: lifetime of tokens minted from now on (null = SIM_TOKEN_LIFETIME_S).
One-shot actions (booleans in the same JSON): drop_hubs_now, expire_tokens_now (every token
issued so far expires; hubs are closed too when SIM_HUB_CLOSE_ON_EXPIRY), logout_now (send
GatewayLogout on every hub connection, revoke every token, close the connections),
release_stale_now (every answer `rest_stale_ms` holds now goes out: a test decides when a
stale answer lands, rather than racing a timer).
`silence_hubs_now` (an object, not a boolean): `{"market": [contract ids] | "*", "user": "*"}`
makes the hub connections open now go silent: the market hub stops sending those contracts'
quotes, trades and depth (all of them with "*"), the user hub every event; the connections stay
open and keep answering pings, a resubscribe does not bring the data back, a new connection gets
it (the "stream silent while connected" failure of the real venue).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass, fields
from typing import Any

ACTIONS = ("drop_hubs_now", "expire_tokens_now", "logout_now", "release_stale_now")
SILENCE = "silence_hubs_now"


class FaultError(ValueError):
    """A bad admin request: names the field and what is expected."""


@dataclass
class Faults:
    rest_fail_rate: float = 0.0
    rest_delay_ms: int = 0
    rest_stale_ms: int = 0
    rest_fail_after_rate: float = 0.0
    rest_fault_paths: list[str] | None = None
    force_429: bool = False
    force_429_retry_after_s: int = 1
    drop_hubs_every_s: float = 0.0
    drop_mode: str = "abrupt"
    token_lifetime_s: float | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(0xFA17)
        self.silence: dict[str, set[str]] = {}     # the last silence_hubs_now asked for
        self._release: asyncio.Event | None = None  # set by release_stale_now
        self.held = 0                                # answers rest_stale_ms holds now

    @staticmethod
    def _check_silence(value: Any) -> dict[str, set[str]]:
        expected = (f'{SILENCE}: expected {{"market": [contract ids] or "*", "user": "*"}}')
        if not isinstance(value, dict) or not value or not set(value) <= {"market", "user"}:
            raise FaultError(expected)
        out: dict[str, set[str]] = {}
        for hub, keys in value.items():
            if keys == "*":
                out[hub] = {"*"}
            elif hub == "market" and isinstance(keys, list) and keys and all(
                    isinstance(k, str) and k for k in keys):
                out[hub] = set(keys)
            else:
                raise FaultError(expected)
        return out

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Apply settable fields; return the one-shot actions requested. All-or-nothing."""
        if not isinstance(changes, dict):
            raise FaultError("expected a JSON object")
        known = {f.name: f for f in fields(self)}
        actions = []
        staged: dict[str, Any] = {}
        for key, value in changes.items():
            if key == SILENCE:
                self.silence = self._check_silence(value)
                actions.append(key)
                continue
            if key in ACTIONS:
                if not isinstance(value, bool):
                    raise FaultError(f"{key}: expected true or false")
                if value:
                    actions.append(key)
                continue
            if key not in known:
                raise FaultError(f"unknown field {key!r}; known: "
                                 f"{sorted([*known, *ACTIONS, SILENCE])}")
            staged[key] = self._check(key, value)
        for key, value in staged.items():
            setattr(self, key, value)
        return actions

    @staticmethod
    def _check(key: str, value: Any) -> Any:
        if key == "force_429":
            if not isinstance(value, bool):
                raise FaultError("force_429: expected true or false")
            return value
        if key == "drop_mode":
            if value not in ("abrupt", "close"):
                raise FaultError('drop_mode: expected "abrupt" or "close"')
            return value
        if key == "rest_fault_paths":
            if value is None:
                return None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise FaultError("rest_fault_paths: expected a list of API paths or null")
            return [v.lower().rstrip("/") for v in value]
        if key == "token_lifetime_s":
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise FaultError("token_lifetime_s: expected a number of seconds > 0 or null")
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise FaultError(f"{key}: expected a number >= 0")
        if key in ("rest_fail_rate", "rest_fail_after_rate") and value > 1:
            raise FaultError(f"{key}: expected a fraction between 0 and 1")
        if key in ("rest_delay_ms", "rest_stale_ms", "force_429_retry_after_s"):
            return int(value)
        return float(value)

    def applies(self, path: str) -> bool:
        """Whether the REST faults apply to `path` (lower case, as the middleware sees it)."""
        return not self.rest_fault_paths or path in self.rest_fault_paths

    def should_fail(self) -> bool:
        return self.rest_fail_rate > 0 and self._rng.random() < self.rest_fail_rate

    def should_fail_after(self) -> bool:
        return self.rest_fail_after_rate > 0 and self._rng.random() < self.rest_fail_after_rate

    async def hold_answer(self) -> None:
        """Hold an answer already worked out for `rest_stale_ms`, or until `release_held`."""
        if self._release is None:
            self._release = asyncio.Event()
        release = self._release
        self.held += 1
        try:
            await asyncio.wait_for(release.wait(), self.rest_stale_ms / 1000.0)
        except asyncio.TimeoutError:
            pass
        finally:
            self.held -= 1

    def release_held(self) -> int:
        """release_stale_now: every answer held now goes out; how many there were."""
        n, release, self._release = self.held, self._release, None
        if release is not None:
            release.set()
        return n
