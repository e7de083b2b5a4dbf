"""The REST client's rules against a scripted venue (httpx.MockTransport): envelope on every
call, one refresh + one retry on a 401 for reads, backoff on 429/5xx for reads, mutating calls
never retried, paging backwards at the cap. The real sim is used in tests/integration."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest

from chillly.clock import MINUTE_MS, ManualClock, iso_to_ms, ms_to_iso
from topstepx.client import ProjectXClient
from topstepx.errors import ApiError, AuthError, BadResponse, OutcomeUnknown, VenueUnavailable

T0 = iso_to_ms("2026-11-24T15:00:00Z")


def jwt(n: int) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'none'})}.{enc({'exp': T0 // 1000 + 86_400, 'n': n})}.sig"


class Venue:
    """A scripted venue: login/validate built in; `routes[path]` answers everything else."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, str | None]] = []
        self.routes: dict[str, Callable[[dict, str | None], httpx.Response]] = {}
        self.logins = 0
        self.valid: set[str] = set()

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        auth = request.headers.get("authorization")
        token = auth.split(" ", 1)[1] if auth else None
        path = request.url.path
        self.calls.append((path, body, token))
        if path == "/api/Auth/loginKey":
            self.logins += 1
            tok = jwt(self.logins)
            self.valid.add(tok)
            return httpx.Response(200, json={"token": tok, "success": True, "errorCode": 0,
                                             "errorMessage": None})
        if path == "/api/Auth/validate":
            if token not in self.valid:
                return httpx.Response(401)
            return httpx.Response(200, json={"success": True, "errorCode": 0,
                                             "errorMessage": None, "newToken": token})
        if token not in self.valid:
            return httpx.Response(401, headers={"WWW-Authenticate": "Bearer"})
        return self.routes[path](body, token)

    def client(self, **kw: object) -> ProjectXClient:
        return ProjectXClient("http://venue", "user", "key", ManualClock(T0),
                              transport=httpx.MockTransport(self.handler), **kw)  # type: ignore[arg-type]

    def count(self, path: str) -> int:
        return sum(1 for c in self.calls if c[0] == path)


def ok(**payload: object) -> httpx.Response:
    return httpx.Response(200, json={**payload, "success": True, "errorCode": 0,
                                     "errorMessage": None})


async def test_tolerant_models_accept_missing_and_null_optional_fields() -> None:
    v = Venue()
    v.routes["/api/Account/search"] = lambda b, t: ok(accounts=[
        {"id": 1, "name": "PRAC", "balance": 50000, "canTrade": True, "isVisible": True},
        {"id": 2, "name": None, "balance": None, "extra": "ignored"}, {"name": "no id"}])
    async with v.client() as cl:
        accounts = await cl.search_accounts()
        assert [a.id for a in accounts] == [1, 2]
        assert accounts[0].simulated is None and accounts[1].name == ""
        assert cl.counters["rejected_items"] == 1


async def test_success_false_raises_api_error_with_the_payload() -> None:
    v = Venue()
    v.routes["/api/Order/place"] = lambda b, t: httpx.Response(200, json={
        "orderId": 9057, "success": False, "errorCode": 2, "errorMessage": "Brackets..."})
    async with v.client() as cl:
        with pytest.raises(ApiError) as info:
            await cl.place_order(1, "CON.F.US.EP.Z26", 2, 0, 1)
        assert info.value.code == 2 and info.value.payload["orderId"] == 9057


async def test_an_answer_without_the_envelope_is_a_bad_response() -> None:
    v = Venue()
    v.routes["/api/Contract/available"] = lambda b, t: httpx.Response(200, json={"contracts": []})
    async with v.client() as cl:
        with pytest.raises(BadResponse):
            await cl.available_contracts()


