"""The Topstep rules in the sim's trading engine: checked after every change, enforced.

The referee (sim/exchange/referee.py) records every breach whatever is enforced; this module asks it
after each change (a print, a quote, a fill, a request, time passing), then enforces what the
switch (`SIM_ENFORCE`, `POST /admin/rules`) holds: place-time rejections (the flat window, the
maximum position), liquidation and lock at the MLL floor (for good) and at the daily loss limit
(until the next 17:00 CT), liquidation without lock at the flat-by deadline, and the day roll.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from chillly.calendar import flat_by_ms, trading_date
from chillly.clock import ms_to_iso
from sim.exchange.accounts import Account
from sim.market.contracts import SimContract
from sim.exchange.state import EngineState
from sim.exchange.rules import RULES
from sim.exchange.wire import PlaceRequest, TradingError

log = logging.getLogger("sim.trading")


class Enforcement(EngineState):
    """Rule checks and their enforcement."""

    def on_clock(self, now: int) -> None:
        """Time passing: the 17:00 CT day roll, the flat-by deadline, the marks."""
        balances = {a: x.balance for a, x in self._accounts.items()}
        day = self.referee.day
        unblocked = self.referee.roll(now, balances)
        if self.referee.day != day:
            self.dirty = True
        for acc_id in unblocked:
            account = self._accounts[acc_id]
            account.can_trade = True
            self._emit_account(account)
        if self.referee.flat_by_due(now):
            self.dirty = True
            for acc_id, account in self._accounts.items():
                positions = self.book.open_positions(acc_id)
                lots = self._lots(acc_id)
                breached = self.referee.check_flat(acc_id, lots, [p.contract.id
                                                                  for p in positions], now)
                if "flat_by" in self.enforce:
                    self._liquidate(account, now, lock=False)
                    if breached:
                        self.referee.mark_enforced(["flat_by"], acc_id)
        self._after(now)
        self._flush()

    def _check_rules(self, account: Account, contract: SimContract, req: PlaceRequest,
                     now: int) -> None:
        """Place-time enforcement: the flat window and the maximum position (reductions pass)."""
        if not ({"flat_by", "max_position"} & self.enforce):
            return
        assert req.side is not None and req.size is not None
        before = self._exposure(account.id)
        after = self._exposure(account.id, (contract, req.side, req.size))
        if after <= before:
            return
        if "flat_by" in self.enforce and self.referee.in_flat_window(now):
            deadline = ms_to_iso(flat_by_ms(trading_date(now)))
            raise TradingError(5, f"Outside of trading hours: positions must be flat from "
                                  f"{deadline} until the session closes.")
        cap = self.referee.state[account.id].max_lots
        if "max_position" in self.enforce and after > cap * 10:
            raise TradingError(2, f"Order rejected: it could take the position to "
                                  f"{after / 10:g} lots, over the account's maximum position "
                                  f"of {cap} lots.")

    def _after(self, now: int, contract_id: str | None = None) -> None:
        """After any change: the referee's checks, then enforcement of what was broken.

        With `contract_id` (a print or a quote of it) only the accounts that filled or hold
        that contract can have changed; without it (time, requests) every account is checked.
        """
        if self._checking:
            return
        if contract_id is not None and not self._touched and not self.book.positions:
            return                                  # the hot path: a print, nobody exposed
        self._checking = True
        try:
            touched, self._touched = self._touched, {}
            if contract_id is None:
                ids = list(self._accounts)
            else:
                held = {a for (a, c) in self.book.positions if c == contract_id}
                ids = [a for a in self._accounts if a in touched or a in held]
            for acc_id in ids:
                account = self._accounts[acc_id]
                lots = self._lots(acc_id)
                where = touched.get(acc_id, contract_id)
                broken = self.referee.check_lots(acc_id, lots, where, now)
                broken += self.referee.check_equity(acc_id, account.balance,
                                                    self.open_pnl(acc_id), now, lots, where)
                if broken:
                    self.dirty = True
                    self.counters["breaches"] += len(broken)
                    log.warning("account %s breached %s", acc_id, ", ".join(broken))
                    self._enforce(account, broken, now)
        finally:
            self._checking = False

    def _enforce(self, account: Account, broken: list[str], now: int) -> None:
        st = self.referee.state[account.id]
        if "mll" in broken:
            st.lost = True
        done = []
        if "mll" in broken and "mll" in self.enforce:
            self._liquidate(account, now, lock=True)
            done.append("mll")
        if "daily_loss" in broken and "daily_loss" in self.enforce and not st.lost:
            st.blocked = True
            self._liquidate(account, now, lock=True)
            done.append("daily_loss")
        if done:
            self.referee.mark_enforced(done, account.id)

    def _liquidate(self, account: Account, now: int, lock: bool) -> None:
        """Cancel every working order, close every position at market; lock when asked."""
        self.counters["liquidations"] += 1
        self._flatten(account, now)
        self._touched.clear()
        if lock and account.can_trade:
            account.can_trade = False
            self._emit_account(account)

    def set_enforcement(self, rules: Iterable[str]) -> None:
        """Switch enforcement at run time (POST /admin/rules): saved state, like the rest."""
        self.enforce = set_enforce(rules)
        self.dirty = True


def set_enforce(rules: Iterable[str]) -> set[str]:
    """A checked set of rule names (sim/exchange/rules.py RULES)."""
    out = set(rules)
    unknown = out - set(RULES)
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; known: {list(RULES)}")
    return out
