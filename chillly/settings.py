"""Typed configuration for every CHILLLY process, read once from the environment and `.env`.

Every process reads the same base names (ARCHITECTURE.md §6) so that they all agree on the bus
addresses, the venue and the clock. Processes with extra options subclass `Settings` in their
own package; `load_settings` is the only way a process reads its configuration, so a bad value
always stops the process the same way: one line naming the variable, the value and what is
expected, exit code 2.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit
from typing import Annotated, Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from dotenv import dotenv_values
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chillly.setting_names import unknown

#: TopstepX production endpoints (projectx-api.md §1).
TOPSTEPX_API_URL = "https://api.topstepx.com"
TOPSTEPX_USER_HUB_URL = "https://rtc.topstepx.com/hubs/user"
TOPSTEPX_MARKET_HUB_URL = "https://rtc.topstepx.com/hubs/market"

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_ADDR_RE = re.compile(r"^(tcp://(\*|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}|ipc://.+|inproc://.+)$")
# A configured contract is a symbol root ("ES", "MNQ", "6E") or a full TopstepX contract id.
_CONTRACT_RE = re.compile(r"^([A-Z0-9]{1,6}|CON\.[A-Z0-9]+(\.[A-Z0-9]+)+)$")

S = TypeVar("S", bound="Settings")


class Settings(BaseSettings):
    """Settings shared by every process. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False,
        validate_default=True,
        # inf and nan are never a sensible duration, speed or size (CLOCK_SPEED=inf used to
        # crash later with a traceback).
        allow_inf_nan=False,
        # A class's validator is built when it is first loaded, not when it is defined: every
        # process defines this base and its own subclass (often more) and loads one (~8 ms).
        defer_build=True,
    )

    # Venue credentials and account (secrets are SecretStr: never shown in logs or reprs).
    topstep_username: str = ""
    topstep_api_key: SecretStr | None = None
    topstep_account_id: int | None = None
    topstep_account_name: str | None = None

    # Venue addresses; empty means "the sim's" when no credentials are set, TopstepX's otherwise.
    topstep_api_url: str = ""
    topstep_user_hub_url: str = ""
    topstep_market_hub_url: str = ""
    sim_host: str = "127.0.0.1"
    sim_port: int = Field(default=7110, ge=1, le=65535)

    default_contracts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["ES", "NQ"])
    # State lives under RUN_DIR/<venue>/ (venue_run_dir), so a sim demo never mixes with the
    # real venue's history, marks or subscriptions; empty DATABASE_PATH = <venue run dir>/market.db.
    database_path: Path = Path("")
    run_dir: Path = Path("run")
    # The strategy instances (docs/strategies.md): read by their hosts, the risk gate (per
    # strategy limits) and `chillly unsubscribe` (a contract a strategy trades stays).
    strategies_file: Path = Path("strategies.toml")

    # The bus backend (chillly/bus_backends): the ZeroMQ broker, one process's memory, or Redis.
    bus_backend: str = "zmq"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Entries kept per topic family stream on Redis (catch-up after a restart); 0: no streams.
    redis_stream_maxlen: int = Field(default=10_000, ge=0, le=10_000_000)
    # The bus: publishers connect to the broker's XSUB side, subscribers to its XPUB side.
    bus_publish_addr: str = "tcp://127.0.0.1:7101"
    bus_subscribe_addr: str = "tcp://127.0.0.1:7102"
    bus_hwm: int = Field(default=100_000, ge=0)
    # Largest message any bus socket accepts (ZMQ_MAXMSGSIZE); bigger ones are dropped by
    # libzmq before they are read into memory. 1 MiB holds a 500-bar batch many times over.
    bus_max_message_bytes: int = Field(default=1 << 20, ge=64 * 1024, le=256 << 20)
    # ZeroMQ CURVE for a bus that leaves the machine (chillly/security.py; `chillly keys`).
    bus_curve_server_key: str = ""
    bus_curve_server_secret: SecretStr | None = None
    bus_curve_client_key: str = ""
    bus_curve_client_secret: SecretStr | None = None

    # The shared clock (chillly.clock): CLOCK_SPEED times real time after CLOCK_ANCHOR.
    clock_speed: float = Field(default=1.0, gt=0, le=1_000_000)
    clock_anchor: datetime | None = None

    heartbeat_interval: float = Field(default=2.0, gt=0)
    log_level: str = "INFO"

    @field_validator("bus_publish_addr", "bus_subscribe_addr")
    @classmethod
    def _check_addr(cls, value: str) -> str:
        if not _ADDR_RE.match(value):
            raise ValueError("expected tcp://host:port, ipc://path or inproc://name")
        if value.startswith("tcp://") and not 1 <= int(value.rsplit(":", 1)[1]) <= 65535:
            raise ValueError("the port must be 1..65535")
        return value

    @field_validator("bus_backend")
    @classmethod
    def _check_backend(cls, value: str) -> str:
        kind = value.strip().lower()
        if kind not in ("zmq", "memory", "redis"):
            raise ValueError("expected zmq, memory or redis")
        return kind

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            raise ValueError("expected redis://[user:password@]host:port/db, rediss://... "
                             "or unix:///path/to/redis.sock")
        if parts.scheme != "unix":
            try:
                parts.port
            except ValueError:
                raise ValueError("the port must be 1..65535") from None
        return value

    @field_validator("bus_curve_server_key", "bus_curve_client_key")
    @classmethod
    def _check_z85(cls, value: str) -> str:
        if value and len(value) != 40:
            raise ValueError("expected a 40-character Z85 CURVE public key (chillly keys)")
        return value

    @field_validator("bus_curve_server_secret", "bus_curve_client_secret")
    @classmethod
    def _check_z85_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and len(value.get_secret_value()) != 40:
            raise ValueError("expected a 40-character Z85 CURVE secret key (chillly keys)")
        return value if value is not None and value.get_secret_value() else None

    @field_validator("default_contracts", mode="before")
    @classmethod
    def _split_contracts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            # Symbols and ids are upper case at the venue; `es` means ES, as the commands take it.
            value = [v.strip().upper() if isinstance(v, str) else v for v in value]
            bad = [v for v in value if not isinstance(v, str) or not _CONTRACT_RE.match(v)]
            if bad or not value:
                raise ValueError(
                    "expected a comma-separated list of symbols (ES,MNQ) or contract ids "
                    "(CON.F.US.EP.Z26), at least one"
                )
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("clock_anchor")
    @classmethod
    def _anchor_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    @model_validator(mode="after")
    def _fill_venue(self) -> "Settings":
        if self.clock_speed != 1.0 and self.clock_anchor is None:
            raise ValueError("CLOCK_ANCHOR: expected an ISO UTC instant when CLOCK_SPEED is not 1")
        sim_base = f"http://{self.sim_host}:{self.sim_port}"
        live = self.uses_live_venue
        if not self.topstep_api_url:
            self.topstep_api_url = TOPSTEPX_API_URL if live else sim_base
        if not self.topstep_user_hub_url:
            self.topstep_user_hub_url = TOPSTEPX_USER_HUB_URL if live else f"{sim_base}/hubs/user"
        if not self.topstep_market_hub_url:
            self.topstep_market_hub_url = (
                TOPSTEPX_MARKET_HUB_URL if live else f"{sim_base}/hubs/market"
            )
        if self.database_path == Path(""):
            self.database_path = self.venue_run_dir / "market.db"
        return self

    @property
    def venue(self) -> str:
        """Which venue this configuration talks to, from its API URL: "topstepx" for TopstepX,
        "sim" for the sim (SIM_HOST:SIM_PORT or any loopback address), else the API's host name.
        It names the venue's run directory and is recorded in the market database."""
        host = (urlsplit(self.topstep_api_url).hostname or "").lower()
        if host == "topstepx.com" or host.endswith(".topstepx.com"):
            return "topstepx"
        sim_base = f"http://{self.sim_host}:{self.sim_port}"
        if self.topstep_api_url.rstrip("/") == sim_base or host in _LOOPBACK or not host:
            return "sim"
        return re.sub(r"[^a-z0-9.-]", "_", host)

    @property
    def venue_run_dir(self) -> Path:
        """RUN_DIR/<venue>/: where every process keeps this venue's state (the market database
        by default, feed marks, saved subscriptions, the gateway's journal)."""
        return self.run_dir / self.venue

    @property
    def uses_live_venue(self) -> bool:
        """True when credentials are configured: then the real TopstepX is the default venue."""
        return bool(self.topstep_api_key and self.topstep_api_key.get_secret_value())

    @property
    def clock_anchor_ms(self) -> int | None:
        return None if self.clock_anchor is None else int(self.clock_anchor.timestamp() * 1000)


