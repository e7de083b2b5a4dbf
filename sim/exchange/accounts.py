"""Sim accounts: the `SIM_ACCOUNTS` grammar, each account's Topstep program, and the venue's
TradingAccount model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sim.exchange.rules import PROGRAMS, SIZE_SPECS, SIZES, Program, resolve

_NAME_SIZE = re.compile(r"^(50|100|150)K", re.IGNORECASE)
_BARE_FLAGS = {"notrade", "live", "follower", "hidden", "inactive", "position", "auto_oco",
               "payout"}
_VALUE_FLAGS = {"program", "size", "mll", "maxlots", "dll", "start"}


@dataclass(frozen=True)
class AccountConfig:
    """One sim account. `bracket_mode` None follows the engine's default mode; `program` None
    is a Combine of the size its name or balance shows (sim/exchange/rules.py has the tables)."""

    id: int
    name: str
    balance: float = 50_000.0
    can_trade: bool = True
    simulated: bool = True
    is_visible: bool = True
    active: bool = True
    bracket_mode: str | None = None
    program: Program | None = None
    #: follows another account (copy trading): simulated, yet Order/cancel is refused
    follower: bool = False

    def rules(self) -> Program:
        return self.program or resolve("combine", infer_size(self.name, self.balance),
                                       self.balance)


DEFAULT_ACCOUNTS = (AccountConfig(1001, "50KTC-V2-000001-00001001", 50_000.0),)


def infer_size(name: str, balance: float) -> str:
    """50k / 100k / 150k from a venue-like name (`50KTC-...`), else from the balance."""
    m = _NAME_SIZE.match(name)
    if m:
        return f"{m.group(1)}k"
    for size in SIZES:
        if balance == SIZE_SPECS[size].starting_balance:
            return size
    return "50k"


def _number(item: str, key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"account {item!r}: {key} must be a number, not {value!r}") from None


def parse_accounts(text: str) -> list[AccountConfig]:
    """Accounts from `id:name[:balance[:flags]]` items separated by commas or semicolons.

    Flags (any order, joined with '+'): `notrade` (canTrade false), `live` (simulated false),
    `follower` (follows another account: cancels refused, simulated true), `hidden` (isVisible
    false), `inactive`, `position` / `auto_oco` (bracket mode); the Topstep
    program: `combine` / `xfa` (or `program=combine|xfa|live`), `50k` / `100k` / `150k` (or
    `size=...`), and overrides `start=S` (starting balance, default the balance), `mll=D`
    (allowance), `maxlots=N`, `dll=X` (personal daily loss limit), `payout` (xfa floor locked).
    Example: `1001:50KTC-V2-1-1001:50000,1002:XFA-1002:0:xfa+50k+dll=500+position`.
    """
    out: list[AccountConfig] = []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) < 2 or len(parts) > 4:
            raise ValueError(f"account {item!r}: expected id:name[:balance[:flags]]")
        try:
            acc_id = int(parts[0])
            balance = float(parts[2]) if len(parts) > 2 and parts[2] else 50_000.0
        except ValueError:
            raise ValueError(f"account {item!r}: id must be an integer, balance a number") from None
        flags: set[str] = set()
        values: dict[str, str] = {}
        for f in (parts[3].split("+") if len(parts) > 3 else []):
            if not f:
                continue
            if "=" in f:
                key, _, value = f.partition("=")
                if key not in _VALUE_FLAGS:
                    raise ValueError(f"account {item!r}: unknown setting {key!r}; known: "
                                     f"{sorted(_VALUE_FLAGS)}")
                values[key] = value
            elif f in ("combine", "xfa"):
                values["program"] = f
            elif f.lower() in SIZES:
                values["size"] = f.lower()
            elif f in _BARE_FLAGS:
                flags.add(f)
            else:
                raise ValueError(f"account {item!r}: unknown flags [{f!r}]")
        program = values.get("program", "combine")
        if program not in PROGRAMS:
            raise ValueError(f"account {item!r}: program must be one of {PROGRAMS}")
        size = values.get("size", infer_size(parts[1], balance)).lower()
        if size not in SIZES:
            raise ValueError(f"account {item!r}: size must be one of {SIZES}")
        maxlots = values.get("maxlots")
        if maxlots is not None and (not maxlots.isdigit() or int(maxlots) < 1):
            raise ValueError(f"account {item!r}: maxlots must be a whole number >= 1")
        rules = resolve(
            program, size,
            _number(item, "start", values["start"]) if "start" in values else balance,
            allowance=_number(item, "mll", values["mll"]) if "mll" in values else None,
            max_lots=int(maxlots) if maxlots is not None else None,
            daily_loss=_number(item, "dll", values["dll"]) if "dll" in values else None,
            payout="payout" in flags)
        mode = "position" if "position" in flags else "auto_oco" if "auto_oco" in flags else None
        out.append(AccountConfig(acc_id, parts[1], balance, can_trade="notrade" not in flags,
                                 simulated="live" not in flags, is_visible="hidden" not in flags,
                                 active="inactive" not in flags, bracket_mode=mode,
                                 program=rules, follower="follower" in flags))
    ids = [a.id for a in out]
    if len(set(ids)) != len(ids):
        raise ValueError("account ids must be unique")
    if not out:
        raise ValueError("no accounts given")
    return out


@dataclass
class Account:
    id: int
    name: str
    balance: float
    can_trade: bool
    is_visible: bool
    simulated: bool
    active: bool
    bracket_mode: str
    follower: bool = False

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "balance": round(self.balance, 2),
                "canTrade": self.can_trade, "isVisible": self.is_visible,
                "simulated": self.simulated}
