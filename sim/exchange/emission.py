"""User-hub events of the sim's trading engine: buffered during a change, sent when it is done.

Every event leaves through the injected `emit` callback (`emit(event_name, account_id,
{"action": N, "data": {...}})`, nulls already removed) only after the state change that made it
is complete, so a hub that raises cannot leave trading state half-changed: the engine counts
the failure and goes on.
"""

from __future__ import annotations

import logging

from sim.exchange.accounts import Account
from sim.exchange.state import EngineState
from sim.exchange.wire import ACT_UPDATE, EV_ACCOUNT, EV_ORDER, Order

log = logging.getLogger("sim.trading")


class Emission(EngineState):
    """The event buffer and its flush."""

    def _emit_account(self, account: Account) -> None:
        self._out.append((EV_ACCOUNT, account.id,
                          {"action": ACT_UPDATE, "data": account.to_api()}))

    def _emit_order(self, order: Order) -> None:
        self._out.append((EV_ORDER, order.account_id,
                          {"action": ACT_UPDATE, "data": order.to_api(hub=True)}))

    def _flush(self) -> None:
        """Send buffered events only after the state change is complete."""
        if not self._out:
            return
        self.dirty = True
        out, self._out = self._out, []
        for name, account_id, envelope in out:
            try:
                self._emit(name, account_id, envelope)
            except Exception:  # a broken hub must not corrupt trading state
                self.counters["emit_errors"] += 1
                log.exception("emit %s for account %s failed", name, account_id)
