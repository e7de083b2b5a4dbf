"""Options of `chillly gateway` (GATEWAY_* variables; the venue client's TOPSTEP_*/FEED_* too).

The risk gate's settings (`RiskSettings`): `TOPSTEP_PROGRAM` x `TOPSTEP_ACCOUNT_SIZE` and a
`RISK_*` per number. Every number of topstep-rules.md is a setting with the program's default
(trading/risk/config.py); an unset `RISK_*` keeps the default, a set one overrides it. A bad
value stops the gateway the kernel's way (`load_settings`): one line naming the variable,
exit 2.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from chillly.settings import Settings
from topstepx.settings import ClientSettings, parse_budget
from trading.risk.config import (
    FAMILIES, PROGRAMS, SIZES, RiskConfig, StrategyLimits, parse_families, parse_fees,
    parse_scaling, resolve,
)


def _clock_time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            hh, mm = value.strip().split(":")
            return time(int(hh), int(mm))
        except ValueError:
            raise ValueError("expected HH:MM (America/Chicago)") from None
    return value


class RiskSettings(Settings):
    topstep_program: str = "combine"
    topstep_account_size: str = "50k"

    risk_starting_balance: float | None = None        # S (default 50K/100K/150K; XFA 0)
    risk_mll_allowance: float | None = Field(default=None, gt=0)     # D
    risk_mll_buffer: float | None = Field(default=None, ge=0)        # B (default 10% of D)
    risk_floor: float | None = None                   # a fixed floor (live, configured)
    risk_xfa_payout_taken: bool = False               # XFA after the first payout: F = 0
    risk_max_lots: float | None = Field(default=None, gt=0)
    risk_micro_weight: float | None = Field(default=None, gt=0, le=1)
    risk_scaling_table: str | None = None             # "0:2,1500:3,2000:5"
    risk_entry_cutoff: time = time(15, 0)
    risk_flatten_start: time = time(15, 5)
    risk_flat_by: time = time(15, 10)
    risk_daily_loss_limit: float | None = Field(default=None, ge=0)  # 0 = none
    risk_account_orders_per_minute: int = Field(default=60, gt=0)
    risk_strategy_orders_per_minute: int = Field(default=30, gt=0)
    risk_daily_contracts: int = Field(default=200, gt=0)
    risk_hedging_families: str = FAMILIES
    risk_default_stop_ticks: int = Field(default=40, gt=0)
    risk_slippage_ticks: int = Field(default=1, ge=0)
    risk_fees: str = ""                               # "ES:1.40,MES:0.37" over the defaults
    # Marks of held contracts (trading/marks.py), in market seconds: a quote older than
    # RISK_MARK_MAX_AGE is stale; then the venue's forming 1m bar is polled every
    # RISK_MARK_POLL_INTERVAL (RISK_MARK_FALLBACK=false: never). A held contract with neither
    # younger than RISK_MARK_MAX_AGE is blind: entries refused, alarm `blind`.
    risk_mark_max_age: float = Field(default=15.0, gt=0)
    risk_mark_poll_interval: float = Field(default=3.0, gt=0)
    risk_mark_fallback: bool = True
    # "cme": CME hours, holidays, early closes and the flat window; "always": a sim run with
    # SIM_ALWAYS_OPEN (no hours rule, no flat window; every other rule as configured); "auto":
    # "always" when the venue is the sim and SIM_ALWAYS_OPEN is set, else "cme".
    risk_market_hours: Literal["cme", "always", "auto"] = "auto"
    sim_always_open: bool = False          # the sim's own setting, read to follow its hours

    @property
    def market_hours(self) -> str:
        if self.risk_market_hours != "auto":
            return self.risk_market_hours
        return "always" if self.sim_always_open and not self.uses_live_venue else "cme"

    @field_validator("topstep_program")
    @classmethod
    def _program(cls, value: str) -> str:
        v = value.strip().lower()
        if v not in PROGRAMS:
            raise ValueError(f"expected one of {', '.join(PROGRAMS)}")
        return v

    @field_validator("topstep_account_size")
    @classmethod
    def _size(cls, value: str) -> str:
        v = value.strip().lower().replace(",", "")
        v = {"50000": "50k", "100000": "100k", "150000": "150k"}.get(v, v)
        if v not in SIZES:
            raise ValueError(f"expected one of {', '.join(SIZES)}")
        return v

    @field_validator("risk_entry_cutoff", "risk_flatten_start", "risk_flat_by", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        return _clock_time(value)

    @field_validator("risk_scaling_table")
    @classmethod
    def _scaling(cls, value: str | None) -> str | None:
        if value:
            try:
                parse_scaling(value)
            except ValueError:
                raise ValueError("expected profit:lots pairs, e.g. 0:2,1500:3,2000:5") from None
        return value or None

    @field_validator("risk_fees")
    @classmethod
    def _fees(cls, value: str) -> str:
        try:
            parse_fees(value)
        except ValueError:
            raise ValueError("expected ROOT:fee pairs, e.g. ES:1.40,MES:0.37") from None
        return value

    @field_validator("risk_hedging_families")
    @classmethod
    def _families(cls, value: str) -> str:
        if not parse_families(value):
            raise ValueError("expected groups of roots, e.g. ES,MES;NQ,MNQ")
        return value

    @model_validator(mode="after")
    def _order(self) -> "RiskSettings":
        if not (self.risk_entry_cutoff <= self.risk_flatten_start <= self.risk_flat_by):
            raise ValueError("RISK_ENTRY_CUTOFF: expected entry cut-off <= RISK_FLATTEN_START "
                             "<= RISK_FLAT_BY")
        return self

    def risk_config(self, strategies: dict[str, StrategyLimits] | None = None) -> RiskConfig:
        """The resolved numbers for the pure core."""
        start = self.risk_starting_balance
        fixed = self.risk_floor
        if fixed is None and self.risk_xfa_payout_taken:
            fixed = start if start is not None else 0.0
        dll = self.risk_daily_loss_limit
        overrides: dict[str, Any] = {
            "starting_balance": start, "mll_allowance": self.risk_mll_allowance,
            "mll_buffer": self.risk_mll_buffer, "fixed_floor": fixed,
            "max_lots": self.risk_max_lots, "micro_weight": self.risk_micro_weight,
            "scaling": parse_scaling(self.risk_scaling_table) if self.risk_scaling_table
            else None,
            "entry_cutoff": self.risk_entry_cutoff, "flatten_start": self.risk_flatten_start,
            "flat_by": self.risk_flat_by,
            "account_orders_per_minute": self.risk_account_orders_per_minute,
            "strategy_orders_per_minute": self.risk_strategy_orders_per_minute,
            "daily_contracts": self.risk_daily_contracts,
            "default_stop_ticks": self.risk_default_stop_ticks,
            "slippage_ticks": self.risk_slippage_ticks,
            "families": parse_families(self.risk_hedging_families),
            "strategies": strategies or {}, "mark_max_age_s": self.risk_mark_max_age,
        }
        cfg = resolve(self.topstep_program, self.topstep_account_size, **overrides)
        if dll is not None:
            cfg = replace(cfg, daily_loss_limit=dll or None)
        if self.risk_fees:
            cfg = replace(cfg, fees={**cfg.fees, **parse_fees(self.risk_fees)})
        return cfg


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
