"""Who may read the page and who may act from it (docs/web.md, "Access").

Reading: on loopback anyone on this machine; off loopback (WEB_HOST not loopback) only a holder
of WEB_TOKEN (`?token=` once, then a same-site cookie, or `Authorization: Bearer`).

Acting (halt, resume, flatten, cancel) needs every one of these, because Topstep forbids order
flow from another machine and a page in the trader's own browser must not be usable by
another site:
- the page listens on loopback only (WEB_HOST loopback; otherwise it is read-only);
- the TCP peer is a loopback address (taken from the socket, never from a header) and the
  request came through no proxy (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`: a reverse proxy
  on this machine would make a remote browser look local);
- the `Host` header names a loopback host (a DNS-rebinding page names its own host) and an
  `Origin`, when sent, is this page's own;
- the anti-forgery token of this process (in the page's HTML, which another site cannot read),
  sent back in the `X-Chillly-CSRF` header (which another site cannot set without a CORS
  preflight that this server never grants).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from web.settings import is_loopback

CSRF_HEADER = "X-Chillly-CSRF"
TOKEN_COOKIE = "chillly_web"
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def same(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def host_of(host_header: str | None) -> str:
    """The host part of a Host header ("127.0.0.1:7130" -> "127.0.0.1", "[::1]:7130" -> "::1")."""
    if not host_header:
        return ""
    return urlsplit(f"//{host_header}").hostname or ""


def may_read(headers: Mapping[str, str], cookies: Mapping[str, str], query: Mapping[str, str],
             token: str | None) -> bool:
    if token is None:
        return True
    auth = headers.get("Authorization", "")
    bearer = auth[7:] if auth.startswith("Bearer ") else None
    return any(same(x, token) for x in (cookies.get(TOKEN_COOKIE), query.get("token"), bearer))


def origin_ok(headers: Mapping[str, str]) -> bool:
    """No Origin (a same-origin GET, a tool), or the page's own (scheme://Host)."""
    origin = headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == headers.get("Host", "")


def action_refusal(*, read_only: bool, peer: str | None, headers: Mapping[str, str],
                   csrf: str) -> str | None:
    """Why an action request is refused, or None when it may go to the gateway."""
    if read_only:
        return "this page is read-only: WEB_HOST is not loopback"
    if peer is None or not is_loopback(peer):
        return f"actions answer only to this machine (loopback), not to {peer}"
    proxied = [h for h in PROXY_HEADERS if h in headers]
    if proxied:
        return f"actions are not taken through a proxy ({', '.join(proxied)})"
    if not is_loopback(host_of(headers.get("Host"))):
        return f"Host {headers.get('Host')!r} is not this machine's loopback"
    if not origin_ok(headers):
        return f"Origin {headers.get('Origin')!r} is not this page"
    if not same(headers.get(CSRF_HEADER), csrf):
        return "missing or wrong anti-forgery token (reload the page)"
    return None
