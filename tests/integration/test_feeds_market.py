"""feed-market against the real sim: quotes, trades and depth on the bus, and the hub kept
alive and subscribed through drops (abrupt and with a SignalR close error), token expiry,
a token refreshed before it expires, and GatewayLogout; meanwhile feed-bars' finals stay exact
and the live bars built from prints are never final."""

from __future__ import annotations

from typing import Any

from chillly.messages import Bar, Depth, Heartbeat, Quote, Trade
from tests.integration.test_feeds_helpers import (Collect, Stack, assert_finals_match_venue,
                                                  stack_env)
from tests.support import aeventually


def hb(col: Collect, name: str = "feed-market") -> dict[str, Any]:
    got = [h for h in col.items if isinstance(h, Heartbeat) and h.name == name]
    return got[-1].counters if got else {}


async def flowing(col: Collect, kind: type, n: int = 5, timeout: float = 15.0) -> None:
    """Wait until `n` more messages of `kind` arrive (the feed is alive and subscribed)."""
    start = sum(isinstance(m, kind) for m in col.items)
    await aeventually(lambda: sum(isinstance(m, kind) for m in col.items) >= start + n,
                      timeout=timeout, what=f"{n} more {kind.__name__} messages")


async def test_market_data_flows_and_survives_drops_expiry_refresh_and_logout(procs, bus) -> None:  # type: ignore[no-untyped-def]
    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES", SIM_HUB_CLOSE_ON_EXPIRY="1",
                               HEARTBEAT_INTERVAL="0.2", FEED_LIVE_BARS="true"))
    stack = Stack(procs)
    md = Collect(bus, "quote.")
    bus.on("trade.", lambda env: md.items.append(env.message()))
    bus.on("depth.", lambda env: md.items.append(env.message()))
    hbs = Collect(bus, "hb.")
    bars = Collect(bus, "bar.1m.")
    await stack.start_sim()
    stack.start("subscriptions")
    stack.start("feed-market")
    stack.start("feed-bars")
    for kind in (Quote, Trade, Depth):
        await flowing(md, kind)
    depth = [m for m in md.items if isinstance(m, Depth)]
    assert depth[0].snapshot and len(depth[0].levels) > 0  # a book snapshot on subscribe
    quotes = [m for m in md.items if isinstance(m, Quote)]
    assert all(q.bid is not None and q.ask is not None for q in quotes[1:])  # merged
    trades = [m for m in md.items if isinstance(m, Trade)]
    assert all(t.price > 0 and t.size > 0 and t.aggressor in (0, 1) for t in trades)

    # Hub dropped every second, abruptly and then with a SignalR close error.
    for mode in ("abrupt", "close"):
        connects = hb(hbs).get("hub_connects", 0)
        stack.faults(drop_hubs_every_s=0.7, drop_mode=mode)
        await aeventually(lambda: hb(hbs).get("hub_connects", 0) >= connects + 3, timeout=15,
                          what=f"three reconnects after {mode} drops")
        stack.faults(drop_hubs_every_s=0)
        await flowing(md, Trade)
    snapshots = sum(isinstance(m, Depth) and m.snapshot for m in md.items)
    assert snapshots >= 6  # resubscribed after every reconnect (a fresh book each time)

    # Every token expires now and the sim closes the hubs: log in again, reconnect.
    logins = hb(hbs).get("venue_logins", 0)
    stack.faults(expire_tokens_now=True)
    await aeventually(lambda: hb(hbs).get("venue_logins", 0) > logins, timeout=15,
                      what="a new login after expiry")
    await flowing(md, Trade)

    # GatewayLogout (every token revoked), after which tokens live 120 market seconds: the
    # agent logs in again, then moves to a fresh token BEFORE each one expires (no 401s).
    bars_logins = hb(hbs, "feed-bars").get("venue_logins", 0)
    stack.faults(token_lifetime_s=120, logout_now=True)
    await aeventually(lambda: hb(hbs).get("hub_logouts", 0) >= 1, timeout=15,
                      what="GatewayLogout handled")
    await aeventually(lambda: hb(hbs, "feed-bars").get("venue_logins", 0) > bars_logins,
                      timeout=15, what="feed-bars logged in again")
    await flowing(md, Trade)
    refused = stack.counters().get("unauthorized", 0)
    reconnects = hb(hbs).get("hub_token_reconnects", 0)
    await aeventually(lambda: hb(hbs).get("hub_token_reconnects", 0) >= reconnects + 2,
                      timeout=20, what="two reconnects on a refreshed token")
    assert stack.counters().get("unauthorized", 0) == refused  # refreshed in time
    stack.faults(token_lifetime_s=None)
    await flowing(md, Trade)
    await flowing(md, Quote)
    assert stack.children["feed-market"].alive()
    assert stack.children["feed-market"].terminate() == 0  # SIGTERM: clean exit, hub closed

    # Through all of that the polled finals stayed exact, and the live bars from prints never
    # posed as finals.
    live = [b for b in bars.items if isinstance(b, Bar) and b.origin == "trades"]
    assert live and not any(b.final for b in live)
    es = live[0].contract
    assert len(bars.finals(es)) >= 3
    assert_finals_match_venue(stack, bars.finals(es))


async def test_a_quiet_market_hub_raises_the_stale_alarm_and_clears_it(procs, bus) -> None:  # type: ignore[no-untyped-def]
    # The sim sends its batched market events only every 3 real seconds: 180 market seconds of
    # silence between batches at speed 60, more than FEED_STALE_AFTER=60.
    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES", SIM_TICK_INTERVAL_S="3",
                               FEED_STALE_AFTER="60", FEED_STALE_MIN_REAL="0.5"))
    stack = Stack(procs)
    alarms = Collect(bus, "alarm.feed-market.")
    await stack.start_sim()
    stack.start("subscriptions")
    stack.start("feed-market")
    on = await aeventually(lambda: next((a for a in alarms.items if a.active), None),
                           timeout=20, what="a stale_feed alarm")
    assert on.code == "stale_feed" and on.name == "feed-market"
    await aeventually(lambda: any(not a.active for a in alarms.items[alarms.items.index(on):]),
                      timeout=20, what="the alarm cleared by new data")
