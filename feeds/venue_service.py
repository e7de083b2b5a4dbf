"""What every process that talks to the venue shares: one client, its counters in every
heartbeat, and the client closed on the way out."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from chillly.bus import RequestTimeout

from chillly.codec import Envelope
from chillly.messages import Heartbeat, SubscriptionSet
from chillly.process import Service
from topstepx.client import ProjectXClient
from topstepx.contracts import is_contract_id
from feeds.settings import FeedSettings


log = logging.getLogger("feeds")


class VenueService(Service):
    settings_cls = FeedSettings

    def connect_venue(self) -> ProjectXClient:
        """The process's one client (one token, one budget per endpoint class)."""
        self.client = ProjectXClient.from_settings(self.settings, self.clock)  # type: ignore[arg-type]
        return self.client

    def venue_counters(self) -> dict[str, Any]:
        """Extra heartbeat counters of a subclass (hub agents, normalisers)."""
        return {}

    def heartbeat(self) -> Heartbeat:
        if hasattr(self, "client"):
            self.counters.update(self.client.stats())
            self.counters.update(self.venue_counters())
        return super().heartbeat()

    def set_of(self, env: Envelope) -> list[str] | None:
        """The contracts of a `subs.set.` message, or None (counted `rejected_sets`) when it is
        not a set of contract ids: one bad element means the whole message is not a real set,
        and following it would drop the real contracts until the next broadcast."""
        msg = env.message()
        contracts = msg.contracts if isinstance(msg, SubscriptionSet) else None
        if contracts is None or not all(type(c) is str and is_contract_id(c) for c in contracts):
            self.counters["rejected_sets"] = self.counters.get("rejected_sets", 0) + 1
            return None
        return list(contracts)

    async def ask_subscription_set(self, have_set: asyncio.Event) -> list[str] | None:
        """At start: ask the subscriptions service for the set until it answers, or until a
        broadcast set it first (`have_set`; then None). The service may still be starting, so
        a time-out or an error reply is logged and asked again."""
        while not have_set.is_set():
            try:
                reply = await self.bus.request("subscriptions", "list", {}, timeout=1.0,
                                               attempts=1)
            except RequestTimeout:
                continue
            if have_set.is_set():
                return None
            if reply.ok and isinstance(reply.result, dict):
                return [c for c in reply.result.get("contracts", []) if isinstance(c, str)]
            log.warning("subscriptions answered %s; asking again", reply.error)
            await asyncio.sleep(1.0)
        return None

    async def on_stop(self) -> None:
        if hasattr(self, "client"):
            await self.client.aclose()
