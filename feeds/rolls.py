"""Contract roll: a subscription by symbol follows the venue's active contract.

A subscription made by symbol ("ES") holds the contract the venue called active when it was
resolved; at expiry that contract goes silent. The subscriptions service therefore checks each
such subscription (`follow: true`):

- every check (FEED_ROLL_CHECK_INTERVAL real seconds) it asks the venue about the contract it
  holds (Contract/searchById); when the venue says `activeContract: false`, the symbol is
  resolved again;
- once per trading date (chillly.calendar, 17:00 CT) the symbol is resolved again anyway, in case
  the venue moved the front month without marking the old one inactive yet.

When the symbol now resolves to another contract, the subscription moves to it (the feeds follow
the new set) and a `ContractRoll` goes out on `roll.<symbol>.`. A subscription by contract id
never moves. This module decides; `feeds/subscriptions.py` applies and publishes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from topstepx.contracts import ContractNotFound, ContractResolver
from topstepx.errors import ApiError, VenueError
from topstepx.models import Contract

log = logging.getLogger("feeds.rolls")

INACTIVE = "the venue says the contract is not active"
DAILY = "daily re-resolve"


@dataclass(frozen=True)
class Roll:
    """One subscription moving from `old` to `new`."""

    symbol: str
    old: str
    new: Contract
    reason: str


def follows(entry: dict[str, Any]) -> bool:
    """Whether a saved subscription follows its symbol (saved before rolls existed: yes, if it
    has a symbol: those came from DEFAULT_CONTRACTS symbols or `chillly subscribe ES`)."""
    flag = entry.get("follow")
    return bool(entry.get("symbol")) if flag is None else bool(flag)


class RollWatch:
    """Finds the subscriptions whose symbol moved to another contract at the venue."""

    def __init__(self, resolver: ContractResolver) -> None:
        self.resolver = resolver
        self.checked_day: dict[str, date] = {}   # symbol -> trading date of its last re-resolve
        self.counters = {"roll_checks": 0, "rolls": 0, "roll_check_failures": 0}

    async def still_active(self, contract_id: str) -> bool:
        """The venue's current word on one contract (cache bypassed)."""
        try:
            fresh = await self.resolver.client.contract_by_id(contract_id)
        except ApiError:
            return False          # an id the venue no longer knows is not active either
        self.resolver.by_id[fresh.id] = fresh
        return bool(fresh.active_contract)

    async def front(self, symbol: str) -> Contract:
        """The symbol's active contract now (resolved afresh at the venue)."""
        return await self.resolver.resolve(symbol)

    async def check(self, entries: list[dict[str, Any]], today: date) -> list[Roll]:
        """Rolls due among `entries` (read only); venue errors are counted, logged, retried at
        the next check."""
        out: list[Roll] = []
        for e in entries:
            if not follows(e):
                continue
            symbol = str(e["symbol"]).upper()
            current = str(e["contract"])
            self.counters["roll_checks"] += 1
            try:
                reason = None
                if not await self.still_active(current):
                    reason = INACTIVE
                elif self.checked_day.get(symbol) != today:
                    reason = DAILY
                if reason is None:
                    continue
                new = await self.front(symbol)
                self.checked_day[symbol] = today
            except ContractNotFound as exc:
                self.counters["roll_check_failures"] += 1
                log.warning("%s: no active contract to roll to (%s); keeping %s",
                            symbol, exc, current)
                continue
            except VenueError as exc:
                self.counters["roll_check_failures"] += 1
                log.warning("roll check of %s failed: %s (next check retries)", symbol, exc)
                continue
            if new.id != current:
                out.append(Roll(symbol, current, new, reason))
        return out
