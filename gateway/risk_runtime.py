"""The gateway's side of the risk gate: build it, keep its memory in the journal, serve commands.

`RiskRuntime` owns the `RiskGate` of the account (settings + strategies.toml limits + the CME
calendar), reads its `RiskMemory` back from the journal at start (the same floor, day, latches and
counters after any restart), rebuilds the EOD history from the venue's trades on the first
start of an account, writes the memory back whenever it changed (coalesced, on the journal's
writer thread) and serves `halt`, `resume` and `risk` (docs/wire-format.md).

Per-strategy limits come from strategies.toml (STRATEGIES_FILE), read by the gateway itself
(`read_limits`): it parses only what it enforces, each instance's `[strategies.NAME.limits]`
table (`contracts`, `max_lots`, `max_orders_per_minute`, `max_daily_loss`), with the core's
`Limits` model, the one the strategy host checks them with. A missing file means no per-strategy limits; a malformed one stops the
gateway at start with one line naming the file and the field, like a bad setting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tomllib
from datetime import date
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from chillly.bus import CommandError
from gateway.settings import RiskSettings
from topstepx.models import HalfTrade
from trading.risk.calendar import AlwaysOpenCalendar, CmeCalendar
from trading.risk.config import StrategyLimits
from trading.risk.memory import RiskMemory, missed_eod, rebuild_eod
from trading.risk.gate import RiskGate
from trading.risk.types import BookView
from trading.strategy.config_file import field_error
from trading.strategy.instance import Limits

class LimitsError(ValueError):
    pass


def read_limits(path: Path) -> dict[str, StrategyLimits]:
    """name -> its limits, for every instance with a `limits` table."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LimitsError(f"{path}: {exc}") from None
    return parse_limits(data, str(path))


def parse_limits(data: dict[str, Any], where: str = "strategies.toml") -> dict[str, StrategyLimits]:
    """Each instance's limits table, checked by the same model the strategy host and
    `chillly strategies sync` use (trading/strategy/instance.py `Limits`), so a limit means one
    thing everywhere; the rest of an instance is the host's to check."""
    out: dict[str, StrategyLimits] = {}
    section = data.get("strategies", {})
    if not isinstance(section, dict):
        raise LimitsError(f"{where}: [strategies] must be a table")
    for name, inst in section.items():
        if not isinstance(inst, dict) or "limits" not in inst:
            continue
        try:
            lim = Limits.model_validate(inst["limits"])
        except ValidationError as exc:
            raise LimitsError(str(field_error(where, name, exc, "limits."))) from None
        out[name] = StrategyLimits(
            contracts=frozenset(c.upper() if not c.startswith("CON.") else c
                                for c in lim.contracts) if lim.contracts is not None else None,
            max_lots=float(lim.max_lots) if lim.max_lots is not None else None,
            max_orders_per_minute=lim.max_orders_per_minute,
            max_daily_loss=lim.max_daily_loss)
    return out


log = logging.getLogger("gateway.risk")

#: How far back the first start looks for the account's trades (Trade/search).
HISTORY_MS = 400 * 86_400_000


class RiskStore(Protocol):
    async def load_risk(self) -> str | None: ...

    async def save_risk(self, book_json: str, at_ms: int) -> None: ...


