"""Options of the venue client (TOPSTEP_* and the client's FEED_* variables).

The names keep their FEED_ prefix because they were public before the client left feeds/; the
gateway shares this class and adds its own budget (GATEWAY_REST_BUDGET).
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from chillly.settings import Settings

_BUDGET_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(\.\d+)?)\s*$")


def parse_budget(text: str) -> tuple[int, float]:
    """"30/30" -> (30 requests, 30.0 seconds)."""
    m = _BUDGET_RE.match(text)
    if not m or int(m.group(1)) <= 0 or float(m.group(2)) <= 0:
        raise ValueError(f"expected COUNT/SECONDS like 30/30, got {text!r}")
    return int(m.group(1)), float(m.group(2))


class ClientSettings(Settings):
    """What `ProjectXClient.from_settings` and the hub agents read."""

    # Contract searches: practice/combine accounts see the sim data set (live=false).
    topstep_live: bool = False

    # Client-side rate budgets per endpoint class, COUNT/SECONDS on the process clock
    # (projectx-api.md §7: bars 30/30 s to be safe, everything else 200/60 s).
    feed_bars_budget: str = "30/30"
    # Each of the three feed processes (feed-bars, feed-market, subscriptions) takes 40/60 and the
    # gateway GATEWAY_REST_BUDGET 80/60: together the venue's 200 per user and minute.
    feed_rest_budget: str = "40/60"
    feed_http_timeout: float = Field(default=10.0, gt=0)       # real seconds
    feed_read_retries: int = Field(default=4, ge=0)
    feed_retry_after_max: float = Field(default=60.0, gt=0)    # cap on a venue's Retry-After

    # Token refresh: validate this long before `exp` (capped at a fifth of the token's life).
    feed_token_refresh_before: float = Field(default=300.0, gt=0)

    # hubs (real seconds)
    feed_hub_backoff_min: float = Field(default=0.2, gt=0)
    feed_hub_backoff_max: float = Field(default=10.0, gt=0)

    @field_validator("feed_bars_budget", "feed_rest_budget")
    @classmethod
    def _check_budget(cls, value: str) -> str:
        parse_budget(value)
        return value
