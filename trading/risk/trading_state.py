"""Trading hours and halts (topstep-rules.md: the session, the entry cut-off and flat window, the
venue's lock, the trader's own halt): which state the account is in now, ACTIVE, REDUCING or
HALTED, and the `chillly halt` / `chillly resume` latch that only a flat account may lift.
"""

from __future__ import annotations

from trading.risk.types import (
    ACTIVE, HALTED, REDUCING, RULE_FLAT, RULE_HALT, RULE_HOURS, RULE_VENUE, BookView,
)
from trading.risk.figures import GateFigures, ct


class TradingState(GateFigures):
    """The account's state by latch, venue lock, the day's limits and the clock."""

    def state(self, view: BookView, now_ms: int) -> tuple[str, str, str | None]:
        """(state, reason, rule) by latch, venue lock, the day's limits and the clock."""
        b = self.memory
        if not view.can_trade:
            return HALTED, "the venue has locked the account (canTrade false)", RULE_VENUE
        if b.manual_halt is not None:
            return HALTED, f"halted by hand: {b.manual_halt} (chillly resume when flat)", RULE_HALT
        if b.day_halt is not None:
            return HALTED, b.day_halt[1], b.day_halt[0]
        dl = self.deadlines(now_ms)
        if dl.close is None:
            return REDUCING, f"no session on {dl.day.isoformat()}", RULE_HOURS
        if now_ms >= dl.entry_cutoff:
            return REDUCING, (f"no new entries from {ct(dl.entry_cutoff)} CT until the "
                              f"17:00 CT reset (flat by {ct(dl.flat_by)} CT)"), RULE_FLAT
        return ACTIVE, "", None

    def halt(self, reason: str) -> tuple[str, str]:
        """`chillly halt`: latch HALTED; `due` then cancels and flattens."""
        self.memory.manual_halt = reason or "manual halt"
        self.memory.dirty = True
        return HALTED, self.memory.manual_halt

    def resume(self, view: BookView) -> tuple[bool, str]:
        """`chillly resume`: lift the manual latch, only when the account is flat."""
        held = self.net(view)
        if held:
            text = ", ".join(f"{c} {n:+d}" for c, n in sorted(held.items()))
            return False, f"not flat ({text}): flatten first"
        if self.memory.manual_halt is None:
            return True, "not halted by hand"
        self.memory.manual_halt = None
        self.memory.dirty = True
        return True, "manual halt lifted"
