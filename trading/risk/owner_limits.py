"""Per-strategy limits (strategies.toml): which contracts a strategy may trade, and its own
daily loss: past it the strategy alone is halted for the day (its orders cancelled, its share
closed), while the account and the other strategies go on.
"""

from __future__ import annotations

from trading import products
from trading.risk.config import StrategyLimits
from trading.risk.types import RULE_STRATEGY, Action, BookView, CancelEntries, Flatten
from trading.risk.figures import GateFigures


class OwnerLimits(GateFigures):
    """A strategy's own halt for the day."""

    def _owners(self, view: BookView, now_ms: int, out: list[Action]) -> None:
        """A strategy past its daily loss is halted alone: its orders cancelled, its share closed."""
        b = self.memory
        for owner, limits in self.cfg.strategies.items():
            if limits.max_daily_loss is None or owner in b.owner_halts:
                continue
            pnl = self.owner_pnl(view, owner)
            if pnl <= -limits.max_daily_loss:
                b.owner_halts[owner] = (f"day P&L {pnl:,.2f} reached its daily loss limit "
                                        f"-{limits.max_daily_loss:,.2f}")
                b.dirty = True
        for owner, reason in b.owner_halts.items():
            held = self.net(view, owner)
            if view.working(owner=owner) and self._once(("cancel", owner), now_ms):
                out.append(CancelEntries(f"{owner} halted: {reason}", RULE_STRATEGY, owner=owner))
            for cid in sorted(held):
                if self._once(("flatten", cid, owner), now_ms):
                    out.append(Flatten(f"{owner} halted: {reason}", RULE_STRATEGY, cid,
                                       owner=owner))


def allowed(contract: str, root: str, limits: StrategyLimits) -> bool:
    allowed = limits.contracts or frozenset()
    return contract in allowed or root in allowed or \
        any(products.symbol_of(a) == root for a in allowed)
