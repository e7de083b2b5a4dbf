"""Session tokens, rate-limit windows and fault settings: the pure parts of the REST guard."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from chillly.clock import ManualClock
from sim.api.auth import TokenError, Tokens, bearer
from sim.api.faults import FaultError, Faults
from sim.api.ratelimit import Limit, SlidingWindow

T0 = 1_795_000_000_000


def payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_token_is_a_jwt_with_exp_in_market_time() -> None:
    clock = ManualClock(T0)
    token = Tokens(clock, "s", 86_400).issue("trader")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT"}
    body = payload(token)
    assert body["sub"] == "trader" and body["exp"] == (T0 + 86_400_000) // 1000


def test_token_expires_on_the_clock_and_can_be_revoked() -> None:
    clock = ManualClock(T0)
    tokens = Tokens(clock, "s", 60)
    token = tokens.issue("u")
    assert tokens.check(token).sub == "u"
    clock.advance(59_999)
    tokens.check(token)
    clock.advance(1)
    with pytest.raises(TokenError, match="expired"):
        tokens.check(token)
    fresh = tokens.issue("u", lifetime_s=5)
    claims = tokens.check(fresh)
    tokens.revoke(claims)
    with pytest.raises(TokenError, match="revoked"):
        tokens.check(fresh)


def test_expire_all_now_kills_old_tokens_only() -> None:
    clock = ManualClock(T0)
    tokens = Tokens(clock, "s", 3600)
    old = tokens.issue("u")
    tokens.expire_all_now()
    with pytest.raises(TokenError, match="expired"):
        tokens.check(old)
    clock.advance(5)
    assert tokens.check(tokens.issue("u"))


@pytest.mark.parametrize("bad", [None, "", "abc", "a.b.c", "x.y"])
def test_malformed_tokens_are_refused(bad: str | None) -> None:
    with pytest.raises(TokenError):
        Tokens(ManualClock(T0), "s", 60).check(bad)


def test_tampered_or_foreign_tokens_are_refused() -> None:
    clock = ManualClock(T0)
    token = Tokens(clock, "s", 60).issue("u")
    with pytest.raises(TokenError, match="invalid"):
        Tokens(clock, "other-secret", 60).check(token)
    head, body, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**payload(token), "sub": "admin"}).encode())
    with pytest.raises(TokenError, match="invalid"):
        Tokens(clock, "s", 60).check(f"{head}.{forged.decode().rstrip('=')}.{sig}")


def test_bearer_header_parsing() -> None:
    assert bearer("Bearer abc") == "abc" and bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None and bearer("Bearer ") is None and bearer(None) is None


def test_sliding_window_counts_per_key_and_says_when_to_retry() -> None:
    now = [0.0]
    win = SlidingWindow(Limit(3, 30.0), lambda: now[0])
    assert [win.try_acquire("a") for _ in range(3)] == [None, None, None]
    assert win.try_acquire("a") == 30
    assert win.try_acquire("b") is None
    now[0] = 10_500.0
    assert win.try_acquire("a") == 20  # ceil(19.5)
    now[0] = 30_000.0
    assert win.try_acquire("a") is None  # the first three left the window
    assert win.in_window("a") == 1  # all three left together


def test_zero_budget_refuses_everything() -> None:
    assert SlidingWindow(Limit(0, 30.0), lambda: 0.0).try_acquire("a") == 30


def test_faults_update_is_validated_and_all_or_nothing() -> None:
    f = Faults()
    assert f.update({"rest_fail_rate": 0.5, "drop_hubs_now": True, "logout_now": False}) == [
        "drop_hubs_now"]
    assert f.rest_fail_rate == 0.5
    for bad in ({"rest_fail_rate": 2}, {"nope": 1}, {"force_429": "yes"},
                {"drop_mode": "gentle"}, {"token_lifetime_s": 0}, {"rest_delay_ms": -1},
                {"rest_delay_ms": 5, "drop_hubs_now": 1}):
        with pytest.raises(FaultError):
            f.update(bad)
    assert f.rest_delay_ms == 0
    f.update({"token_lifetime_s": 30, "rest_fail_rate": 1.0})
    assert f.token_lifetime_s == 30.0 and f.should_fail()
    f.update({"token_lifetime_s": None, "rest_fail_rate": 0})
    assert f.token_lifetime_s is None and not f.should_fail()


async def test_a_stale_answer_is_held_until_released_or_its_time_is_up() -> None:
    f = Faults()
    assert f.update({"rest_stale_ms": 60_000}) == []
    held = asyncio.ensure_future(f.hold_answer())
    await asyncio.sleep(0)
    assert f.held == 1 and not held.done()
    assert f.update({"release_stale_now": True}) == ["release_stale_now"]
    assert f.release_held() == 1
    await asyncio.wait_for(held, 5)            # released, not timed out
    assert f.held == 0 and f.release_held() == 0
    f.update({"rest_stale_ms": 1})
    await asyncio.wait_for(f.hold_answer(), 5)   # its time is up
    with pytest.raises(FaultError):
        f.update({"rest_stale_ms": -1})
