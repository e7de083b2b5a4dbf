"""Sim accounts: the `SIM_ACCOUNTS` grammar and the venue's TradingAccount model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AccountConfig:
    """One sim account. `bracket_mode` None follows the engine's default mode."""

    id: int
    name: str
    balance: float = 50_000.0
    can_trade: bool = True
    simulated: bool = True
    is_visible: bool = True
    active: bool = True
    bracket_mode: str | None = None


DEFAULT_ACCOUNTS = (AccountConfig(1001, "PRAC-V2-000001-00001001", 50_000.0),)


def parse_accounts(text: str) -> list[AccountConfig]:
    """Accounts from `id:name[:balance[:flags]]` items separated by commas or semicolons.

    Flags (any order, joined with '+'): `notrade` (canTrade false), `live` (simulated false),
    `hidden` (isVisible false), `inactive`, `position` / `auto_oco` (bracket mode).
    Example: `1001:PRAC-V2-1-1001:50000,1002:50KTC-V2-1-1002:50000:position`.
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
        flags = {f for f in (parts[3].split("+") if len(parts) > 3 else []) if f}
        unknown = flags - {"notrade", "live", "hidden", "inactive", "position", "auto_oco"}
        if unknown:
            raise ValueError(f"account {item!r}: unknown flags {sorted(unknown)}")
        mode = "position" if "position" in flags else "auto_oco" if "auto_oco" in flags else None
        out.append(AccountConfig(acc_id, parts[1], balance, can_trade="notrade" not in flags,
                                 simulated="live" not in flags, is_visible="hidden" not in flags,
                                 active="inactive" not in flags, bracket_mode=mode))
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

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "balance": round(self.balance, 2),
                "canTrade": self.can_trade, "isVisible": self.is_visible,
                "simulated": self.simulated}
