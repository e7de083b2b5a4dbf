"""A stream that goes silent while its connection stays up (issue 20, 2.13), on the real sim.

The sim's `silence_hubs_now` fault (POST /admin/faults) stops the data of the hub connections
open at that moment, per hub and per contract, while they stay connected and answer pings; a
resubscribe does not bring it back, a new connection does.

- One market contract silent while another flows: the hub as a whole is never quiet, so its own
  watchdog (stale_feed) cannot see it. feed-market raises `stale_contract` naming it after
  FEED_STALE_AFTER market seconds, resubscribes, then reconnects, and the contract's quotes come
  back; the alarm clears. (Before feeds/market_silence.py the contract stayed silent for good:
  no alarm, no reconnect.)
- The user hub silent on a flat account: the gateway raises no alarm and does not reconnect
  (a silent user hub is what a flat account's looks like: project-x-py issue 129).
"""

from __future__ import annotations

import asyncio
from typing import Any

from chillly import topics
from chillly.messages import Alarm, Heartbeat, Quote
from tests.integration.test_feeds_helpers import Collect, Stack, stack_env
from tests.support import aeventually

STALE_AFTER = 30.0          # market seconds (half a real second at 60x)


def last_counters(col: Collect) -> dict[str, Any]:
    got = [h for h in col.items if isinstance(h, Heartbeat)]
    return got[-1].counters if got else {}


def quotes_of(col: Collect, cid: str) -> int:
    return sum(1 for q in col.items if isinstance(q, Quote) and q.contract == cid)


async def test_one_silent_contract_is_noticed_resubscribed_reconnected_and_recovers(  # type: ignore[no-untyped-def]
        procs, bus) -> None:
    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES,NQ", HEARTBEAT_INTERVAL="0.2",
                               FEED_STALE_AFTER=str(STALE_AFTER), FEED_STALE_MIN_REAL="0.5"))
    stack = Stack(procs)
    quotes = Collect(bus, "quote.")
    alarms = Collect(bus, topics.alarm("feed-market"))
    beats = Collect(bus, topics.heartbeat("feed-market"))
    await stack.start_sim()
    stack.start("subscriptions")
    stack.start("feed-market")

    def contract(root: str) -> str | None:
        return next((q.contract for q in quotes.items
                     if isinstance(q, Quote) and f".{root}." in q.contract), None)
    await aeventually(lambda: contract("EP") and contract("ENQ"), timeout=30,
                      what="ES and NQ quotes")
    es, nq = contract("EP"), contract("ENQ")
    assert es is not None and nq is not None
    connections = stack.counters()["market_connections_total"]

    done = stack.faults(silence_hubs_now={"market": [es]})["done"]
    assert done == {"silence_hubs_now": 1}
    await aeventually(lambda: stack.counters()["market_silenced"] > 0, timeout=10,
                      what="the sim withholding ES")
    es_then, nq_then = quotes_of(quotes, es), quotes_of(quotes, nq)
    on = await aeventually(
        lambda: next((a for a in alarms.items if isinstance(a, Alarm) and a.active
                      and a.code == "stale_contract"), None),
        timeout=30, what="a stale_contract alarm")
    assert es in on.text and nq not in on.text
    # NQ kept flowing meanwhile: the hub was never quiet, its own watchdog never fired.
    assert quotes_of(quotes, nq) > nq_then
    assert not [a for a in alarms.items if isinstance(a, Alarm) and a.code == "stale_feed"]

    # The resubscribe cannot help on the silenced connection; the reconnect does.
    await aeventually(lambda: last_counters(beats).get("contract_reconnects", 0) >= 1,
                      timeout=30, what="a reconnect")
    assert last_counters(beats)["contract_resubscribes"] >= 1
    await aeventually(lambda: quotes_of(quotes, es) > es_then, timeout=30,
                      what="ES quotes again")
    assert stack.counters()["market_connections_total"] > connections
    await aeventually(
        lambda: any(isinstance(a, Alarm) and a.code == "stale_contract" and not a.active
                    for a in alarms.items[alarms.items.index(on):]),
        timeout=20, what="the stale_contract alarm cleared")
    # One silence, one escalation: no reconnect storm.
    await asyncio.sleep(1.0)
    assert last_counters(beats)["contract_reconnects"] == 1
