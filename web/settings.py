"""The page's settings: where it listens, who may read it, how much it buffers per browser.

`WEB_HOST` other than loopback makes the page read-only and requires `WEB_TOKEN` (Topstep
forbids order flow from a remote server; a dashboard there is allowed): that rule is checked at
start, so a misconfigured page never comes up open to the network.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from chillly.status import StatusSettings


def is_loopback(host: str) -> bool:
    """True for a loopback address or the name localhost (127.0.0.0/8, ::1, ::ffff:127.x)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


class WebSettings(StatusSettings):
    """`chillly web`: WEB_PORT, WEB_HOST, WEB_TOKEN (ARCHITECTURE.md §6) and the page's limits."""

    web_port: int = Field(default=7130, ge=1, le=65535)
    web_host: str = "127.0.0.1"
    web_token: SecretStr | None = None
    # Messages waiting per browser before the oldest are dropped (the browser then resyncs):
    # quotes and panels replace their own pending copy, so this bounds only a stalled browser.
    web_client_queue: int = Field(default=500, ge=10, le=100_000)
    # Quotes and forming bars are sent to a browser at most this often (seconds); fills,
    # orders and panels go at once.
    web_quote_interval: float = Field(default=0.1, ge=0.0, le=5.0)
    # How often `chillly strategies --json` is asked while a page is open (seconds).
    web_strategies_interval: float = Field(default=10.0, gt=0, le=3600)
    # Gateway answers (risk, positions, orders, account) are refreshed on every trading event
    # and at least this often (seconds; the equity and the deadline countdown move with time).
    web_refresh_interval: float = Field(default=1.0, gt=0, le=60)
    # Where `chillly backtest --report DIR` reports are looked for; empty = RUN_DIR/reports.
    web_reports_dir: Path = Path("")

    @property
    def reports_dir(self) -> Path:
        return self.web_reports_dir if self.web_reports_dir != Path("") else \
            self.run_dir / "reports"

    @model_validator(mode="after")
    def _token_off_loopback(self) -> "WebSettings":
        token = self.web_token.get_secret_value() if self.web_token else ""
        if not token:
            self.web_token = None
        if not is_loopback(self.web_host) and not token:
            raise ValueError("WEB_TOKEN: required when WEB_HOST is not loopback (the page is "
                             "then read-only and only a holder of the token may read it)")
        if token and len(token) < 16:
            raise ValueError("WEB_TOKEN: expected at least 16 characters "
                             f"(e.g. {secrets.token_urlsafe(24)})")
        return self

    @property
    def read_only(self) -> bool:
        """No actions at all: the page listens beyond loopback."""
        return not is_loopback(self.web_host)
