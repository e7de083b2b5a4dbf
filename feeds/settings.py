"""Options of the feed processes (FEED_* variables); the venue client's own are in topstepx/settings.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from chillly.calendar import is_market_open
from chillly.timeframes import TimeframeSettings, tf_list
from topstepx.settings import ClientSettings

def market_hours(settings: "FeedSettings") -> Callable[[int], bool]:
    """is_market_open for the configured hours."""
    if settings.feed_market_hours == "always":
        return lambda ms: True
    return is_market_open


class FeedSettings(ClientSettings, TimeframeSettings):
    """Client and feed options. Times are market seconds (the process clock) unless noted."""


    # feed-bars
    feed_poll_interval: float = Field(default=30.0, gt=0)
    feed_final_delay: float = Field(default=2.0, ge=0)         # after a minute ends, before polling it
    feed_catchup_max_days: float = Field(default=7.0, gt=0)
    feed_initial_lookback_min: int = Field(default=0, ge=0)
    feed_clock_timeframes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["1m", "5m", "15m", "30m", "1h", "4h", "1d"])
    feed_backfill_max_days: float = Field(default=400.0, gt=0)
    # Market seconds of recent finals re-read on every poll; a final the venue has revised since
    # is re-published as history (hist.1m.), so a lagging venue's correction lands (0 = off).
    feed_revise_window: float = Field(default=300.0, ge=0, le=86_400)

    # FEED_MARKET_HOURS (clock ticks, the stale-feed judgment, bucket completion) and the
    # session anchor are TimeframeSettings, shared with the aggregator.

    # feed-market
    feed_live_bars: bool = False
    feed_stale_after: float = Field(default=120.0, gt=0)       # market seconds without data
    feed_stale_min_real: float = Field(default=3.0, ge=0)      # ... and at least this real time


    # subscriptions (real seconds)
    feed_set_interval: float = Field(default=5.0, gt=0)
    feed_contract_info_interval: float = Field(default=10.0, gt=0)
    # contract roll of subscriptions by symbol (real seconds; feeds/rolls.py)
    feed_roll_check_interval: float = Field(default=60.0, gt=0)

    @field_validator("feed_clock_timeframes", mode="before")
    @classmethod
    def _split_tfs(cls, value: Any) -> Any:
        return tf_list(value)
