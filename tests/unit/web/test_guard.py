"""Who may act from the page: the peer address from the socket, proxies, Host, Origin and the
anti-forgery token, each refused on its own (web/guard.py), and who may read it."""

from __future__ import annotations

import pytest

from web.guard import CSRF_HEADER, TOKEN_COOKIE, action_refusal, may_read
from web.settings import is_loopback

CSRF = "s3cret-token-of-this-process"
GOOD = {"Host": "127.0.0.1:7130", "Origin": "http://127.0.0.1:7130", CSRF_HEADER: CSRF}


def refusal(peer: str | None = "127.0.0.1", read_only: bool = False, **headers: str) -> str | None:
    merged = {**GOOD, **headers}
    return action_refusal(read_only=read_only, peer=peer,
                          headers={k: v for k, v in merged.items() if v != "-"}, csrf=CSRF)


def test_a_loopback_request_with_the_token_is_allowed() -> None:
    assert refusal() is None
    assert refusal(peer="::1", Host="[::1]:7130", Origin="http://[::1]:7130") is None
    assert refusal(peer="::ffff:127.0.0.1") is None
    assert refusal(Origin="-") is None           # a same-origin request may send no Origin
    assert refusal(Host="localhost:7130", Origin="http://localhost:7130") is None


@pytest.mark.parametrize("peer", ["192.0.2.10", "10.1.2.3", "::ffff:192.0.2.10", "2001:db8::1",
                                  None])
def test_a_peer_off_loopback_is_refused(peer: str | None) -> None:
    why = refusal(peer=peer)
    assert why is not None and "loopback" in why


def test_a_read_only_page_refuses_even_loopback() -> None:
    assert "read-only" in (refusal(read_only=True) or "")


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP",
                                    "X-Forwarded-Host"])
def test_a_request_through_a_proxy_is_refused(header: str) -> None:
    assert "proxy" in (refusal(**{header: "198.51.100.7"}) or "")


def test_another_host_or_origin_is_refused() -> None:
    # DNS rebinding: the browser names the attacker's host while reaching 127.0.0.1
    assert "Host" in (refusal(Host="evil.example:7130", Origin="http://evil.example:7130") or "")
    assert "Origin" in (refusal(Origin="http://evil.example") or "")
    assert "Origin" in (refusal(Origin="null") or "")


def test_the_anti_forgery_token_is_required_and_exact() -> None:
    assert "anti-forgery" in (refusal(**{CSRF_HEADER: "-"}) or "")
    assert "anti-forgery" in (refusal(**{CSRF_HEADER: CSRF[:-1]}) or "")
    assert "anti-forgery" in (refusal(**{CSRF_HEADER: ""}) or "")


def test_reading_needs_the_token_only_when_one_is_set() -> None:
    assert may_read({}, {}, {}, None)
    token = "t" * 24
    assert not may_read({}, {}, {}, token)
    assert not may_read({}, {TOKEN_COOKIE: "x" * 24}, {}, token)
    assert may_read({}, {TOKEN_COOKIE: token}, {}, token)
    assert may_read({}, {}, {"token": token}, token)
    assert may_read({"Authorization": f"Bearer {token}"}, {}, {}, token)
    assert not may_read({"Authorization": f"Basic {token}"}, {}, {}, token)


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                       ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                       ("192.0.2.1", False), ("example.com", False), ("", False),
                                       ("::", False)])
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop
