"""Contract tests of the sim's REST API over real HTTP with plain httpx (projectx-api.md §2-§5).

One sim process serves the module (always open, real-time clock); tests that switch faults put
them back. Nothing here uses the project's own TopstepX client.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.sim_client import (clear_faults, counters, login, reset_counters, set_faults, sim_env)
from tests.support import eventually, running_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("sim-rest")
    env = sim_env(tmp, SIM_RATE_OTHER="100000", SIM_RATE_BARS="100000")
    with running_sim(tmp, env) as base:
        yield base


@pytest.fixture
def api(sim: str) -> Iterator[httpx.Client]:
    """A plain httpx client with a fresh bearer token; faults cleared afterwards."""
    token = login(sim)
    with httpx.Client(base_url=sim, headers={"Authorization": f"Bearer {token}"},
                      timeout=10.0) as client:
        yield client
    clear_faults(sim)


def envelope_ok(body: dict[str, object]) -> None:
    assert body["success"] is True and body["errorCode"] == 0 and body["errorMessage"] is None


def test_ping_answers_pong_without_a_token(sim: str) -> None:
    r = httpx.get(f"{sim}/api/Status/ping")
    assert r.status_code == 200 and r.text == "pong"
    assert httpx.get(f"{sim}/api/Status/ping", headers={"Accept": "application/json"}).json() == "pong"


def test_login_key_returns_a_jwt_with_exp(sim: str) -> None:
    r = httpx.post(f"{sim}/api/Auth/loginKey", json={"userName": "Trader", "apiKey": "k"})
    assert r.status_code == 200
    body = r.json()
    envelope_ok(body)
    assert set(body) == {"token", "success", "errorCode", "errorMessage"}
    part = body["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    exp = datetime.fromtimestamp(claims["exp"], timezone.utc)
    assert timedelta(hours=23) < exp - datetime.now(timezone.utc) <= timedelta(hours=24)


@pytest.mark.parametrize("body", [{"userName": "u"}, {"apiKey": "k"}, {}, {"userName": "",
                                                                           "apiKey": "k"}])
def test_login_without_its_fields_is_http_400(sim: str, body: dict[str, str]) -> None:
    r = httpx.post(f"{sim}/api/Auth/loginKey", json=body)
    assert r.status_code == 400
    problem = r.json()
    assert problem["status"] == 400 and "title" in problem and "type" in problem


def test_login_app_needs_all_its_fields(sim: str) -> None:
    full = {"userName": "u", "password": "p", "deviceId": "d", "appId": "a", "verifyKey": "v"}
    r = httpx.post(f"{sim}/api/Auth/loginApp", json=full)
    envelope_ok(r.json())
    assert r.json()["token"]
    r = httpx.post(f"{sim}/api/Auth/loginApp", json={**full, "verifyKey": None})
    assert r.status_code == 400 and "verifyKey" in r.json()["errors"]


def test_body_that_is_not_json_is_http_400(sim: str) -> None:
    r = httpx.post(f"{sim}/api/Auth/loginKey", content=b"{nope",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["status"] == 400


def test_validate_returns_a_new_token_and_logout_ends_the_session(sim: str) -> None:
    token = login(sim)
    auth = {"Authorization": f"Bearer {token}"}
    r = httpx.post(f"{sim}/api/Auth/validate", headers=auth)
    body = r.json()
    envelope_ok(body)
    new = body["newToken"]
    assert new and new != token
    r = httpx.post(f"{sim}/api/Auth/logout", headers=auth)
    envelope_ok(r.json())
    assert httpx.post(f"{sim}/api/Contract/available", headers=auth,
                      json={"live": False}).status_code == 401
    r = httpx.post(f"{sim}/api/Contract/available", json={"live": False},
                   headers={"Authorization": f"Bearer {new}"})
    assert r.status_code == 200  # re-login/validate tokens stay independent


@pytest.mark.parametrize("path", ["/api/Contract/available", "/api/History/retrieveBars",
                                  "/api/Auth/validate", "/api/Contract/search"])
@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic abc"])
def test_missing_or_bad_token_is_401_with_empty_body(sim: str, path: str,
                                                     header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = httpx.post(f"{sim}{path}", json={"live": False}, headers=headers)
    assert r.status_code == 401 and r.content == b""
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_only_post_is_allowed_and_paths_are_case_insensitive(api: httpx.Client) -> None:
    assert api.get("/api/Contract/available").status_code == 405
    assert api.post("/api/Contract/nope", json={}).status_code == 404
    r = api.post("/api/contract/AVAILABLE", json={"live": False})
    assert r.status_code == 200 and r.json()["contracts"]


def test_contracts_available_search_and_by_id(api: httpx.Client) -> None:
    body = api.post("/api/Contract/available", json={"live": False}).json()
    envelope_ok(body)
    contracts = body["contracts"]
    assert {"CON.F.US.EP", "CON.F.US.ENQ", "CON.F.US.MES", "CON.F.US.MNQ", "CON.F.US.RTY",
            "CON.F.US.YM", "CON.F.US.CLE", "CON.F.US.GCE", "CON.F.US.EU6"} == {
        c["id"].rsplit(".", 1)[0] for c in contracts if c["activeContract"]}
    for c in contracts:
        assert set(c) == {"id", "name", "description", "tickSize", "tickValue",
                          "activeContract", "symbolId"}
    found = api.post("/api/Contract/search", json={"live": False, "searchText": "NQ"}).json()
    envelope_ok(found)
    assert {c["symbolId"] for c in found["contracts"]} == {"F.US.ENQ", "F.US.MNQ"}
    assert len(api.post("/api/Contract/search", json={"live": True}).json()["contracts"]) <= 20
    es = next(c for c in contracts if c["symbolId"] == "F.US.EP" and c["activeContract"])
    one = api.post("/api/Contract/searchById", json={"contractId": es["id"]}).json()
    envelope_ok(one)
    assert one["contract"] == es and es["tickSize"] == 0.25 and es["tickValue"] == 12.5
    missing = api.post("/api/Contract/searchById", json={"contractId": "CON.F.US.ZZ.Z26"}).json()
    assert missing["success"] is False and missing["errorCode"] == 1
    assert api.post("/api/Contract/searchById", json={}).status_code == 400


def front(api: httpx.Client, symbol_id: str = "F.US.EP") -> str:
    contracts = api.post("/api/Contract/available", json={"live": False}).json()["contracts"]
    return next(c["id"] for c in contracts if c["symbolId"] == symbol_id and c["activeContract"])


def test_retrieve_bars_documented_request_shape(api: httpx.Client) -> None:
    now = datetime.now(timezone.utc)
    body = {"contractId": front(api, "F.US.RTY"), "live": False,
            "startTime": (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "unit": 3, "unitNumber": 1,
            "limit": 7, "includePartialBar": False}
    r = api.post("/api/History/retrieveBars", json=body)
    assert r.status_code == 200
    out = r.json()
    envelope_ok(out)
    bars = out["bars"]
    assert len(bars) == 7
    stamps = [datetime.fromisoformat(b["t"]) for b in bars]
    assert stamps == sorted(stamps, reverse=True)
    assert all(s.minute == 0 and s.second == 0 and s.utcoffset() == timedelta(0) for s in stamps)
    assert bars[0]["t"].endswith("+00:00")
    for b in bars:
        assert set(b) == {"t", "o", "h", "l", "c", "v"}
        assert b["l"] <= min(b["o"], b["c"]) <= max(b["o"], b["c"]) <= b["h"]
        assert isinstance(b["v"], int) and b["v"] > 0
        assert abs(b["c"] * 10 - round(b["c"] * 10)) < 1e-6  # RTY tick 0.1
    assert now - stamps[0] < timedelta(hours=2)


def test_retrieve_bars_partial_bar_and_limit(api: httpx.Client) -> None:
    def fetch() -> tuple[datetime, list[dict], list[dict]]:  # type: ignore[type-arg]
        now = datetime.now(timezone.utc)
        body = {"contractId": front(api), "live": False,
                "startTime": (now - timedelta(hours=1)).isoformat(),
                "endTime": (now + timedelta(minutes=5)).isoformat(), "unit": 2, "unitNumber": 1,
                "limit": 5, "includePartialBar": True}
        with_partial = api.post("/api/History/retrieveBars", json=body).json()["bars"]
        body["includePartialBar"] = False
        closed = api.post("/api/History/retrieveBars", json=body).json()["bars"]
        return now.replace(second=0, microsecond=0), with_partial, closed

    def consistent() -> tuple[datetime, list[dict], list[dict]] | None:  # type: ignore[type-arg]
        current, with_partial, closed = fetch()
        partial_t = datetime.fromisoformat(with_partial[0]["t"])
        # Right after a minute turns the new minute may have no print yet (so no bar), or the
        # two requests may straddle the turn: ask again then.
        if partial_t < current or datetime.fromisoformat(closed[0]["t"]) >= partial_t:
            return None
        return current, with_partial, closed

    current, with_partial, closed = eventually(consistent, 10, interval=0.2,
                                               what="a partial bar for the current minute")
    assert len(with_partial) == len(closed) == 5
    assert [b["t"] for b in with_partial[1:]] == [b["t"] for b in closed[:4]]


@pytest.mark.parametrize("change,code", [({"contractId": "CON.F.US.NOPE.Z26"}, 1),
                                         ({"unit": 0}, 2), ({"unit": 8}, 2),
                                         ({"unitNumber": 0}, 3), ({"limit": 0}, 4),
                                         ({"limit": 20_001}, 4)])
def test_retrieve_bars_error_codes(api: httpx.Client, change: dict[str, object],
                                   code: int) -> None:
    body = {"contractId": front(api), "live": False, "startTime": "2026-01-01T00:00:00Z",
            "endTime": "2030-01-01T00:00:00Z", "unit": 2, "unitNumber": 1, "limit": 10,
            "includePartialBar": False, **change}
    r = api.post("/api/History/retrieveBars", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["success"] is False and out["errorCode"] == code and out["errorMessage"]


def test_retrieve_bars_bad_input_is_http_400(api: httpx.Client) -> None:
    good = {"contractId": front(api), "live": False, "startTime": "2026-01-01T00:00:00Z",
            "endTime": "2030-01-01T00:00:00Z", "unit": 2, "unitNumber": 1, "limit": 10}
    for bad in ({"startTime": "yesterday"}, {"contractId": None}, {"limit": "ten"}):
        r = api.post("/api/History/retrieveBars", json={**good, **bad})
        assert r.status_code == 400, bad


def test_token_expiry_gives_401(sim: str, api: httpx.Client) -> None:
    set_faults(sim, token_lifetime_s=0.5)
    token = login(sim)
    auth = {"Authorization": f"Bearer {token}"}
    eventually(lambda: httpx.post(f"{sim}/api/Contract/available", json={"live": False},
                                  headers=auth).status_code == 401, timeout=10,
               what="the short-lived token to expire")
    r = httpx.post(f"{sim}/api/Auth/validate", headers=auth)
    assert r.status_code == 401  # SIM_VALIDATE_EXPIRED=401 (default): log in again


def test_expire_tokens_now_invalidates_every_session(sim: str) -> None:
    token = login(sim)
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{sim}/api/Auth/validate", headers=auth).status_code == 200
    assert set_faults(sim, expire_tokens_now=True)["done"] == {"expire_tokens_now": 1}
    assert httpx.post(f"{sim}/api/Auth/validate", headers=auth).status_code == 401
    assert httpx.post(f"{sim}/api/Auth/validate",
                      headers={"Authorization": f"Bearer {login(sim)}"}).status_code == 200


def test_injected_500s_and_delay(sim: str, api: httpx.Client) -> None:
    set_faults(sim, rest_fail_rate=1.0)
    assert api.post("/api/Contract/available", json={"live": False}).status_code == 500
    set_faults(sim, rest_fail_rate=0.5)
    codes = {api.post("/api/Contract/available", json={"live": False}).status_code
             for _ in range(40)}
    assert codes == {200, 500}
    set_faults(sim, rest_fail_rate=0, rest_delay_ms=1)
    assert api.post("/api/Contract/available", json={"live": False}).status_code == 200


def test_forced_429_carries_retry_after(sim: str, api: httpx.Client) -> None:
    set_faults(sim, force_429=True, force_429_retry_after_s=3)
    r = api.post("/api/Contract/available", json={"live": False})
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    set_faults(sim, force_429=False)
    assert api.post("/api/Contract/available", json={"live": False}).status_code == 200


def test_admin_faults_validate_their_input(sim: str) -> None:
    r = httpx.post(f"{sim}/admin/faults", json={"rest_fail_rate": 3})
    assert r.status_code == 400 and "rest_fail_rate" in r.json()["error"]
    r = httpx.post(f"{sim}/admin/faults", json={"bogus": 1})
    assert r.status_code == 400 and "bogus" in r.json()["error"]
    assert httpx.get(f"{sim}/admin/faults").json()["faults"]["rest_fail_rate"] == 0


def test_counters_count_requests_per_class(sim: str, api: httpx.Client) -> None:
    reset_counters(sim)
    body = {"contractId": front(api), "live": False, "startTime": "2026-01-01T00:00:00Z",
            "endTime": "2030-01-01T00:00:00Z", "unit": 2, "unitNumber": 1, "limit": 2}
    for _ in range(3):
        api.post("/api/History/retrieveBars", json=body)
    got = counters(sim)
    assert got["counters"]["requests_bars"] == 3
    assert got["counters"]["requests_other"] == 1  # the Contract/available in front()
    assert got["paths"]["/api/history/retrievebars"] == 3
