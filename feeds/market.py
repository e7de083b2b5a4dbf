"""The `feed-market` process: the market hub for the subscribed contracts, onto the bus.

One `HubAgent` keeps the market hub connected; on every (re)connect it subscribes quotes,
trades and depth of every contract in the current subscription set, and follows set changes
live. Hub payloads go through `ticks.TickNormaliser` to `quote.<id>.`, `trade.<id>.` and
`depth.<id>.` (and with FEED_LIVE_BARS=true a partial 1m bar from prints, origin "trades").
A stale feed (no market data for FEED_STALE_AFTER market seconds while the market is open and
something is subscribed) raises `Alarm(code="stale_feed")` on `alarm.feed-market.` and forces a
reconnect; the alarm clears (active=false) with the next message.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from chillly import topics
from chillly.process import run_service
from feeds.venue_service import VenueService
from topstepx.hub import HubAgent
from feeds.settings import FeedSettings, market_hours
from feeds.ticks import TickNormaliser, split_args

log = logging.getLogger("feeds.market")

STREAMS = ("SubscribeContractQuotes", "SubscribeContractTrades", "SubscribeContractMarketDepth")


class FeedMarketService(VenueService):
    name = "feed-market"
    settings_cls = FeedSettings

    async def on_start(self) -> None:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        self.connect_venue()
        self.norm = TickNormaliser(live_bars=s.feed_live_bars)
        self.contracts: list[str] = []
        self.have_set = asyncio.Event()
        self.agent = HubAgent(
            "market-hub", s.topstep_market_hub_url, self.client.auth, self.clock,
            on_open=self._subscribe_all, stale_after_s=s.feed_stale_after,
            expects_data=lambda: bool(self.contracts), on_alarm=self._alarm,
            backoff_min_s=s.feed_hub_backoff_min, backoff_max_s=s.feed_hub_backoff_max,
            stale_min_real_s=s.feed_stale_min_real, market_open=market_hours(s))
        self.agent.on("GatewayQuote", self._on_quote)
        self.agent.on("GatewayTrade", self._on_trade)
        self.agent.on("GatewayDepth", self._on_depth)
        self.counters.update({"quotes": 0, "trades": 0, "depth": 0, "live_bars": 0,
                              "foreign": 0})
        self.bus.on(topics.subscription_set(), self._on_set)

    def venue_counters(self) -> dict[str, Any]:
        if not hasattr(self, "agent"):
            return {}
        return {**{f"hub_{k}": v for k, v in self.agent.counters.items()},
                "rejected": self.norm.rejected}

    # ------------------------------------------------------------------ subscription set

    def _on_set(self, env: Any) -> None:
        contracts = self.set_of(env)
        if contracts is not None:
            self._spawn(self.apply_set(contracts))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks: set[asyncio.Future[Any]] = getattr(self, "_tasks", set())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def apply_set(self, contracts: list[str]) -> None:
        old = list(self.contracts)
        self.contracts = list(contracts)
        self.have_set.set()
        if old == contracts:
            return
        log.info("following %s", ", ".join(contracts) or "nothing")
        for cid in contracts:
            if cid not in old:
                for method in STREAMS:
                    await self.agent.send(method, [cid])
        for cid in old:
            if cid not in contracts:
                self.norm.forget(cid)
                for method in STREAMS:
                    await self.agent.send(method.replace("Subscribe", "Unsubscribe", 1), [cid])

    async def _subscribe_all(self, agent: HubAgent) -> None:
        for cid in list(self.contracts):
            for method in STREAMS:
                await agent.send(method, [cid])

    async def _ask_set(self) -> None:
        contracts = await self.ask_subscription_set(self.have_set)
        if contracts is not None:
            await self.apply_set(contracts)

    # ------------------------------------------------------------------ hub events

    def _contract(self, args: Any) -> tuple[str, Any] | None:
        pair = split_args(args)
        if pair is None:
            self.norm.rejected += 1
            return None
        if pair[0] not in self.contracts:
            self.counters["foreign"] += 1  # e.g. in flight after an unsubscribe
            return None
        return pair

    def _on_quote(self, args: Any) -> None:
        pair = self._contract(args)
        if pair is None:
            return
        q = self.norm.quote(*pair)
        if q is not None:
            self.bus.publish(topics.quote(pair[0]), q)
            self.counters["quotes"] += 1

    def _on_trade(self, args: Any) -> None:
        pair = self._contract(args)
        if pair is None:
            return
        trades, bar = self.norm.trades(*pair)
        topic = topics.trade(pair[0])
        for tr in trades:
            self.bus.publish(topic, tr)
        self.counters["trades"] += len(trades)
        if bar is not None:
            self.bus.publish(topics.bar("1m", pair[0]), bar)
            self.counters["live_bars"] += 1

    def _on_depth(self, args: Any) -> None:
        pair = self._contract(args)
        if pair is None:
            return
        d = self.norm.depth(*pair)
        if d is not None:
            self.bus.publish(topics.depth(pair[0]), d)
            self.counters["depth"] += 1

    def _alarm(self, code: str, active: bool, text: str) -> None:
        log.warning("alarm %s %s: %s", code, "ON" if active else "off", text)
        self.alarm(code, active, text)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        await asyncio.gather(self._ask_set(), self.agent.run(), self.client.auth.keep_fresh())


def cli(args: argparse.Namespace) -> int:
    return run_service(FeedMarketService)
