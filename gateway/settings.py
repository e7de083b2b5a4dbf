"""Options of `chillly gateway` (GATEWAY_* variables; the venue client's TOPSTEP_*/FEED_* too)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.risk_settings import RiskSettings
from topstepx.settings import ClientSettings, parse_budget


class GatewaySettings(ClientSettings, RiskSettings):
    # The risk gate's TOPSTEP_PROGRAM / TOPSTEP_ACCOUNT_SIZE / RISK_* come from RiskSettings.
    # The order journal (its own SQLite file; one gateway per file). Empty = the venue's run
    # directory: RUN_DIR/<venue>/orders.db (run/sim/orders.db on the sim).
    gateway_database_path: Path = Path("")
    # The gateway's share of the venue's 200 requests / 60 s for everything but bars
    # (projectx-api.md §7): the feeds use the rest. Taken before every call, so never a 429.
    gateway_rest_budget: str = "80/60"
    # The gateway's own History/retrieveBars budget: marks of held contracts whose quotes
    # stopped (RISK_MARK_*) and a trailing stop's last price. feed-bars' FEED_BARS_BUDGET
    # (30/30) plus this stays under the venue's 50 / 30 s.
    gateway_bars_budget: str = "10/30"
    # After a time-out, a 5xx or a crash, how long (real seconds) to keep looking for the order
    # by its customTag before recording it as not placed.
    gateway_unknown_wait: float = Field(default=10.0, gt=0)
    # Every N market seconds: compare orders, positions, trades and balance with the venue.
    gateway_reconcile_interval: float = Field(default=15.0, gt=0)
    # How often (market seconds) positions and the account are published even without change.
    gateway_publish_interval: float = Field(default=1.0, gt=0)
    # The venue's minimum bracket distance in ticks (projectx-api.md §3, "at least 4 ticks").
    gateway_min_bracket_ticks: int = Field(default=4, ge=1)
    # Brackets: "auto" sends them to the venue and switches to the gateway's own OCO when the
    # venue refuses them (Position Brackets mode); "managed" always uses the gateway's own.
    gateway_bracket_mode: Literal["auto", "managed"] = "auto"
    # How long (real seconds) a symbol's contract (ES -> CON.F.US.EP.Z26) is taken from cache:
    # a venue search per order cost ~2 ms and a REST call of the budget; 0 searches each time.
    gateway_symbol_cache_s: float = Field(default=30.0, ge=0)
    # Longest client id the gateway accepts (children get "-SL"/"-TP"; the venue keeps ~60).
    gateway_max_client_id: int = Field(default=50, ge=8, le=60)

    @model_validator(mode="after")
    def _journal_default(self) -> "GatewaySettings":
        if self.gateway_database_path == Path(""):
            self.gateway_database_path = self.venue_run_dir / "orders.db"
        return self

    @field_validator("gateway_rest_budget", "gateway_bars_budget")
    @classmethod
    def _check_gw_budget(cls, value: str) -> str:
        parse_budget(value)
        return value
