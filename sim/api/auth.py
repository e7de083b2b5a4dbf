"""Session tokens: JWT-shaped (HS256 over stdlib hmac), with `exp` read in market time.

Clients such as project-x-py decode the payload's `exp` to schedule a refresh, so the token is a
real JWT (header.payload.signature, base64url). Validation is stateless (a restarted sim still
accepts the tokens it minted) except for what faults and logout need: revoked token ids, and a
"nothing issued before" cut-off that the admin fault "expire_tokens_now" moves to the present.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass

from chillly.clock import Clock


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    sub: str
    jti: str
    iat_ms: int
    exp_ms: int


class TokenError(Exception):
    """Why a token is refused: 'missing', 'invalid', 'expired' or 'revoked'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tokens:
    """Mints and checks session tokens against the sim clock."""

    def __init__(self, clock: Clock, secret: str, lifetime_s: float) -> None:
        self.clock = clock
        self._key = secret.encode()
        self.lifetime_s = lifetime_s
        self.revoked: set[str] = set()
        self.not_before_ms = 0
        self.issued = 0

    def issue(self, username: str, lifetime_s: float | None = None) -> str:
        now = self.clock.now_ms()
        life = self.lifetime_s if lifetime_s is None else lifetime_s
        exp_ms = now + int(life * 1000)
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {"sub": username, "name": username, "jti": uuid.uuid4().hex,
                   "iat": now // 1000, "iat_ms": now, "exp": exp_ms // 1000, "exp_ms": exp_ms,
                   "iss": "chillly-sim", "aud": "chillly-sim"}
        signing = _b64(json.dumps(header, separators=(",", ":")).encode()) + "." + _b64(
            json.dumps(payload, separators=(",", ":")).encode())
        sig = hmac.new(self._key, signing.encode(), hashlib.sha256).digest()
        self.issued += 1
        return signing + "." + _b64(sig)

    def decode(self, token: str | None) -> Claims:
        """Signature and shape only (no expiry check)."""
        if not token:
            raise TokenError("missing")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("invalid")
        try:
            expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(),
                                hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                raise TokenError("invalid")
            payload = json.loads(_unb64(parts[1]))
            return Claims(str(payload["sub"]), str(payload["jti"]), int(payload["iat_ms"]),
                          int(payload["exp_ms"]))
        except TokenError:
            raise
        except Exception:
            raise TokenError("invalid") from None

    def check(self, token: str | None) -> Claims:
        """A usable token's claims, or TokenError."""
        claims = self.decode(token)
        if claims.jti in self.revoked:
            raise TokenError("revoked")
        if claims.iat_ms < self.not_before_ms or self.clock.now_ms() >= claims.exp_ms:
            raise TokenError("expired")
        return claims

    def is_live(self, claims: Claims) -> bool:
        return (claims.jti not in self.revoked and claims.iat_ms >= self.not_before_ms
                and self.clock.now_ms() < claims.exp_ms)

    def revoke(self, claims: Claims) -> None:
        self.revoked.add(claims.jti)

    def expire_all_now(self) -> None:
        """Every token issued so far is expired from now on."""
        self.not_before_ms = self.clock.now_ms() + 1


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
