"""Order rates (topstep-rules.md: fair use): every order action of the account and of each
owner within a rolling minute, counted before it is allowed, so that a runaway strategy is
stopped by the gate rather than by the venue.
"""

from __future__ import annotations

from collections import deque

from trading.risk.config import StrategyLimits
from trading.risk.types import ALLOW, RULE_RATE, Intent, Verdict
from trading.risk.figures import GateFigures

#: The fair-use window: a rolling minute.
MINUTE = 60_000


class OrderRates(GateFigures):
    """The per-minute allowance of order actions, for the account and for each owner."""

    def count_cancel(self, owner: str, now_ms: int) -> Verdict:
        """A cancel asked by `owner` (the trader's tools or a strategy; never the gate's own
        actions, which the gateway carries out directly): counted in the fair-use rate like any
        order action, refused when the minute's allowance is used up."""
        return self._action(owner, now_ms) or ALLOW

    def _action(self, owner: str, now_ms: int) -> Verdict | None:
        """An order action that adds no contracts (a cancel, a leg's modify): rate-checked and
        recorded."""
        verdict = self._rates(owner, now_ms, self.cfg.strategies.get(owner))
        if verdict is None:
            self._record(owner, now_ms)
        return verdict

    def _count(self, intent: Intent, now_ms: int) -> None:
        self.memory.contracts_today += intent.size
        self._record(intent.owner, now_ms)

    def _record(self, owner: str, now_ms: int) -> None:
        b = self.memory
        b.account_orders.append(now_ms)
        q = b.owner_orders.get(owner)
        if q is None:
            q = b.owner_orders[owner] = deque()
        q.append(now_ms)
        b.dirty = True

    def _rates(self, owner: str, now_ms: int, limits: StrategyLimits | None) -> Verdict | None:
        b = self.memory
        since = now_ms - MINUTE
        acct = b.account_orders
        while acct and acct[0] <= since:
            acct.popleft()
        cap = self.cfg.account_orders_per_minute
        if len(acct) >= cap:
            return self._reject(RULE_RATE, f"{len(acct)} orders in the last minute on the "
                                           f"account (limit {cap})", orders=len(acct), limit=cap)
        q = b.owner_orders.get(owner)
        if q is not None:
            while q and q[0] <= since:
                q.popleft()
            cap = self.cfg.strategy_orders_per_minute
            if limits is not None and limits.max_orders_per_minute is not None:
                cap = limits.max_orders_per_minute
            if len(q) >= cap:
                return self._reject(RULE_RATE, f"{len(q)} orders in the last minute from "
                                               f"{owner} (limit {cap})",
                                    orders=len(q), limit=cap)
        return None
