"""Per-strategy limits from strategies.toml (STRATEGIES_FILE), read by the gateway itself.

The gateway must not import strategy_host/, so it parses only what it enforces: each instance's
`[strategies.NAME.limits]` table (`contracts`, `max_lots`, `max_orders_per_minute`,
`max_daily_loss`). A missing file means no per-strategy limits; a malformed one stops the
gateway at start with one line naming the file and the field, like a bad setting.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from trading.risk.config import StrategyLimits

FIELDS = ("contracts", "max_lots", "max_orders_per_minute", "max_daily_loss")


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
    out: dict[str, StrategyLimits] = {}
    section = data.get("strategies", {})
    if not isinstance(section, dict):
        raise LimitsError(f"{where}: [strategies] must be a table")
    for name, inst in section.items():
        if not isinstance(inst, dict) or not isinstance(inst.get("limits"), dict):
            continue
        lim = inst["limits"]
        at = f"{where}: strategies.{name}.limits"
        unknown = set(lim) - set(FIELDS)
        if unknown:
            raise LimitsError(f"{at}: unknown field {sorted(unknown)[0]!r} "
                              f"(expected {', '.join(FIELDS)})")
        contracts = lim.get("contracts")
        if contracts is not None and (not isinstance(contracts, list)
                                      or not all(isinstance(c, str) for c in contracts)):
            raise LimitsError(f"{at}.contracts: expected a list of symbols or contract ids")
        out[name] = StrategyLimits(
            contracts=frozenset(c.upper() if not c.startswith("CON.") else c
                                for c in contracts) if contracts is not None else None,
            max_lots=_number(lim, "max_lots", at),
            max_orders_per_minute=_int(lim, "max_orders_per_minute", at),
            max_daily_loss=_number(lim, "max_daily_loss", at))
    return out


def _number(lim: dict[str, Any], key: str, at: str) -> float | None:
    v = lim.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise LimitsError(f"{at}.{key}: expected a number > 0, got {v!r}")
    return float(v)


def _int(lim: dict[str, Any], key: str, at: str) -> int | None:
    v = lim.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise LimitsError(f"{at}.{key}: expected an integer > 0, got {v!r}")
    return v