async def test_a_401_on_a_read_refreshes_once_and_retries_once() -> None:
    v = Venue()
    v.routes["/api/Contract/available"] = lambda b, t: ok(contracts=[])
    async with v.client() as cl:
        await cl.available_contracts()
        v.valid.clear()  # the session is gone: validate fails too, so we log in again
        await cl.available_contracts()
        assert v.logins == 2 and v.count("/api/Contract/available") == 3
        v.routes["/api/Contract/available"] = lambda b, t: httpx.Response(401)
        with pytest.raises(AuthError):
            await cl.available_contracts()
        assert v.count("/api/Contract/available") == 5  # one retry, not a loop


async def test_reads_back_off_on_429_and_5xx_then_succeed() -> None:
    v = Venue()
    answers = [httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(503),
               ok(contracts=[])]
    v.routes["/api/Contract/available"] = lambda b, t: answers.pop(0)
    async with v.client(read_retries=2) as cl:
        assert await cl.available_contracts() == []
        assert cl.counters["http_429"] == 1 and cl.counters["http_5xx"] == 1
        v.routes["/api/Contract/available"] = lambda b, t: httpx.Response(500)
        with pytest.raises(VenueUnavailable):
            await cl.available_contracts()


@pytest.mark.parametrize("answer", [
    lambda b, t: httpx.Response(500),
    lambda b, t: httpx.Response(429, headers={"Retry-After": "0"}),
    lambda b, t: httpx.Response(401), lambda b, t: httpx.Response(200, text="oops"),
])
async def test_mutating_calls_are_never_retried_and_report_an_unknown_outcome(answer) -> None:  # type: ignore[no-untyped-def]
    v = Venue()
    for path in ("/api/Order/place", "/api/Order/cancel", "/api/Order/modify",
                 "/api/Position/closeContract", "/api/Position/partialCloseContract"):
        v.routes[path] = answer
    async with v.client() as cl:
        await cl.login()
        for call in (lambda: cl.place_order(1, "C", 2, 0, 1), lambda: cl.cancel_order(1, 5),
                     lambda: cl.modify_order(1, 5, size=2), lambda: cl.close_position(1, "C"),
                     lambda: cl.partial_close_position(1, "C", 1)):
            with pytest.raises(OutcomeUnknown):
                await call()
    for path in ("/api/Order/place", "/api/Order/cancel", "/api/Order/modify",
                 "/api/Position/closeContract", "/api/Position/partialCloseContract"):
        assert v.count(path) == 1


async def test_a_timeout_on_a_mutating_call_is_an_unknown_outcome() -> None:
    v = Venue()

    def boom(b: dict, t: str | None) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    v.routes["/api/Order/place"] = boom
    async with v.client() as cl:
        with pytest.raises(OutcomeUnknown):
            await cl.place_order(1, "C", 2, 0, 1)
        assert v.count("/api/Order/place") == 1


async def test_bars_page_backwards_at_the_cap_without_holes_or_duplicates() -> None:
    v = Venue()
    all_t = [T0 + i * MINUTE_MS for i in range(25)]

    def bars(body: dict, t: str | None) -> httpx.Response:
        start, end = iso_to_ms(body["startTime"]), iso_to_ms(body["endTime"])
        inside = [x for x in all_t if start <= x < end][::-1][: body["limit"]]
        return ok(bars=[{"t": ms_to_iso(x), "o": 1, "h": 2, "l": 0.5, "c": 1, "v": 3}
                        for x in inside])

    v.routes["/api/History/retrieveBars"] = bars
    async with v.client() as cl:
        got = await cl.bars_between("C", T0, T0 + 30 * MINUTE_MS, page_limit=10)
    assert [b.t for b in got] == all_t
    assert v.count("/api/History/retrieveBars") == 3
    assert all(c[1]["unit"] == 2 and c[1]["unitNumber"] == 1 for c in v.calls
               if c[0] == "/api/History/retrieveBars")


