"""A stream that goes silent while its connection stays up (issue 20, 2.13), on the real sim.

The sim's `silence_hubs_now` fault (POST /admin/faults) stops the data of the hub connections
open at that moment, per hub and per contract, while they stay connected and answer pings; a
resubscribe does not bring it back, a new connection does.

- One market contract silent while another flows: the hub as a whole is never quiet, so its own
  watchdog (stale_feed) cannot see it. feed-market raises `stale_contract` naming it after
  FEED_STALE_AFTER market seconds, resubscribes, then reconnects, and the contract's quotes come
  back; the alarm clears. (Before feeds/market_silence.py the contract stayed silent for good:
  no alarm, no reconnect.)
- The market hub silent while the gateway holds a position: the gate's marks fall back to the
  venue's forming 1m bar (RISK_MARK_MAX_AGE) meanwhile, and the feed's quotes come back.
- The user hub silent on a flat account: the gateway raises no alarm and does not reconnect
  (a silent user hub is what a flat account's looks like: project-x-py issue 129).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from chillly import topics
from chillly.messages import Alarm, Heartbeat, Quote
from tests.integration.test_feeds_helpers import Collect, Stack, stack_env
from tests.integration.test_risk_blind import SPEED, Rig, _rig
from tests.sim_client import set_faults
from tests.support import aeventually

STALE_AFTER = 30.0          # market seconds; FEED_STALE_MIN_REAL (2 real s) rules at 60x


def last_counters(col: Collect) -> dict[str, Any]:
    got = [h for h in col.items if isinstance(h, Heartbeat)]
    return got[-1].counters if got else {}


def quotes_of(col: Collect, cid: str) -> int:
    return sum(1 for q in col.items if isinstance(q, Quote) and q.contract == cid)


async def test_one_silent_contract_is_noticed_resubscribed_reconnected_and_recovers(  # type: ignore[no-untyped-def]
        procs, bus) -> None:
    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES,NQ", HEARTBEAT_INTERVAL="0.2",
                               FEED_STALE_AFTER=str(STALE_AFTER), FEED_STALE_MIN_REAL="2"))
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


def silence(rig: Rig, spec: dict[str, Any]) -> int:
    """The sim's silence fault; how many connections it silenced."""
    return int(set_faults(rig.base, silence_hubs_now=spec)["done"]["silence_hubs_now"])


def sim_counters(rig: Rig) -> dict[str, Any]:
    return dict(httpx.get(f"{rig.base}/admin/counters", timeout=5).json()["counters"])


# Not serial: the gate's fallback (RISK_MARK_MAX_AGE 120 market s, 2 real s, then a venue poll)
# comes well before the feed's reconnect (FEED_STALE_MIN_REAL, 5 real s). The polls go every
# RISK_MARK_POLL_INTERVAL 60 market s (1 real s): at the default 3 market s (50 real ms at 60x)
# they queue on the gateway's bars budget (one run: 61 retrieveBars, 615 budget waits), which
# 1x never does. (The `blind` that rose and cleared within a millisecond in CI was the runner
# judging blindness at a later instant than it decided its polls: gateway/gate_runner.py.)
async def test_the_gates_marks_fall_back_while_the_market_hub_is_silent(tmp_path: Path) -> None:
    async for rig in _rig(tmp_path, feed=True, DEFAULT_CONTRACTS="ES",
                          FEED_STALE_MIN_REAL="5", RISK_MARK_MAX_AGE="120",
                          RISK_MARK_POLL_INTERVAL="60"):
        await aeventually(lambda: rig.quotes > 0, timeout=20, what="quotes from feed-market")
        r = await rig.submit("buy", 2)
        assert r["status"] == "accepted", r
        await aeventually(lambda: rig.held() == 2, timeout=10, what="2 ES held")
        got = rig.counters()["received"]
        await aeventually(lambda: rig.counters()["received"] > got + 50, timeout=10,
                          what="quotes reaching the gateway")
        polled = rig.counters()["marks_venue"]
        assert silence(rig, {"market": [rig.es]}) == 1
        # The quotes stop (the feed stays connected): the gate marks from the venue's bar.
        await aeventually(lambda: rig.counters().get("marks_venue", 0) > polled, timeout=15,
                          what="venue marks while the quotes are silent")
        silent_quotes = rig.quotes
        # The feed notices (FEED_STALE_AFTER), reconnects, and the quotes come back.
        await aeventually(lambda: rig.quotes > silent_quotes + 5, timeout=30,
                          what="quotes after the feed's reconnect")
        assert sim_counters(rig)["market_silenced"] > 0
        assert rig.held() == 2 and rig.counters()["marks_blind_alarms"] == 0, rig.counters()


# Not serial: judged by what did not happen (no reconnect, no alarm) over ten market minutes.
async def test_a_quiet_user_hub_on_a_flat_account_raises_nothing(tmp_path: Path) -> None:
    async for rig in _rig(tmp_path):
        assert rig.held() == 0
        await aeventually(lambda: rig.hb.get("n", 0) >= 2, timeout=10, what="heartbeats")
        before, connects = sim_counters(rig), rig.counters()["hub_connects"]
        assert before["user_connections"] == 1
        assert silence(rig, {"user": "*"}) == 1
        # Ten minutes of market time with nothing from the user hub (the account is flat).
        start = rig.clock.now_ms()
        await aeventually(lambda: rig.clock.now_ms() > start + 600_000,
                          timeout=600 / SPEED + 10, interval=0.2)
        beats = rig.hb["n"]
        await aeventually(lambda: rig.hb.get("n", 0) >= beats + 2, timeout=10, what="heartbeats")
        after = sim_counters(rig)
        assert after["user_connections_total"] == before["user_connections_total"]
        assert after["user_connections"] == 1
        assert rig.counters()["hub_connects"] == connects
        assert rig.alarms() == {}, rig.alarms()
