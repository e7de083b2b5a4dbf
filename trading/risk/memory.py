"""The risk gate's memory: what must survive a restart to keep the same floor and the same day.

The venue exposes no MLL, high-water mark, tier or latch (topstep-rules.md), so the gateway keeps
them: EOD balances (and from them the high-water mark), the start-of-day balance (day P&L is
equity minus it), the day's tier, the latches (a manual halt until resume; a rule halt until the
next trading day; strategies halted alone), and the fair-use counters. `to_dict`/`from_dict`
give the JSON the gateway journal stores (one row, rewritten whenever `dirty`).
`rebuild_eod` recovers past EOD balances of an account with history from the venue's trades;
`missed_eod` the days a stopped gateway did not see close (the account may trade elsewhere
meanwhile: the web platform, brackets closing, the venue's own liquidation).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from trading.risk.calendar import RiskCalendar

VERSION = 1


@dataclass
class RiskMemory:
    day: str | None = None                 # ISO trading date the book is on
    eod: dict[str, float] = field(default_factory=dict)   # trading date -> EOD balance
    high_water: float | None = None        # H: highest EOD balance (None: no EOD yet)
    sod_balance: float | None = None       # balance at the day's start (the last EOD)
    last_balance: float | None = None      # the latest balance seen (the EOD at the roll)
    tier_lots: float | None = None         # XFA cap fixed for the day
    manual_halt: str | None = None         # reason; latched until `resume` when flat
    day_halt: tuple[str, str] | None = None          # (rule, reason) until the next day
    owner_halts: dict[str, str] = field(default_factory=dict)   # owner -> reason, for the day
    contracts_today: int = 0
    state: str = "ACTIVE"                  # last state announced
    state_reason: str = ""
    state_rule: str | None = None
    rejections: int = 0
    account_orders: deque[int] = field(default_factory=deque)       # submit times, last minute
    owner_orders: dict[str, deque[int]] = field(default_factory=dict)
    dirty: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION, "day": self.day, "eod": dict(self.eod), "high_water": self.high_water,
            "sod_balance": self.sod_balance, "last_balance": self.last_balance,
            "tier_lots": self.tier_lots, "manual_halt": self.manual_halt,
            "day_halt": list(self.day_halt) if self.day_halt else None,
            "owner_halts": dict(self.owner_halts), "contracts_today": self.contracts_today,
            "state": self.state, "state_reason": self.state_reason,
            "state_rule": self.state_rule, "rejections": self.rejections,
            "account_orders": list(self.account_orders),
            "owner_orders": {k: list(v) for k, v in self.owner_orders.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RiskMemory":
        if data.get("v") != VERSION:
            raise ValueError(f"risk book version {data.get('v')!r} is not {VERSION}")
        dh = data.get("day_halt")
        return cls(
            day=data.get("day"), eod={k: float(v) for k, v in data.get("eod", {}).items()},
            high_water=data.get("high_water"), sod_balance=data.get("sod_balance"),
            last_balance=data.get("last_balance"), tier_lots=data.get("tier_lots"),
            manual_halt=data.get("manual_halt"),
            day_halt=(str(dh[0]), str(dh[1])) if dh else None,
            owner_halts=dict(data.get("owner_halts", {})),
            contracts_today=int(data.get("contracts_today", 0)),
            state=data.get("state", "ACTIVE"), state_reason=data.get("state_reason", ""),
            state_rule=data.get("state_rule"), rejections=int(data.get("rejections", 0)),
            account_orders=deque(int(t) for t in data.get("account_orders", [])),
            owner_orders={k: deque(int(t) for t in v)
                          for k, v in data.get("owner_orders", {}).items()},
            dirty=False,
        )

    def catch_up(self, missed: dict[str, float]) -> None:
        """The days a stopped gateway did not see close (`missed_eod`): each EOD recorded, and
        the memory stands on the last of them, so the gate's roll to today takes its EOD as
        the start-of-day balance (and clears the day's latches) as if it had run."""
        if not missed:
            return
        for day, balance in sorted(missed.items()):
            self.record_eod(day, balance)
        self.day = max(missed)
        self.last_balance = missed[self.day]
        self.dirty = True

    def record_eod(self, day: str, balance: float) -> None:
        self.eod[day] = balance
        if self.high_water is None or balance > self.high_water:
            self.high_water = balance
        self.dirty = True


def rebuild_eod(balance_now: float, trades: Iterable[tuple[int, float]], now_ms: int,
                cal: RiskCalendar) -> dict[str, float]:
    """EOD balances of every past trading day since the first trade, from the venue's trades.

    `trades` are (time ms, P&L net of fees) half-turns, as Trade/search gives them. Walking back
    from today's balance, each day's EOD is the balance less everything realized after its
    close. Days before the first trade are left out (their EOD is the first one's opening).
    """
    rows = sorted(trades)
    if not rows:
        return {}
    today = cal.trading_date(now_ms)
    first = cal.trading_date(rows[0][0])
    out: dict[str, float] = {}
    balance = balance_now
    i = len(rows) - 1
    day = today
    # The EOD of `day - 1` is the balance at the session open of `day`.
    while day > first - timedelta(days=1):
        boundary = cal.session_open_ms(day)
        while i >= 0 and rows[i][0] >= boundary:
            balance -= rows[i][1]
            i -= 1
        prev: date = day - timedelta(days=1)
        if prev < today:
            out[prev.isoformat()] = round(balance, 2)
        day = prev
    return out


def missed_eod(since_day: str, balance_now: float, trades: Iterable[tuple[int, float]],
               now_ms: int, cal: RiskCalendar) -> dict[str, float]:
    """EOD balances of every day from `since_day` (the day the memory was on when the gateway
    stopped: its close was not seen) to the day before today, from the venue's trades since
    that day's open (time ms, P&L net of the trade's cost). A day with no trade after it ends
    at the balance of the next day that had one, or today's balance."""
    today = cal.trading_date(now_ms)
    start = date.fromisoformat(since_day)
    if start >= today:
        return {}
    rebuilt = rebuild_eod(balance_now, trades, now_ms, cal)
    out: dict[str, float] = {}
    day = start
    while day < today:
        key = day.isoformat()
        later = [k for k in rebuilt if k >= key]
        out[key] = rebuilt[min(later)] if later else round(balance_now, 2)
        day += timedelta(days=1)
    return out
