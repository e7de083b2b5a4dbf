"""The client's error types: what went wrong decides what the caller may do next.

- `ApiError`: the venue answered and said no (`success: false`); retrying the same call will
  not help. Carries the endpoint's own `errorCode` (codes are per endpoint, projectx-api.md §5)
  and the payload (a rejected order still has its `orderId`).
- `AuthError`: no token could be obtained (bad credentials, login refused).
- `HttpError`: an HTTP status the client does not recover from (400, 404, ...).
- `VenueUnavailable`: a read call gave up after its retries (timeouts, 5xx, 429s).
- `BadResponse`: the answer is not the documented shape; `UnreadableEntities`, one of them, when
  a trading read (orders, positions, trades) held entities that do not parse.
- `OutcomeUnknown`: a MUTATING call (order place/cancel/modify, position close) did not get a
  clear answer. It was not retried and may or may not have happened at the venue: the caller
  must reconcile (search orders/positions) before doing anything else.
"""

from __future__ import annotations

from typing import Any


class VenueError(Exception):
    """Base of every error raised by the venue client."""


class ApiError(VenueError):
    def __init__(self, path: str, code: int, message: str | None, payload: dict[str, Any]) -> None:
        super().__init__(f"{path}: errorCode {code}" + (f" ({message})" if message else ""))
        self.path = path
        self.code = code
        self.message = message
        self.payload = payload


class AuthError(VenueError):
    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.code = code


class HttpError(VenueError):
    def __init__(self, path: str, status: int, body: str = "") -> None:
        super().__init__(f"{path}: HTTP {status}" + (f": {body[:200]}" if body else ""))
        self.path = path
        self.status = status
        self.body = body


class BadResponse(VenueError):
    """The venue answered something that is not the documented envelope."""


class UnreadableEntities(BadResponse):
    """A trading read (orders, positions, trades) held entities the client could not parse.

    Dropping them would make a reconcile believe the account has fewer orders or is flat, so
    the whole read fails instead; `parsed` keeps what did parse, for a log or an alarm only.
    """

    def __init__(self, path: str, entity: str, problems: list[str], parsed: list[Any]) -> None:
        super().__init__(f"{path}: {len(problems)} unreadable {entity} in the answer "
                         f"(first: {problems[0]})")
        self.path = path
        self.entity = entity
        self.problems = problems
        self.parsed = parsed


class VenueUnavailable(VenueError):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: venue unavailable ({why})")
        self.path = path
        self.why = why


class OutcomeUnknown(VenueError):
    def __init__(self, path: str, why: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{path}: outcome unknown ({why}); reconcile before acting again")
        self.path = path
        self.why = why
        self.body = body or {}
