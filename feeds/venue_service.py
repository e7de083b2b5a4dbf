"""What every process that talks to the venue shares: one client, its counters in every
heartbeat, and the client closed on the way out."""

from __future__ import annotations

from typing import Any

from chillly.messages import Heartbeat
from chillly.process import Service
from feeds.client import ProjectXClient
from feeds.settings import FeedSettings


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

    async def on_stop(self) -> None:
        if hasattr(self, "client"):
            await self.client.aclose()
