"""An account started again: POST /admin/accounts/{id}/reset (loopback tooling, docs/sim.md).

Topstep lets a trader reset a lost Combine; tests and demos need the same to go on with an
account the referee closed. A reset flattens the account (working orders cancelled, positions
closed at market, or dropped without a trade when the market cannot close them), then gives it
`balance` (default its program's starting balance), canTrade true, and the rule state of a
fresh account of its program (floor, high water, no EOD history, no lock), and forgets its
breaches. Orders and trades before the reset stay in the account's history, as on the venue.
"""

from __future__ import annotations

import logging
from typing import Any

from sim.exchange.state import EngineState

log = logging.getLogger("sim.trading")


class Resets(EngineState):
    """Account resets."""

    def reset_account(self, acc_id: int, balance: float | None = None
                      ) -> dict[str, Any] | None:
        """Start the account again; its risk view afterwards, None for an unknown account."""
        account = self._accounts.get(acc_id)
        if account is None:
            return None
        now = self.clock.now_ms()
        # The closes below are the reset's own: no rule is checked (or enforced) on them.
        checking, self._checking = self._checking, True
        try:
            self._flatten(account, now)
            for pos in self.book.open_positions(acc_id):
                event = self.book.drop(acc_id, pos.contract.id)
                if event is not None:
                    self._out.append(event)
        finally:
            self._checking = checking
        self._touched.pop(acc_id, None)
        start = self.programs[acc_id].start if balance is None else float(balance)
        account.balance = round(start, 2)
        account.can_trade = True
        self.referee.reset(acc_id, account.balance)
        self.counters["resets"] += 1
        self.dirty = True
        self._emit_account(account)
        log.info("account %s reset to a balance of %.2f", acc_id, account.balance)
        self._after(now)
        self._flush()
        return self.risk(acc_id)
