"""One contract's stream silent while the market hub stays connected and its other contracts flow.

The hub agent (topstepx/hub.py) notices a hub that sends nothing at all for FEED_STALE_AFTER
market seconds and reconnects. The real venue also stops one contract's quotes for minutes with
the connection up, pings answered and other contracts still arriving (project-x-py issues 97,
141, 143): the hub-wide watchdog never fires, since the hub is not quiet. This watch judges each
subscribed contract on its own, while the market is open: silent for FEED_STALE_AFTER market
seconds (and FEED_STALE_MIN_REAL real ones) -> resubscribe it; still silent after another
FEED_STALE_AFTER -> reconnect the hub. A hub silent as a whole is left to the hub agent, so the
two never act on the same silence. Pure: the caller passes the time and carries out the actions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Actions:
    """What one check asks of the feed."""

    resubscribe: list[str] = field(default_factory=list)
    reconnect: list[str] = field(default_factory=list)


class ContractSilence:
    def __init__(self, stale_after_ms: int, min_real_s: float,
                 market_open: Callable[[int], bool],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_ms = stale_after_ms
        self.min_real_s = min_real_s
        self.market_open = market_open
        self.monotonic = monotonic
        self._last: dict[str, tuple[int, float]] = {}   # market ms, real s of the last data
        self._resubscribed: set[str] = set()
        self.stale: set[str] = set()                   # silent contracts not yet recovered

    def restart(self, contracts: list[str], now_ms: int) -> None:
        """A new connection subscribed `contracts`: each one's silence counts from now."""
        real = self.monotonic()
        self._last = {cid: (now_ms, real) for cid in contracts}
        self._resubscribed.clear()
        self.stale &= set(contracts)

    def follow(self, contracts: list[str], now_ms: int) -> None:
        """The subscription set changed: new contracts count from now, gone ones are forgotten."""
        real = self.monotonic()
        self._last = {cid: self._last.get(cid, (now_ms, real)) for cid in contracts}
        self._resubscribed &= set(contracts)
        self.stale &= set(contracts)

    def seen(self, cid: str, now_ms: int) -> bool:
        """Data for `cid`; True when it ends that contract's silence."""
        if cid in self._last:
            self._last[cid] = (now_ms, self.monotonic())
        self._resubscribed.discard(cid)
        if cid in self.stale:
            self.stale.discard(cid)
            return True
        return False

    def check(self, now_ms: int, hub_quiet_ms: int) -> Actions:
        """One step: `hub_quiet_ms` is the hub's own silence (data of any contract)."""
        out = Actions()
        if not self.market_open(now_ms) or hub_quiet_ms >= self.stale_after_ms:
            # Closed: nothing is expected. All silent: the hub agent's watchdog acts.
            real = self.monotonic()
            self._last = {cid: (now_ms, real) for cid in self._last}
            if not self.market_open(now_ms):
                self.stale.clear()
                self._resubscribed.clear()
            return out
        real = self.monotonic()
        for cid, (last_ms, last_real) in self._last.items():
            if now_ms - last_ms < self.stale_after_ms or real - last_real < self.min_real_s:
                continue
            self.stale.add(cid)
            self._last[cid] = (now_ms, real)
            if cid in self._resubscribed:
                out.reconnect.append(cid)
            else:
                self._resubscribed.add(cid)
                out.resubscribe.append(cid)
        return out