def _describe(error: Any) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("__root__",)]
    name = loc[0].upper() if loc else ""
    msg = str(error.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    value = error.get("input")
    if not name:
        # Model-level errors carry the variable name in their message ("NAME: ...").
        return f"bad setting {msg}"
    hidden = "API_KEY" in name or "SECRET" in name or (name == "REDIS_URL" and "@" in str(value))
    shown = "<hidden>" if hidden else repr(value)
    return f"bad setting {name}={shown}: {msg}"


def _refuse_unknown(cls: type[Settings], overrides: dict[str, Any]) -> None:
    """Stop on a variable with one of CHILLLY's prefixes that no process reads (a misspelt
    setting would otherwise be ignored and its default apply): one line, exit code 2."""
    env_file = overrides.get("_env_file", cls.model_config.get("env_file"))
    sources: list[tuple[str, dict[str, Any]]] = [("the environment", dict(os.environ))]
    if isinstance(env_file, (str, Path)) and Path(env_file).is_file():
        sources.append((str(env_file), dict(dotenv_values(env_file))))
    for where, variables in sources:
        for name, close in unknown(variables, cls.model_fields):
            hint = f"did you mean {close}?" if close else "no CHILLLY setting has this name"
            print(f"chillly: unknown setting {name} in {where}: {hint} "
                  "(README.md, Configuration)", file=sys.stderr, flush=True)
            raise SystemExit(2)


def load_settings(cls: type[S] = Settings, **overrides: Any) -> S:  # type: ignore[assignment]
    """Read settings or stop the process: one line on stderr naming the variable, exit code 2.
    A variable with one of CHILLLY's prefixes that no process knows stops it the same way."""
    _refuse_unknown(cls, overrides)
    try:
        return cls(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"chillly: {_describe(first)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
