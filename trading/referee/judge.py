"""The referee: what every sim account may do under its Topstep rules, and every breach seen.

Pure (no I/O, time passed in). The engine reports each account's balance, open P&L and lots
after every change; the referee keeps the rule state the venue never shows (high-water mark,
MLL floor, end-of-day balances, the day's starting balance, the day's cap), records a breach
whenever a rule is violated, and tells the engine which rules were newly broken so that it can
enforce them. Recording does not depend on enforcement: a lax sim (SIM_ENFORCE=none) still
records every breach, which is how a test shows that orders sent straight to the venue would
have lost the account.

Rules recorded (names as in GET /admin/breaches):
- `max_position`: a fill left the account over its cap (lots weighted per trading/referee/rules.py);
- `mll`: equity (balance + open P&L, longs at the bid, shorts at the ask) at or below the floor;
- `flat_by`: a position open at the flat-by deadline (15:10 CT, earlier on early closes), or a
  fill adding to a position between the deadline and the session's close;
- `daily_loss`: the day's P&L (equity - the balance at the day's 17:00 CT open) at or below
  minus the account's daily loss limit.
The trading day rolls at 17:00 CT: the closing day's balance is recorded as its end-of-day
balance, the high-water mark and floor move from it, and the day's cap and DLL block reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from chillly.calendar import flat_by_ms, is_trading_day, session_close_ms, trading_date
from chillly.clock import ms_to_iso
from trading.referee.rules import Program, day_max_lots, floor


@dataclass
class Breach:
    rule: str
    account: int
    t: int
    figures: dict[str, Any]
    enforced: bool = False

    def to_api(self) -> dict[str, Any]:
        return {"rule": self.rule, "account": self.account, "t": self.t,
                "iso": ms_to_iso(self.t), "figures": self.figures, "enforced": self.enforced}


@dataclass
class RiskState:
    """The rule state of one account."""

    program: Program
    high_water: float
    floor: float
    day_start_balance: float
    max_lots: int
    eod_balances: list[tuple[str, float]] = field(default_factory=list)
    lost: bool = False            # MLL breached: the account is closed for good
    blocked: bool = False         # daily loss limit hit: no trading until the next 17:00 CT
    lots: int = 0                 # tenths of a lot at the last check
    violating: set[str] = field(default_factory=set)   # mll / daily_loss currently broken

    def to_api(self) -> dict[str, Any]:
        p = self.program
        return {"program": p.program, "size": p.size, "start_balance": p.start,
                "allowance": p.allowance, "floor": round(self.floor, 2),
                "high_water": round(self.high_water, 2),
                "eod_balances": [{"day": d, "balance": b} for d, b in self.eod_balances],
                "day_start_balance": round(self.day_start_balance, 2),
                "max_lots": self.max_lots, "daily_loss_limit": p.daily_loss,
                "payout": p.payout, "lost": self.lost, "blocked": self.blocked}


def fresh_state(p: Program, balance: float) -> RiskState:
    """The rule state of an account of program `p` that starts at `balance`."""
    hw = max(p.start, balance) if p.program != "live" else p.start
    return RiskState(p, hw, floor(p, hw), balance, day_max_lots(p, balance))


class Referee:
    def __init__(self, programs: dict[int, Program], balances: dict[int, float], now_ms: int,
                 sessions: bool) -> None:
        """`sessions` False (an always-open market) has no flat-by deadline."""
        self.sessions = sessions
        self.day: date = trading_date(now_ms)
        self.flat_done: date | None = None
        self.breaches: list[Breach] = []
        self.state: dict[int, RiskState] = {}
        for acc_id, p in programs.items():
            self.state[acc_id] = fresh_state(p, balances[acc_id])

    def reset(self, acc_id: int, balance: float) -> None:
        """The account starts again at `balance` as a fresh account of its program: no EOD
        history, no lock, no breaches (POST /admin/accounts/{id}/reset)."""
        self.state[acc_id] = fresh_state(self.state[acc_id].program, balance)
        self.breaches = [b for b in self.breaches if b.account != acc_id]

    # ---- time ---------------------------------------------------------------------------------
    def in_flat_window(self, now_ms: int) -> bool:
        """Between the day's flat-by deadline and its close (nothing may be added there)."""
        if not self.sessions:
            return False
        day = trading_date(now_ms)
        return is_trading_day(day) and flat_by_ms(day) <= now_ms < session_close_ms(day)

    def flat_by_due(self, now_ms: int) -> bool:
        """True once per trading day, at the first check inside the flat window."""
        if not self.in_flat_window(now_ms):
            return False
        day = trading_date(now_ms)
        if self.flat_done == day:
            return False
        self.flat_done = day
        return True

    def roll(self, now_ms: int, balances: dict[int, float]) -> list[int]:
        """Close the trading day when 17:00 CT has passed; the accounts to unblock."""
        day = trading_date(now_ms)
        if day == self.day:
            return []
        closing = self.day
        self.day = day
        counted = is_trading_day(closing) or not self.sessions
        unblocked = []
        for acc_id, st in self.state.items():
            balance = balances[acc_id]
            if counted:
                st.eod_balances.append((closing.isoformat(), round(balance, 2)))
                st.high_water = max(st.high_water, balance)
                st.floor = floor(st.program, st.high_water)
                st.max_lots = day_max_lots(st.program, balance)
            st.day_start_balance = balance
            st.violating.discard("daily_loss")
            if st.blocked:
                st.blocked = False
                if not st.lost:
                    unblocked.append(acc_id)
        return unblocked

    # ---- checks -------------------------------------------------------------------------------
    def check_lots(self, acc_id: int, lots: int, contract_id: str | None, now_ms: int
                   ) -> list[str]:
        """After fills: a cap exceeded, or a position added inside the flat window."""
        st = self.state[acc_id]
        before, st.lots = st.lots, lots
        if lots <= before:
            return []
        out = []
        if lots > st.max_lots * 10:
            out.append(self._record("max_position", acc_id, now_ms, {
                "lots": lots / 10, "max_lots": st.max_lots, "contract": contract_id}))
        if self.in_flat_window(now_ms):
            out.append(self._record("flat_by", acc_id, now_ms, {
                "lots": lots / 10, "contract": contract_id,
                "deadline": ms_to_iso(flat_by_ms(trading_date(now_ms)))}))
        return out

    def check_flat(self, acc_id: int, lots: int, contracts: list[str], now_ms: int) -> bool:
        """At the flat-by deadline: a breach when the account holds a position."""
        if lots == 0:
            return False
        self._record("flat_by", acc_id, now_ms, {
            "lots": lots / 10, "contract": contracts[0] if contracts else None,
            "contracts": contracts, "deadline": ms_to_iso(flat_by_ms(trading_date(now_ms)))})
        return True

    def check_equity(self, acc_id: int, balance: float, open_pnl: float, now_ms: int,
                     lots: int, contract_id: str | None) -> list[str]:
        """Marks: the MLL floor and the daily loss limit; the rules newly broken."""
        st = self.state[acc_id]
        equity = round(balance + open_pnl, 2)
        out = []
        figures = {"floor": round(st.floor, 2), "equity": equity, "balance": round(balance, 2),
                   "open_pnl": round(open_pnl, 2), "lots": lots / 10, "contract": contract_id}
        if equity <= st.floor:
            if "mll" not in st.violating:
                st.violating.add("mll")
                out.append(self._record("mll", acc_id, now_ms, figures))
        else:
            st.violating.discard("mll")
        limit = st.program.daily_loss
        if limit is not None:
            day_pnl = round(equity - st.day_start_balance, 2)
            if day_pnl <= -limit:
                if "daily_loss" not in st.violating:
                    st.violating.add("daily_loss")
                    out.append(self._record("daily_loss", acc_id, now_ms, {
                        **figures, "day_pnl": day_pnl, "limit": limit}))
        return out

    def mark_enforced(self, rules: list[str], acc_id: int) -> None:
        """The engine enforced these just-recorded breaches (liquidation, rejection, lock)."""
        for b in reversed(self.breaches):
            if b.account == acc_id and b.rule in rules:
                b.enforced = True
                rules = [r for r in rules if r != b.rule]
            if not rules:
                return

    def _record(self, rule: str, acc_id: int, now_ms: int, figures: dict[str, Any]) -> str:
        self.breaches.append(Breach(rule, acc_id, now_ms, figures))
        return rule
