"""One strategy instance's definition (a `[strategies.NAME]` table of strategies.toml), as a
typed record the engine, the host and a backtest share.

Parsing the file is trading/strategy/config_file.py's (the host and a backtest read it alike);
what an instance is, and whether it may trade where the system points, is decided here.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chillly.settings import _CONTRACT_RE
from chillly.timeframes import tf_ms

#: An instance name: it becomes a program name, a topic part and a directory name.
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


class Limits(BaseModel):
    """Per-strategy limits, enforced by the gateway's risk gate (not by the host)."""

    model_config = ConfigDict(extra="forbid")
    contracts: list[str] | None = None
    max_lots: int | None = Field(default=None, ge=1)
    max_orders_per_minute: int | None = Field(default=None, ge=1)
    max_daily_loss: float | None = Field(default=None, gt=0)


class Instance(BaseModel):
    """One `[strategies.NAME]` table."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    class_: str = Field(alias="class")
    contracts: list[str] = Field(min_length=1)
    timeframes: list[str] = Field(default_factory=lambda: ["1m"], min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    enabled: bool = True
    # Where it may trade: "sim", and/or live account ids or names, each listed explicitly.
    run_on: list[str] = Field(default_factory=lambda: ["sim"])
    warmup: int = Field(default=200, ge=0, le=20_000)

    @field_validator("contracts")
    @classmethod
    def _contracts(cls, value: list[str]) -> list[str]:
        for c in value:
            if not _CONTRACT_RE.match(c):
                raise ValueError(f"unknown contract {c!r}: expected a symbol (ES) or an id "
                                 "(CON.F.US.EP.Z26)")
        return value

    @field_validator("timeframes")
    @classmethod
    def _timeframes(cls, value: list[str]) -> list[str]:
        for tf in value:
            tf_ms(tf)  # ValueError names it
        return value

    @field_validator("run_on", mode="before")
    @classmethod
    def _run_on(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) for v in value]
        return value



def allowed(inst: Instance, live: bool, account_id: int | None,
            account_name: str | None) -> tuple[bool, str]:
    """May this instance trade where the system is pointed? On the sim: when it lists "sim".
    With venue credentials: only when it names that very account (id or name); "sim" never
    counts, so a shipped example cannot trade real money."""
    if not inst.enabled:
        return False, "disabled (enabled = false)"
    if not live:
        return ("sim" in inst.run_on,
                "enabled for the sim" if "sim" in inst.run_on else "run_on does not list \"sim\"")
    names = {str(account_id)} if account_id is not None else set()
    if account_name:
        names.add(account_name)
    hit = names & set(inst.run_on)
    if hit:
        return True, f"enabled for live account {sorted(hit)[0]}"
    return False, (f"not enabled for live account {account_name or account_id}: add it to "
                   "run_on to let it trade real money")
