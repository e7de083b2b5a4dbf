"""The sim's budgets and credentials over real HTTP (plain httpx): 429 with Retry-After per
endpoint class and per user, configured credentials, counters other tests assert on."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.sim_client import counters, login, reset_counters, set_faults, sim_env

from tests.support import eventually, running_sim


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sim with required credentials and tiny budgets (3 bars / 6 others per 30 s)."""
    tmp = tmp_path_factory.mktemp("sim-strict")
    env = sim_env(tmp, SIM_USERNAME="Alice", SIM_API_KEY="s3cret", SIM_RATE_BARS="3",
                  SIM_RATE_BARS_WINDOW_S="30", SIM_RATE_OTHER="6",
                  SIM_RATE_OTHER_WINDOW_S="30", SIM_VALIDATE_EXPIRED="error")
    with running_sim(tmp, env) as base:
        yield base


def test_credentials_are_checked_when_configured(strict: str) -> None:
    r = httpx.post(f"{strict}/api/Auth/loginKey", json={"userName": "alice", "apiKey": "wrong"})
    assert r.status_code == 200
    assert r.json() == {"token": None, "success": False, "errorCode": 3, "errorMessage": None}
    r = httpx.post(f"{strict}/api/Auth/loginKey", json={"userName": "mallory",
                                                         "apiKey": "s3cret"})
    assert r.json()["errorCode"] == 3
    assert login(strict, "ALICE", "s3cret")  # userName is case-insensitive


def test_budgets_per_class_give_429_with_retry_after(strict: str) -> None:
    reset_counters(strict)  # also empties the rate windows
    token = login(strict, "alice", "s3cret")  # 'other' request 1 of 6 for alice
    auth = {"Authorization": f"Bearer {token}"}
    cid = httpx.post(f"{strict}/api/Contract/available", json={"live": False},
                     headers=auth).json()["contracts"][0]["id"]  # 2 of 6
    bars = {"contractId": cid, "live": False, "startTime": "2026-01-01T00:00:00Z",
            "endTime": "2030-01-01T00:00:00Z", "unit": 2, "unitNumber": 1, "limit": 1}
    codes = [httpx.post(f"{strict}/api/History/retrieveBars", json=bars, headers=auth).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = httpx.post(f"{strict}/api/History/retrieveBars", json=bars, headers=auth)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 30
    # the other class has its own budget: 4 more allowed (3..6), the 7th is refused
    others = [httpx.post(f"{strict}/api/Contract/search", json={"searchText": "ES",
                                                                "live": False},
                         headers=auth).status_code for _ in range(5)]
    assert others == [200, 200, 200, 200, 429]
    got = counters(strict)["counters"]
    assert got["rate_limited_bars"] == 2 and got["rate_limited_other"] == 1
    assert got["rate_limited"] == 3


def test_401_does_not_use_the_budget_and_login_is_limited_too(strict: str) -> None:
    for _ in range(10):
        assert httpx.post(f"{strict}/api/Contract/available",
                          json={"live": False}).status_code == 401
    codes = [httpx.post(f"{strict}/api/Auth/loginKey",
                        json={"userName": "Bob", "apiKey": "x"}).status_code for _ in range(7)]
    assert codes == [200] * 6 + [429]  # keyed by userName: bob's budget, not alice's


def test_validate_with_an_expired_token_can_answer_error_code_3(strict: str) -> None:
    reset_counters(strict)
    set_faults(strict, token_lifetime_s=0.3)
    try:
        auth = {"Authorization": f"Bearer {login(strict, 'alice', 's3cret')}"}
        # poll through the hub's negotiate: it checks the token but uses no REST budget
        eventually(lambda: httpx.post(f"{strict}/hubs/user/negotiate",
                                      headers=auth).status_code == 401, timeout=10,
                   what="the token to expire")
        r = httpx.post(f"{strict}/api/Auth/validate", headers=auth)
        assert r.status_code == 200
        body = r.json()
        assert body["success"] is False and body["errorCode"] == 3 and body["newToken"] is None
    finally:
        set_faults(strict, token_lifetime_s=None)
