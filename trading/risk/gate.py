"""The risk gate's pure core: no order may breach a Topstep rule (../shared/topstep-rules.md).

`RiskGate` implements the gateway's seam (trading/risk/types.py). `check(intent, view)` answers
every order before it reaches the venue: allow, or reject naming the rule with the figures.
`due(view, now_ms)` runs on every quote, fill and clock tick and returns what the gateway must
do now: change the trading state, cancel working entries, flatten. It does no I/O: time is the
view's, the calendar is injected, and what must survive a restart lives in its `RiskMemory`.

Exposure is counted in figures.py. An order that only reduces (opposite the net, and with the other working
orders on that side still no bigger than the position) is always allowed unless the account is
HALTED; everything else passes every rule in turn, the first that fails names the rejection.

The rules themselves live one family a module (figures, loss_limits, position_limits,
order_rates, owner_limits, trading_state); this module only orders them: which applies to an
order, in which order, and what is due on each tick.
"""

from __future__ import annotations

from typing import Any

from trading.risk.types import (
    ACTIVE, ALLOW, HALTED, REDUCING, RULE_CONTRACT, RULE_FLAT, RULE_HALT, RULE_HOURS,
    RULE_STRATEGY, Action, BookView, Flatten, Intent, SetTradingState, Verdict,
)
from trading.risk.figures import ACCOUNT, ct, exits
from trading.risk.loss_limits import LossLimits
from trading.risk.order_rates import OrderRates
from trading.risk.owner_limits import OwnerLimits, allowed
from trading.risk.position_limits import PositionLimits
from trading.risk.trading_state import TradingState


#: The trading tools' owner: a trader may still reduce by hand while HALTED.
MANUAL = "manual"


