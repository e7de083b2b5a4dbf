"""The `feed-market` process: the market hub for the subscribed contracts, onto the bus.

One `HubAgent` keeps the market hub connected; on every (re)connect it subscribes quotes,
trades and depth of every contract in the current subscription set, and follows set changes
live. Hub payloads go through `ticks.TickNormaliser` to `quote.<id>.`, `trade.<id>.` and
`depth.<id>.` (and with FEED_LIVE_BARS=true a partial 1m bar from prints, origin "trades").
A stale feed (no market data for FEED_STALE_AFTER market seconds while the market is open and
something is subscribed) raises `Alarm(code="stale_feed")` on `alarm.feed-market.` and forces a
reconnect; the alarm clears (active=false) with the next message. One contract silent while
the others flow (feeds/market_silence.py) is resubscribed, then the hub reconnected, under
`Alarm(code="stale_contract")`, cleared when that contract's data comes back.
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
from feeds.market_silence import ContractSilence
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
        self.silence = ContractSilence(int(s.feed_stale_after * 1000), s.feed_stale_min_real,
                                       market_hours(s))
        self.agent.on("GatewayQuote", self._on_quote)
        self.agent.on("GatewayTrade", self._on_trade)
        self.agent.on("GatewayDepth", self._on_depth)
        self.counters.update({"quotes": 0, "trades": 0, "depth": 0, "live_bars": 0,
                              "foreign": 0, "stale_contracts": 0, "contract_resubscribes": 0,
                              "contract_reconnects": 0})
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
        self.silence.follow(contracts, self.clock.now_ms())
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
        self.silence.restart(list(self.contracts), self.clock.now_ms())
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
        if self.silence.seen(pair[0], self.clock.now_ms()):
            log.info("%s: data again", pair[0])
            self._stale_alarm()
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

    # ------------------------------------------------------------------ silent contracts

    def _stale_alarm(self) -> None:
        stale = sorted(self.silence.stale)
        self.alarm("stale_contract", bool(stale),
                   f"no market data for {', '.join(stale)} while the hub is connected"
                   if stale else "every contract's data flows")

    async def _watch_contracts(self) -> None:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        step = max(0.05, s.feed_stale_after / 4)
        while True:
            await self.clock.sleep(step)
            if not self.agent.connected.is_set():
                continue
            now = self.clock.now_ms()
            before = set(self.silence.stale)
            acts = self.silence.check(now, self.agent.quiet_ms(now))
            if self.silence.stale != before:
                self.counters["stale_contracts"] += len(self.silence.stale - before)
                self._stale_alarm()
            for cid in acts.resubscribe:
                log.warning("%s: no data for %gs of market time: resubscribing", cid,
                            s.feed_stale_after)
                self.counters["contract_resubscribes"] += 1
                for method in STREAMS:
                    await self.agent.send(method.replace("Subscribe", "Unsubscribe", 1), [cid])
                for method in STREAMS:
                    await self.agent.send(method, [cid])
            if acts.reconnect:
                log.warning("%s: still no data after resubscribing: reconnecting",
                            ", ".join(acts.reconnect))
                self.counters["contract_reconnects"] += 1
                self.agent.reconnect("silent contract")

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        await asyncio.gather(self._ask_set(), self.agent.run(), self.client.auth.keep_fresh(),
                             self._watch_contracts())


def cli(args: argparse.Namespace) -> int:
    return run_service(FeedMarketService)
