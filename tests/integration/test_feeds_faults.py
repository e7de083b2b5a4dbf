"""feed-bars under venue faults, against the real sim: more demand than budget, tokens that
expire mid-run, a 429 storm and random 500s. Nothing crashes, the sim never has to refuse a
request for rate in normal work (we stay under its budget: counted at the sim), and the final
1m stream still equals the venue's bars with no hole and no duplicate."""

from __future__ import annotations

import math

import pytest

from typing import Any

from chillly.clock import MINUTE_MS
from chillly.messages import Heartbeat
from tests.integration.test_feeds_helpers import (Collect, Stack, assert_finals_match_venue,
                                                  stack_env, wait_finals)
from tests.support import aeventually

SPEED = 120


def last_hb(col: Collect, name: str) -> dict[str, Any]:
    hbs = [h for h in col.items if isinstance(h, Heartbeat) and h.name == name]
    return hbs[-1].counters if hbs else {}


@pytest.mark.serial
async def test_bars_survive_token_expiry_429_storms_and_500s_within_budget(procs, bus) -> None:  # type: ignore[no-untyped-def]
    # Three contracts polled every 5 market seconds want 18 bars requests per 30 s; the budget
    # (and the sim's limit) is 10 per 30 s, so the budget is what paces the poller.
    procs.env.update(stack_env(
        speed=SPEED, DEFAULT_CONTRACTS="ES,NQ,MNQ", FEED_POLL_INTERVAL="5",
        FEED_BARS_BUDGET="10/30", SIM_RATE_BARS="10", SIM_RATE_BARS_WINDOW_S="30",
        HEARTBEAT_INTERVAL="0.2"))
    stack = Stack(procs)
    col = Collect(bus, "bar.1m.")
    hbs = Collect(bus, "hb.feed-bars.")
    await stack.start_sim()
    stack.start("subscriptions")
    stack.start("feed-bars")
    await aeventually(lambda: len({b.contract for b in col.items}) == 3, timeout=20,
                      what="bars of three contracts")
    contracts = sorted({b.contract for b in col.items})
    t0 = stack.market_now()
    base = stack.counters()
    for cid in contracts:
        await wait_finals(col, cid, 1, after=t0 + 3 * MINUTE_MS)
    now = stack.counters()          # read before t1 (and base after t0): every request
    t1 = stack.market_now()         # counted was made within [t0, t1]
    bars_requests = now.get("requests_bars", 0) - base.get("requests_bars", 0)
    # never refused for rate in normal work
    assert now.get("rate_limited", 0) == 0, {k: v for k, v in now.items() if "rate" in k}
    assert bars_requests <= 10 * ((t1 - t0) / 30_000 + 1) + 1
    assert last_hb(hbs, "feed-bars").get("budget_waits_bars", 0) > 0  # the budget did pace it

    # Tokens expire mid-run: every token dies now and new ones live 90 market seconds, so the
    # client must log in again, then refresh with validate before each exp.
    stack.faults(token_lifetime_s=90, expire_tokens_now=True)
    t2 = stack.market_now()
    for cid in contracts:
        await wait_finals(col, cid, 1, after=t2 + 4 * MINUTE_MS)
    hb = last_hb(hbs, "feed-bars")
    assert hb.get("venue_logins", 0) >= 2 and hb.get("venue_refreshes", 0) >= 1, hb
    stack.faults(token_lifetime_s=None)

    # A 429 storm: every API request refused with Retry-After: 1 for about two real seconds.
    # Judged by the bars requests the sim refused (each one in the storm is refused: counted
    # at the sim, however late the test reads the counters) against the storm's measured
    # length: one request per contract per Retry-After second, plus the one of each at either
    # end (12 for 2 s). A loaded test may end the storm late; the bound follows its length.
    before = stack.counters()
    t3 = stack.market_now()
    stack.faults(force_429=True)
    await aeventually(lambda: stack.market_now() >= t3 + 2 * SPEED * 1000, timeout=10,
                      what="two real seconds of 429s")
    stack.faults(force_429=False)
    t3_end = stack.market_now()
    during = stack.counters()
    storm = during.get("rate_limited_bars", 0) - before.get("rate_limited_bars", 0)
    seconds = math.ceil((t3_end - t3) / 1000 / SPEED)
    assert during.get("rate_limited", 0) > before.get("rate_limited", 0)  # the storm happened
    assert storm <= 3 * (seconds + 2), \
        f"{storm} bars requests in a {seconds} s storm: Retry-After not honoured"

    # Random 500s on half of the requests.
    stack.faults(rest_fail_rate=0.5)
    t4 = stack.market_now()
    for cid in contracts:
        await wait_finals(col, cid, 1, after=t4 + 2 * MINUTE_MS)
    stack.faults(rest_fail_rate=0.0)
    assert stack.counters().get("faulted_500", 0) > 0
    t5 = stack.market_now()
    for cid in contracts:
        await wait_finals(col, cid, 1, after=t5 + MINUTE_MS)

    assert stack.children["feed-bars"].alive() and stack.children["subscriptions"].alive()
    for cid in contracts:
        assert_finals_match_venue(stack, col.finals(cid))