class RiskGate(LossLimits, PositionLimits, OrderRates, OwnerLimits, TradingState):
    """One account's gate (the `Gate` protocol), plus the halt / resume / report commands."""

    def check(self, intent: Intent, view: BookView) -> Verdict:
        """Allow, or reject with the rule and a sentence with the figures."""
        if intent.protective:
            # A stop / target leg only reduces risk while it is no bigger than what it
            # protects: moving it passes, growing it is weighed; either counts in the rate.
            verdict = self._leg(intent, view)
            if verdict is None and intent.kind == "modify":
                verdict = self._action(intent.owner, view.now_ms)
            return verdict or ALLOW
        now_ms = view.now_ms
        dl = self._sync(view, now_ms)
        cid = intent.contract
        self._learn(cid, intent.tick_size, intent.tick_value, intent.symbol)
        if cid in self.inactive:
            return self._reject(RULE_CONTRACT, f"{cid} is not the front month")
        if dl.close is None or now_ms >= dl.close:
            return self._reject(RULE_HOURS, f"the market is closed ({ct(now_ms)} CT)")
        state, reason, rule = self.state(view, now_ms)
        owner = intent.owner
        net = self.net(view)
        limits = self.cfg.strategies.get(owner)
        if self.reduces(intent, view, net):
            if state == HALTED and owner != MANUAL:
                return self._reject(rule or RULE_HALT, f"HALTED: {reason}")
            verdict = self._rates(owner, now_ms, limits)
            if verdict is not None:
                return verdict
            self._count(intent, now_ms)
            return ALLOW
        if state != ACTIVE:
            return self._reject(rule or RULE_FLAT, f"{state}: {reason}; only orders that reduce")
        if owner in self.memory.owner_halts:
            return self._reject(RULE_STRATEGY, f"{owner} is halted for the day: "
                                               f"{self.memory.owner_halts[owner]}")
        if limits is not None and limits.contracts is not None \
                and not allowed(cid, self._root(cid), limits):
            return self._reject(RULE_STRATEGY, f"{owner} may not trade {intent.symbol or cid} "
                                               f"(allowed: {', '.join(sorted(limits.contracts))})")
        verdict = (self._rates(owner, now_ms, limits) or self._hedging(intent, view, net)
                   or self._position(intent, view, net, limits) or self._contracts(intent)
                   or self._blind(view, net) or self._losses(intent, view, net, limits))
        if verdict is not None:
            return verdict
        self._count(intent, now_ms)
        return ALLOW

    def due(self, view: BookView, now_ms: int) -> list[Action]:
        """State changes, cancels and flattens due now; each repeated at most once per
        `retry_ms` while the view shows it not yet carried out."""
        dl = self._sync(view, now_ms)
        b = self.memory
        out: list[Action] = []
        if b.day_halt is None and view.can_trade:
            hit = self._rule_halt(view, self.equity(view))
            if hit is not None:
                b.day_halt = hit
                b.dirty = True
        state, reason, rule = self.state(view, now_ms)
        if state != b.state or reason != b.state_reason:
            b.state, b.state_reason, b.state_rule = state, reason, rule
            b.dirty = True
            self._sent.clear()          # a new state acts at once
        if state != view.trading_state and self._once(("state", state, reason), now_ms):
            out.append(SetTradingState(state, reason, rule))  # type: ignore[arg-type]
        if state == HALTED and view.can_trade or state == REDUCING and (
                dl.close is None or now_ms >= dl.flatten_start):
            # Flatten cancels every working order (legs included), then closes at market. Not
            # while an order that reduces is in motion (sent, or filled but not yet in the
            # venue's position): closing the stale, larger position would reverse it.
            net = self.net(view)
            orders = view.orders
            moving = [o for o in orders if o.order_id < 0 and exits(o, net)]
            if moving and (orders or net):
                self.held_back += 1
            if (orders or net) and not moving and self._once(
                    ("flatten", tuple(sorted(net.items()))), now_ms):
                out.append(Flatten(reason, rule))
        else:
            self._orphans(view, now_ms, out)
        self._owners(view, now_ms, out)
        return out


    def report(self, view: BookView, now_ms: int) -> dict[str, Any]:
        """The risk view (`chillly risk --json`)."""
        dl = self._sync(view, now_ms)
        c, b = self.cfg, self.memory
        equity = self.equity(view)
        fl = self.floor()
        state, reason, rule = self.state(view, now_ms)
        marks = [("entry cut-off", dl.entry_cutoff), ("flatten start", dl.flatten_start),
                 ("flat by", dl.flat_by), ("daily reset", dl.end)]
        name, at = next(((n, t) for n, t in marks if t > now_ms), ("daily reset", dl.end))
        days = sorted(b.eod.items())
        pnls = [b2 - b1 for (_, b1), (_, b2) in zip(days, days[1:])]
        total = sum(pnls)
        owners = sorted({p.owner for p in view.positions if p.owner != ACCOUNT}
                        | set(c.strategies))
        return {
            "account": view.account_id, "program": c.program, "size": c.size,
            "starting_balance": c.starting_balance, "trading_date": dl.day.isoformat(),
            "balance": view.balance, "equity": round(equity, 2), "floor": round(fl, 2),
            "distance_to_floor": round(equity - fl, 2), "buffer": c.mll_buffer,
            "high_water": b.high_water, "sod_balance": b.sod_balance,
            "day_pnl": round(equity - self._sod(view), 2), "daily_loss_limit": c.daily_loss_limit,
            "lots_used": round(self.exposure(self.net(view), view.orders), 2),
            "lots_allowed": self.max_lots(), "micro_weight": c.micro_weight,
            "contracts_today": b.contracts_today, "daily_contracts": c.daily_contracts,
            "state": state, "reason": reason, "rule": rule, "manual_halt": b.manual_halt,
            "next_deadline": {"name": name, "at_ms": at, "ct": ct(at),
                              "in_s": round((at - now_ms) / 1000.0, 1)},
            "rejections": b.rejections, "blind": sorted(self.blind(view)),
            "strategies": {o: {"day_pnl": round(self.owner_pnl(view, o), 2),
                               "lots_used": round(self.exposure(self.net(view, o),
                                                                view.working(owner=o)), 2),
                               "halted": b.owner_halts.get(o)} for o in owners},
            "consistency": {"best_day": max(pnls, default=0.0), "total_profit": total,
                            "best_day_share": (max(pnls) / total) if pnls and total > 0
                            else None},
        }
