"""Position size (topstep-rules.md: the maximum position, the scaling plan's tier of the day, the
daily contract count, hedging within a product family, a strategy's own lot cap): what may be
held or reached, which order only reduces, and the bracket legs left without their position.
"""

from __future__ import annotations

from trading.risk.config import StrategyLimits
from trading.risk.types import (
    RULE_DAILY_CONTRACTS, RULE_HEDGING, RULE_MAX_POSITION, RULE_SCALING, RULE_STRATEGY, Action,
    BookView, CancelOrders, Intent, Verdict,
)
from trading.risk.figures import GateFigures, direction, exits, is_entry, orphan_part


class PositionLimits(GateFigures):
    """Caps on what can be held: lots reachable, the day's contracts, opposing positions."""

    def max_lots(self) -> float:
        tier = self.memory.tier_lots
        return self.cfg.max_lots if tier is None else min(self.cfg.max_lots, tier)

    def reduces(self, intent: Intent, view: BookView, net: dict[str, int]) -> bool:
        """True when the order can only bring the account's position in its contract to zero."""
        n = net.get(intent.contract, 0)
        d = direction(intent.side)
        if n == 0 or (n > 0) == (d > 0):
            return False
        pending = intent.size
        for o in view.orders:
            if o.contract == intent.contract and o.side == intent.side and is_entry(o) \
                    and o.order_id != intent.order_id:
                pending += o.remaining
        return pending <= abs(n)

    def _leg(self, intent: Intent, view: BookView) -> Verdict | None:
        """A modify that grows a bracket leg: at most the position it protects (the account's
        net opposite the leg, plus its entry's unfilled part while the entry works), and the
        account's exposure with it within the cap."""
        if intent.kind != "modify":
            return None
        old = next((o for o in view.orders if o.order_id == intent.order_id), None)
        if old is not None and intent.size <= old.size:
            return None
        net = self.net(view)
        n = net.get(intent.contract, 0)
        d = direction(intent.side)
        protects = abs(n) if n and (n > 0) != (d > 0) else 0
        parent = old.parent_id if old is not None else None
        for o in view.orders:
            if parent is not None and o.order_id in (parent, -parent) and o.side != intent.side:
                protects += o.remaining
        if intent.size > protects:
            return self._reject(RULE_MAX_POSITION, f"a stop or target leg of {intent.size} would "
                                                   f"be larger than the {protects} lot(s) it "
                                                   f"protects on {intent.symbol or intent.contract}",
                                size=intent.size, protects=protects)
        limits = self.cfg.strategies.get(intent.owner)
        return self._position(intent, view, net, limits)

    def _hedging(self, intent: Intent, view: BookView, net: dict[str, int]) -> Verdict | None:
        families = self.cfg.families
        fam = families.get(self._root(intent.contract))
        if fam is None:
            return None
        d = direction(intent.side)
        for cid, n in net.items():
            if cid != intent.contract and (n > 0) != (d > 0) \
                    and families.get(self._root(cid)) == fam:
                return self._reject(RULE_HEDGING, f"{'buying' if d > 0 else 'selling'} "
                                                  f"{intent.symbol or intent.contract} opposes "
                                                  f"the open {cid} {n:+d} (family {fam})")
        for o in view.orders:
            if o.contract != intent.contract and o.side != intent.side and is_entry(o) \
                    and families.get(self._root(o.contract)) == fam \
                    and not exits(o, net):
                return self._reject(RULE_HEDGING, f"{intent.symbol or intent.contract} opposes "
                                                  f"a working entry on {o.contract} "
                                                  f"(family {fam})")
        return None

    def _position(self, intent: Intent, view: BookView, net: dict[str, int],
                  limits: StrategyLimits | None) -> Verdict | None:
        extra = (intent.contract, direction(intent.side), intent.size)
        used = self.exposure(net, view.orders, extra, skip=intent.order_id)
        cap = self.max_lots()
        if used > cap + 1e-9:
            tier = self.memory.tier_lots is not None and cap < self.cfg.max_lots
            what = "the scaling tier of the day" if tier else "the maximum position"
            return self._reject(RULE_SCALING if tier else RULE_MAX_POSITION,
                                f"{used:g} lots reachable with this order (positions plus "
                                f"working entries, micros x{self.cfg.micro_weight:g}) would pass "
                                f"{what} {cap:g}", lots=used, allowed=cap)
        if limits is not None and limits.max_lots is not None:
            mine = self.net(view, intent.owner)
            own = [o for o in view.orders if o.owner == intent.owner]
            used = self.exposure(mine, own, extra, skip=intent.order_id)
            if used > limits.max_lots + 1e-9:
                return self._reject(RULE_STRATEGY, f"{intent.owner}: {used:g} lots would pass "
                                                   f"its limit {limits.max_lots:g}",
                                    lots=used, allowed=limits.max_lots)
        return None

    def _contracts(self, intent: Intent) -> Verdict | None:
        today, cap = self.memory.contracts_today, self.cfg.daily_contracts
        if today + intent.size > cap:
            return self._reject(RULE_DAILY_CONTRACTS, f"{today} contracts today + {intent.size} "
                                                      f"would pass the daily count {cap}",
                                contracts_today=today, limit=cap)
        return None

    def _orphans(self, view: BookView, now_ms: int, out: list[Action]) -> None:
        """Cancel legs whose position is gone (flat, or now on the leg's own side)."""
        orders = view.orders
        if not orders:
            return
        net = self.net(view)
        ids = {o.order_id for o in orders}
        dead = tuple(o.order_id for o in orders if (o.parent_id is not None or o.protective)
                     and o.order_id > 0 and orphan_part(o, net, ids) == o.remaining
                     and o.remaining > 0)
        if dead and self._once(("orphans", dead), now_ms):
            out.append(CancelOrders(dead, "bracket legs left without their position",
                                    RULE_MAX_POSITION))
