"""Settings of a strategy host (`STRATEGY_*`), on top of the shared ones.

The launcher reads them with `.env` (it may see credentials); the sandboxed host reads them
from the scrubbed environment only (`_env_file=None`), so the secrets in `.env` never enter it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from chillly.settings import Settings

#: Wall seconds a final may be late without counting as a catch-up bar, whatever the setting.
MIN_BAR_ALLOWANCE_S = 10.0

LAYER_NAMES = ("cgroup", "env", "rlimits", "no_new_privs", "user", "pdeathsig", "landlock",
               "landlock_net", "seccomp")


class HostSettings(Settings):
    process_name: str = "strategy-host"
    strategy_name: str = ""
    strategy_memory_mb: int = Field(default=1024, ge=64)
    strategy_max_files: int = Field(default=256, ge=16)
    strategy_max_file_mb: int = Field(default=64, ge=1)
    strategy_hook_budget_ms: float = Field(default=250.0, gt=0)
    strategy_hook_kill_s: float = Field(default=5.0, gt=0)
    strategy_max_errors: int = Field(default=5, ge=1)     # hook errors in a row before exit 1
    strategy_save_interval: float = Field(default=30.0, gt=0)  # real seconds
    # Market seconds after its close beyond which a final bar is a catch-up bar (its on_bar
    # runs, its orders are refused; trading/strategy/catchup.py); 0: off.
    strategy_max_bar_age: float = Field(default=120.0, ge=0)
    strategy_user: str = "nobody"
    # Scheduling priority: hosts yield the CPU to the broker, feeds and gateway under load.
    strategy_nice: int = Field(default=5, ge=0, le=19)
    # Per host, where the kernel offers a cgroup (v2, or v1's pids and cpu controllers): tasks
    # (processes and threads) at most, and a CPU weight against the system's default of 100
    # (v1: cpu.shares scaled from 1024), so busy threads cannot starve the gateway.
    strategy_max_procs: int = Field(default=64, ge=8)
    strategy_cpu_weight: int = Field(default=25, ge=1, le=10000)
    strategy_sandbox_require: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Passed by the launcher (the TOPSTEP_* names are scrubbed from a host's environment).
    strategy_account: int | None = None
    strategy_venue: str = "sim"
    strategy_parent_pid: int | None = None
    # Set by the parent for its child: the cgroup directories to join, or "!" and why none.
    strategy_cgroup: str = ""
    # The instance's state directory; the launcher sets it under the venue's own run
    # directory (RUN_DIR/<venue>/strategies/NAME), so sim state never meets a live account's.
    strategy_state_dir: Path | None = None

    @field_validator("strategy_sandbox_require", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            bad = [v for v in value if v not in LAYER_NAMES]
            if bad:
                raise ValueError(f"unknown layer {bad[0]!r}: expected any of "
                                 + ", ".join(LAYER_NAMES))
        return value

    @property
    def bar_allowance_ms(self) -> int:
        """STRATEGY_MAX_BAR_AGE in market ms, never less than MIN_BAR_ALLOWANCE_S wall seconds
        of market time at this clock speed: on an accelerated clock only a real outage counts,
        and a loaded machine delivering a final a few seconds late is never catching up."""
        if self.strategy_max_bar_age <= 0:
            return 0
        return int(max(self.strategy_max_bar_age, MIN_BAR_ALLOWANCE_S * self.clock_speed) * 1000)

    @property
    def state_dir(self) -> Path:
        if self.strategy_state_dir is not None:
            return self.strategy_state_dir
        return self.venue_run_dir.resolve() / "strategies" / self.strategy_name
