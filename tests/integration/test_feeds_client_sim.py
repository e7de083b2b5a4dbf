"""The venue client and a user-hub agent, in this process, against the real sim: every REST
endpoint of projectx-api.md §3 parsed into the typed models, mutating calls sent exactly once
(an unknown outcome under a 500 is counted at the sim), and a user hub that resubscribes after a
drop and raises no stale alarm while quiet."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chillly.clock import MINUTE_MS, SystemClock, iso_to_ms
from topstepx.client import ProjectXClient
from topstepx.contracts import ContractNotFound, ContractResolver
from topstepx.errors import ApiError, OutcomeUnknown
from topstepx.hub import HubAgent, user_events, user_hub_subscriber
from tests.integration.test_feeds_helpers import Stack, stack_env
from tests.support import aeventually

SPEED = 60.0


@pytest.fixture
async def venue(procs):  # type: ignore[no-untyped-def]
    procs.env.update(stack_env(speed=SPEED))
    stack = Stack(procs)
    await stack.start_sim()
    clock = SystemClock(SPEED, iso_to_ms(procs.env["CLOCK_ANCHOR"]))
    client = ProjectXClient(stack.base, "trader", "key", clock)
    yield stack, client
    await client.aclose()


async def test_every_endpoint_parses_and_mutations_are_sent_once(venue) -> None:  # type: ignore[no-untyped-def]
    stack, cl = venue
    assert await cl.ping() == "pong"
    accounts = await cl.search_accounts()
    assert accounts and accounts[0].id and accounts[0].can_trade is not None
    acc = accounts[0].id

    resolver = ContractResolver(cl)
    es = await resolver.resolve("ES")
    assert es.id.startswith("CON.F.US.EP.") and es.active_contract and es.tick_size == 0.25
    assert (await resolver.resolve(es.id)).id == es.id
    assert (await cl.contract_by_id(es.id)).tick_value == 12.5
    assert len(await cl.available_contracts()) >= 9
    with pytest.raises(ContractNotFound):
        await resolver.resolve("ZZZ")

    # A window of closed minutes only: a minute that closes between the two reads (the clock
    # runs 60x) would be in the second and not the first.
    now = cl.clock.now_ms()
    now -= now % MINUTE_MS + MINUTE_MS
    whole = await cl.bars_between(es.id, now - 300 * MINUTE_MS, now)
    paged = await cl.bars_between(es.id, now - 300 * MINUTE_MS, now, page_limit=70)
    assert len(whole) >= 250 and whole == paged  # paging backwards loses nothing
    with pytest.raises(ApiError) as bad_unit:
        await cl.retrieve_bars(es.id, now - MINUTE_MS, now, unit=9)
    assert bad_unit.value.code == 2  # RetrieveBarErrorCode.UnitInvalid

    order_id = await cl.place_order(acc, es.id, type=2, side=0, size=1, custom_tag="feeds-1")
    assert any(o.id == order_id for o in await cl.search_orders(acc, now - MINUTE_MS))
    assert (await cl.order_by_id(acc, order_id)).id == order_id
    orders, total = await cl.query_orders(acc, page_size=10, include_total_count=True)
    assert any(o.id == order_id for o in orders) and (total is None or total >= 1)
    await aeventually(lambda: cl.search_open_positions(acc), timeout=10, what="a position")
    positions = await cl.search_open_positions(acc)
    assert positions[0].contract_id == es.id and positions[0].size == 1
    trades = await cl.search_trades(acc, now - MINUTE_MS)
    assert trades and trades[0].profit_and_loss is None  # an opening half-turn
    limit = await cl.place_order(acc, es.id, type=1, side=0, size=1, limit_price=100.0)
    await cl.modify_order(acc, limit, limit_price=101.0)
    assert any(o.id == limit for o in await cl.search_open_orders(acc))
    await cl.cancel_order(acc, limit)
    with pytest.raises(ApiError):
        await cl.cancel_order(acc, limit)  # already cancelled: the venue says no

    # Under 500s a mutating call is sent once and reported unknown; a read is retried.
    from tests import sim_client as testing

    paths = lambda: testing.counters(stack.base)["paths"]  # noqa: E731
    before = paths()
    stack.faults(rest_fail_rate=1.0)
    with pytest.raises(OutcomeUnknown):
        await cl.partial_close_position(acc, es.id, 1)
    with pytest.raises(OutcomeUnknown):
        await cl.close_position(acc, es.id)
    with pytest.raises(OutcomeUnknown):
        await cl.place_order(acc, es.id, type=2, side=1, size=1)
    stack.faults(rest_fail_rate=0.0)
    after = paths()
    for path in ("/api/position/partialclosecontract", "/api/position/closecontract",
                 "/api/order/place"):
        assert after.get(path, 0) - before.get(path, 0) == 1, path  # sent once, never retried
    await cl.close_position(acc, es.id)
    await cl.logout()


async def test_user_hub_agent_resubscribes_after_drops_and_stays_quiet_without_alarm(venue) -> None:  # type: ignore[no-untyped-def]
    stack, cl = venue
    acc = (await cl.search_accounts())[0].id
    es = await ContractResolver(cl).resolve("ES")
    alarms: list[Any] = []
    events: list[tuple[str, Any]] = []
    agent = HubAgent("user-hub", f"{stack.base}/hubs/user", cl.auth, cl.clock,
                     on_open=user_hub_subscriber(lambda: [acc]), stale_after_s=30,
                     expects_data=lambda: False,  # a quiet user hub is normal
                     on_alarm=lambda *a: alarms.append(a), backoff_min_s=0.05)
    for name in ("GatewayUserOrder", "GatewayUserTrade", "GatewayUserPosition",
                 "GatewayUserAccount"):
        agent.on(name, lambda args, n=name: events.extend((n, e) for e in user_events(args)))
    task = asyncio.ensure_future(agent.run())
    try:
        def count(name: str, since: int = 0) -> int:
            return sum(n == name for n, _ in events[since:])

        await aeventually(lambda: count("GatewayUserAccount") > 0, timeout=10,
                          what="the account snapshot")  # answers the LAST subscription
        for round_ in range(2):
            mark = len(events)
            await cl.place_order(acc, es.id, type=2, side=round_, size=1)
            await aeventually(lambda: all(count(n, mark) for n in (
                "GatewayUserOrder", "GatewayUserTrade", "GatewayUserPosition",
                "GatewayUserAccount")), timeout=10, what="order, fill, position, account events")
            seen, connects = count("GatewayUserAccount"), agent.counters["connects"]
            stack.faults(drop_hubs_now=True)
            await aeventually(lambda: agent.counters["connects"] > connects
                              and count("GatewayUserAccount") > seen, timeout=10,
                              what="a reconnect and a fresh account snapshot")
        # quiet for well over stale_after (market time): no alarm for the user hub
        quiet_from = cl.clock.now_ms()
        await aeventually(lambda: cl.clock.now_ms() > quiet_from + 90_000, timeout=5)
        assert alarms == []
        order = next(e for n, e in events if n == "GatewayUserOrder")
        assert order[1].get("accountId") == acc and "id" in order[1]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
