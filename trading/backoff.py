"""When an action the venue refused may be tried again (pure: time is given).

The gate's flatten is due on every pass while a position is held; when the venue refuses the
close (the market shut: "Outside of trading hours"), trying again on every pass spends the
venue's request budget (254 refusals in 45 s were seen) that the reconciliation and the next
real close need. Each key waits `first_ms` after its first refusal, twice as long after each
further one, at most `cap_ms`; an accepted attempt resets it."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    first_ms: int = 1_000
    cap_ms: int = 60_000
    _gap: dict[Hashable, int] = field(default_factory=dict)
    _next: dict[Hashable, int] = field(default_factory=dict)

    def ready(self, key: Hashable, now_ms: int) -> bool:
        """May `key` be tried at `now_ms`?"""
        return now_ms >= self._next.get(key, now_ms)

    def refused(self, key: Hashable, now_ms: int) -> int:
        """`key` was refused at `now_ms`: the wait before the next try (ms)."""
        gap = min(self.cap_ms, self._gap[key] * 2) if key in self._gap else self.first_ms
        self._gap[key] = gap
        self._next[key] = now_ms + gap
        return gap

    def accepted(self, key: Hashable) -> bool:
        """`key` went through: the waits start over. True if it had been refused."""
        self._next.pop(key, None)
        return self._gap.pop(key, None) is not None

    def failing(self) -> list[Hashable]:
        """Keys refused and not yet accepted since."""
        return list(self._gap)
