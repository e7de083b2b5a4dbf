"""Options of the sim (`chillly sim`), read from SIM_* environment variables or the CLI.

Every knob whose live behaviour is unknown (projectx-api.md §11) is an option here rather than a
guess baked into code: rate-limit windows and scope, token lifetime, hub behaviour on token
expiry, daily-bar alignment. Fault options set the starting fault state; the admin endpoint
(/admin/faults) changes it while the sim runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from chillly.settings import Settings
from sim.exchange.rules import RULES

#: The roots the sim lists by default (projectx-api.md §8: TopstepX roots, not CME tickers).
DEFAULT_ROOTS = ["EP", "ENQ", "MES", "MNQ", "RTY", "YM", "CLE", "GCE", "EU6"]


class SimSettings(Settings):
    """Sim options. SIM_HOST / SIM_PORT live in the base settings (the venue URLs use them)."""

    sim_seed: int = 7110
    sim_history_days: int = Field(default=30, ge=1, le=400)
    sim_always_open: bool = False
    sim_roots: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_ROOTS))

    # Auth: demo mode accepts any userName/apiKey; otherwise both must match.
    sim_username: str = ""
    sim_api_key: str = ""
    sim_token_lifetime_s: float = Field(default=86_400.0, gt=0)
    sim_token_secret: str = "chillly-sim"
    sim_hub_close_on_expiry: bool = False
    # Auth/validate with an expired token: "401" like every endpoint, "error" (HTTP 200,
    # errorCode 3 ExpiredToken) or "renew" (a new token anyway). Live behaviour unknown (§11).
    sim_validate_expired: Literal["401", "error", "renew"] = "401"

    # Rate limits (projectx-api.md §7): count per window, window in seconds.
    sim_rate_bars: int = Field(default=50, ge=0)
    sim_rate_bars_window_s: float = Field(default=30.0, gt=0)
    sim_rate_other: int = Field(default=200, ge=0)
    sim_rate_other_window_s: float = Field(default=60.0, gt=0)
    sim_rate_scope: Literal["user", "token", "global"] = "user"
    sim_rate_clock: Literal["market", "real"] = "market"

    # Hub pacing: how often (real seconds) the market loop publishes batched events.
    sim_tick_interval_s: float = Field(default=0.1, gt=0, le=5)
    sim_hub_ping_s: float = Field(default=15.0, gt=0)

    # Trading engine: accounts ("id:name[:balance[:flags]],...", empty = one 50K
    # Practice account) and the default bracket mode.
    sim_accounts: str = ""
    sim_bracket_mode: Literal["auto_oco", "position"] = "auto_oco"
    # Paper trading state (accounts, orders, positions, trades, the referee, drifts) kept across
    # restarts in this JSON file; empty = in memory only; "auto" = RUN_DIR/sim/sim-state.json.
    sim_state_path: str = ""
    # Fill model: "prints" (a resting limit fills at most the size printed through its price,
    # so large orders fill in parts) or "touch" (whole, on a print or an opposite quote at it).
    sim_fill_model: Literal["prints", "touch"] = "prints"
    # Topstep rules the sim enforces (rejections, liquidations, locks): a comma list of
    # max_position, mll, flat_by, daily_loss, or "all" / "none". The referee records breaches
    # of every rule whatever this says (GET /admin/breaches).
    sim_enforce: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(RULES))

    # Faults at start (real seconds / fractions); the admin endpoint changes them at run time.
    sim_fault_drop_hubs_every_s: float = Field(default=0.0, ge=0)
    sim_fault_rest_fail_rate: float = Field(default=0.0, ge=0, le=1)
    sim_fault_rest_delay_ms: int = Field(default=0, ge=0)
    sim_fault_force_429: bool = False
    # A venue that revises a bar after serving it final: market seconds during which a closed
    # minute is served without its last print (0 = off). See docs/sim.md.
    sim_revise_after_final: float = Field(default=0.0, ge=0, le=3600)

    @property
    def state_file(self) -> Path | None:
        """Where the trading state persists, or None."""
        if not self.sim_state_path.strip():
            return None
        if self.sim_state_path.strip() == "auto":
            return self.run_dir / "sim" / "sim-state.json"
        return Path(self.sim_state_path)

    @field_validator("sim_enforce", mode="before")
    @classmethod
    def _split_rules(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "all":
                return list(RULES)
            value = [] if text in ("none", "") else [p.strip() for p in text.split(",")
                                                      if p.strip()]
        if isinstance(value, list):
            unknown = [r for r in value if r not in RULES]
            if unknown:
                raise ValueError(f"unknown rules {unknown}; known: {', '.join(RULES)}, "
                                 "all, none")
        return value

    @field_validator("sim_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().upper() for part in value.split(",") if part.strip()]
        return value