class RiskRuntime:
    def __init__(self, settings: RiskSettings, store: RiskStore,
                 now_ms: Callable[[], int]) -> None:
        cal = AlwaysOpenCalendar() if settings.market_hours == "always" else CmeCalendar()
        self.gate = RiskGate(settings.risk_config(read_limits(settings.strategies_file)), cal)
        self.store = store
        self.now_ms = now_ms
        self._saving: asyncio.Task[None] | None = None

    async def load(self) -> bool:
        """Read the memory back; True when there was one (not the account's first start)."""
        text = await self.store.load_risk()
        if not text:
            return False
        self.gate.memory = RiskMemory.from_dict(json.loads(text))
        b = self.gate.memory
        log.info("risk memory: day %s, high water %s, floor %.2f, state %s%s", b.day,
                 b.high_water, self.gate.floor(), b.state,
                 f", halted by hand ({b.manual_halt})" if b.manual_halt else "")
        return True

    async def bootstrap(self, trades: list[tuple[int, float]], balance: float) -> None:
        """First start: EOD balances rebuilt from the venue's trades (time, P&L net of fees)."""
        eod = rebuild_eod(balance, trades, self.now_ms(), self.gate.cal)
        b = self.gate.memory
        if eod:
            b.eod.update(eod)
            b.high_water = max([self.gate.cfg.starting_balance, *eod.values()])
            last = max(eod)
            b.sod_balance = eod[last]
        log.info("risk memory rebuilt from %d trades: %d EOD balances, high water %s", len(trades),
                 len(eod), b.high_water)
        await self.save()

    def missed_since_ms(self) -> int | None:
        """The open of the day the memory stood on when the gateway stopped, if its close has
        passed since (days to rebuild at start), else None."""
        day = self.gate.memory.day
        if day is None or self.gate.cal.trading_date(self.now_ms()).isoformat() <= day:
            return None
        return self.gate.cal.session_open_ms(date.fromisoformat(day))

    async def catch_up(self, trades: list[tuple[int, float]], balance: float) -> None:
        """Every start after a stop across 17:00 CT: the EOD balances of the days missed,
        from the venue's trades (time, P&L net of the trade's cost), before any order."""
        b = self.gate.memory
        if b.day is None:
            return
        missed = missed_eod(b.day, balance, trades, self.now_ms(), self.gate.cal)
        b.catch_up(missed)
        log.info("risk memory caught up over %d missed days from %d trades: %s; high water %s",
                 len(missed), len(trades), missed, b.high_water)
        await self.save()

    async def save(self) -> None:
        """Write the memory now (awaited where a reply promises it: halt, resume, set)."""
        b = self.gate.memory
        b.dirty = False
        await self.store.save_risk(json.dumps(b.to_dict()), self.now_ms())

    def save_soon(self) -> None:
        """Coalesced write of a changed memory, off the caller's path."""
        if self.gate.memory.dirty and (self._saving is None or self._saving.done()):
            self._saving = asyncio.ensure_future(self._save_loop())

    async def _save_loop(self) -> None:
        while self.gate.memory.dirty:
            try:
                await self.save()
            except Exception:
                log.exception("risk memory not saved")
                self.gate.memory.dirty = True
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)
        if self.gate.memory.dirty:
            await self.save()

    # ------------------------------------------------------------------ commands

    async def halt(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        _tools_only(sender, "halt")
        reason = str(args.get("reason") or f"halted by {sender}")
        state, why = self.gate.halt(reason)
        await self.save()
        return {"state": state, "reason": why}

    async def resume(self, args: dict[str, Any], sender: str, view: BookView) -> dict[str, Any]:
        _tools_only(sender, "resume")
        ok, message = self.gate.resume(view)
        if not ok:
            raise CommandError(f"resume refused: {message}")
        await self.save()
        state, reason, _ = self.gate.state(view, view.now_ms)
        return {"state": state, "reason": reason or message}

    async def risk(self, args: dict[str, Any], sender: str, view: BookView) -> dict[str, Any]:
        hw = args.get("set_high_water")
        if hw is not None:
            _tools_only(sender, "risk --set-high-water")
            if isinstance(hw, bool) or not isinstance(hw, (int, float)):
                raise CommandError("set_high_water: expected a number")
            try:
                self.gate.set_high_water(float(hw))
            except ValueError as exc:
                raise CommandError(f"set_high_water: {exc}") from None
            await self.save()
        return self.gate.report(view, view.now_ms)


def net_history(trades: Iterable[HalfTrade]) -> list[tuple[int, float]]:
    """The venue's trades as the rebuild of past EOD balances reads them: (time, realized P&L
    less the trade's cost), voided trades left out. The cost is `HalfTrade.cost`, fees and
    commissions, as on the live path: a rebuild that left commissions out put every past
    balance, the high-water mark and so the floor too high."""
    return [(t.creation_timestamp, float(t.profit_and_loss or 0.0) - t.cost)
            for t in trades if t.creation_timestamp is not None and not t.voided]


def _tools_only(sender: str, what: str) -> None:
    if sender.startswith("strategy-"):
        raise CommandError(f"{what} is for the trader's tools, not a strategy ({sender})")
