"""Loss limits (topstep-rules.md: the maximum loss limit's floor and its buffer, the daily loss
limit, a strategy's own daily loss): the floor, the halt they latch, and the worst case an
entry would add. Equity is unknown without a price for what is held, so the blind check lives
here too: it guards the loss checks, not the position size.
"""

from __future__ import annotations

import math

from trading.marks import blind, describe
from trading.risk.config import StrategyLimits
from trading.risk.types import (
    RULE_BLIND, RULE_DAILY_LOSS, RULE_MLL, RULE_STRATEGY, BookView, Intent, Verdict,
)
from trading.risk.figures import GateFigures, exits, is_entry


class LossLimits(GateFigures):
    """The MLL floor and buffer, the daily loss limits, and the worst case of an entry."""

    def floor(self) -> float:
        """F = min(S, max(S - D, H - D)): it moves only when an EOD is recorded at 17:00 CT."""
        c = self.cfg
        if c.fixed_floor is not None:
            return c.fixed_floor
        s, d = c.starting_balance, c.mll_allowance
        h = self.memory.high_water if self.memory.high_water is not None else s
        return min(s, max(s - d, h - d))

    def _rule_halt(self, view: BookView, equity: float) -> tuple[str, str] | None:
        """The MLL buffer or the daily loss limit reached now: (rule, reason)."""
        c = self.cfg
        fl = self.floor()
        if equity - fl <= c.mll_buffer:
            return RULE_MLL, (f"equity {equity:,.2f} is within the buffer {c.mll_buffer:,.2f} "
                              f"of the floor {fl:,.2f}: flat and halted until 17:00 CT")
        if c.daily_loss_limit is not None:
            pnl = equity - self._sod(view)
            if pnl <= -c.daily_loss_limit:
                return RULE_DAILY_LOSS, (f"day P&L {pnl:,.2f} reached the daily loss limit "
                                         f"-{c.daily_loss_limit:,.2f}: halted until 17:00 CT")
        return None

    def set_high_water(self, value: float) -> None:
        """`chillly risk --set-high-water X`: the highest EOD balance, when history is unknown.
        It may add history the gateway did not see, never contradict what it recorded: a value
        that is not finite, or below a recorded EOD balance (which would lower the floor), is
        refused with ValueError."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"the high-water mark must be a finite number, not {value}")
        recorded = max(self.memory.eod.values(), default=None)
        if recorded is not None and value < recorded:
            day = max(d for d, b in self.memory.eod.items() if b == recorded)
            raise ValueError(f"{value:,.2f} is below the EOD balance {recorded:,.2f} recorded "
                             f"on {day}: the high-water mark can only be raised")
        self.memory.high_water = value
        self.memory.dirty = True

    def blind(self, view: BookView) -> dict[str, int | None]:
        """Held contracts without a fresh mark (contract -> age ms, None: never priced)."""
        return blind(self.net(view), view.quotes, view.now_ms, int(self.cfg.mark_max_age_s * 1000))

    def _blind(self, view: BookView, net: dict[str, int]) -> Verdict | None:
        """Without a price for what is held, equity (and so the MLL and daily loss checks) is
        unknown: an entry that adds risk waits for a price."""
        ages = blind(net, view.quotes, view.now_ms, int(self.cfg.mark_max_age_s * 1000)) \
            if net else None
        if not ages:
            return None
        return self._reject(RULE_BLIND, f"no price for {describe(ages)}: quotes and the venue's "
                                        f"bars are both silent, so equity is unknown; entries "
                                        f"are refused until a price returns (exits, cancels and "
                                        f"flatten still work)", blind=sorted(ages))

    def worst_loss(self, contract: str, size: int, sl_ticks: int | None) -> float:
        """Loss if the order fills and its stop (or the default stop) is hit, fees and slip in."""
        _, _, fee, value = self._m(contract)
        c = self.cfg
        ticks = (sl_ticks if sl_ticks else c.default_stop_ticks) + c.slippage_ticks
        return size * (ticks * value + 2 * fee)

    def _losses(self, intent: Intent, view: BookView, net: dict[str, int],
                limits: StrategyLimits | None) -> Verdict | None:
        c = self.cfg
        risk = self.worst_loss(intent.contract, intent.size, intent.sl_ticks)
        pending = 0.0
        for o in view.orders:
            if is_entry(o) and o.order_id != intent.order_id and not exits(o, net):
                pending += self.worst_loss(o.contract, o.remaining, None)
        equity = self.equity(view)
        fl = self.floor()
        if equity - pending - risk <= fl + c.mll_buffer:
            return self._reject(RULE_MLL, f"worst case {risk:,.2f} (plus {pending:,.2f} working) "
                                          f"from equity {equity:,.2f} reaches the floor "
                                          f"{fl:,.2f} + buffer {c.mll_buffer:,.2f}",
                                equity=equity, floor=fl, worst_case=risk, working=pending)
        pnl = equity - self._sod(view)
        if c.daily_loss_limit is not None and pnl - pending - risk <= -c.daily_loss_limit:
            return self._reject(RULE_DAILY_LOSS, f"day P&L {pnl:,.2f} less worst case "
                                                 f"{risk + pending:,.2f} reaches the daily "
                                                 f"loss limit -{c.daily_loss_limit:,.2f}",
                                day_pnl=pnl, worst_case=risk + pending)
        if limits is not None and limits.max_daily_loss is not None:
            own = self.owner_pnl(view, intent.owner)
            if own - risk <= -limits.max_daily_loss:
                return self._reject(RULE_STRATEGY, f"{intent.owner}: day P&L {own:,.2f} less "
                                                   f"worst case {risk:,.2f} reaches its daily "
                                                   f"loss limit -{limits.max_daily_loss:,.2f}",
                                    day_pnl=own, worst_case=risk)
        return None