async def test_the_bars_budget_is_separate_from_the_rest() -> None:
    v = Venue()
    v.routes["/api/History/retrieveBars"] = lambda b, t: ok(bars=[])
    async with v.client(bars_budget=(3, 30.0)) as cl:
        for _ in range(3):
            await cl.retrieve_bars("C", T0, T0 + MINUTE_MS)
        assert cl.budgets["bars"].delay_ms(cl.clock.now_ms()) > 0
        assert cl.budgets["rest"].delay_ms(cl.clock.now_ms()) == 0


async def test_an_unreadable_position_or_order_fails_the_read_instead_of_looking_flat() -> None:
    """Defect 11: a position the client cannot parse must not vanish (a reconcile would believe
    the account flat); the read raises, naming the entity, and the rejection is counted."""
    from topstepx.errors import UnreadableEntities
    v = Venue()
    v.routes["/api/Position/searchOpen"] = lambda b, t: ok(positions=[
        {"id": 1, "accountId": 7, "contractId": "CON.F.US.EP.Z26", "type": 1, "size": 2,
         "averagePrice": 6000.25},
        {"id": "not-a-number", "accountId": 7, "contractId": "CON.F.US.ENQ.Z26", "size": 1}])
    v.routes["/api/Order/searchOpen"] = lambda b, t: ok(orders=[{"accountId": 7, "size": 1}])
    v.routes["/api/Trade/search"] = lambda b, t: ok(trades=None)
    async with v.client() as cl:
        with pytest.raises(UnreadableEntities) as info:
            await cl.search_open_positions(7)
        assert info.value.entity == "positions" and len(info.value.problems) == 1
        assert [p.id for p in info.value.parsed] == [1]
        assert "/api/Position/searchOpen" in str(info.value)
        with pytest.raises(UnreadableEntities) as oinfo:
            await cl.search_open_orders(7)
        assert oinfo.value.entity == "orders"
        with pytest.raises(BadResponse):                  # no list at all is not "no trades"
            await cl.search_trades(7, T0 - 3_600_000)
        assert cl.counters["rejected_items"] == 2
        assert cl.stats()["venue_rejected_positions"] == 1
        assert cl.stats()["venue_rejected_orders"] == 1


async def test_an_unreadable_bar_is_left_out_and_counted() -> None:
    v = Venue()
    v.routes["/api/History/retrieveBars"] = lambda b, t: ok(bars=[
        {"t": "2026-11-24T14:00:00Z", "o": 1, "h": 2, "l": 1, "c": 2, "v": 3},
        {"t": "garbage", "o": 1, "h": 2, "l": 1, "c": 2, "v": 3}])
    async with v.client() as cl:
        bars = await cl.retrieve_bars("CON.F.US.EP.Z26", T0 - 3_600_000, T0)
        assert len(bars) == 1
        assert cl.counters["rejected_items"] == 1 and cl.counters["rejected_bars"] == 1


def test_an_https_venue_is_verified_as_httpx_does_and_a_plain_http_one_loads_no_cas() -> None:
    """TopstepX (https) keeps httpx's verifying context: certificate and host name checked
    against certifi's CAs. The sim (http on loopback) has no TLS, so no CA bundle is loaded."""
    import ssl
    clock = ManualClock(T0)
    default = httpx.create_ssl_context()
    for url in ("https://api.topstepx.com", "HTTPS://api.topstepx.com/"):
        ctx = ProjectXClient(url, "u", "k", clock).http._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname, url
        assert ctx.cert_store_stats()["x509_ca"] == default.cert_store_stats()["x509_ca"] > 0
    for url in ("http://127.0.0.1:7110", "HTTP://localhost:1"):
        ctx = ProjectXClient(url, "u", "k", clock).http._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert ctx.cert_store_stats()["x509_ca"] == 0, url


def test_the_client_does_not_import_the_httpx_command_line() -> None:
    """httpx's command line (click, rich, pygments) costs a process ~75 ms at start."""
    import subprocess
    import sys
    probe = ("import sys, topstepx.client, httpx; "
             "print(sorted(m for m in ('click', 'rich', 'pygments') if m in sys.modules)); "
             "print(httpx.AsyncClient is not None)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[:2] == ["[]", "True"]
