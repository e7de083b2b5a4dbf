"""Roll decisions (feeds/rolls.py) against a scripted venue: which subscriptions move, when,
and what a venue error or a missing front month does (nothing moves, the failure is counted)."""

from __future__ import annotations

from datetime import date

import httpx

from feeds.rolls import DAILY, INACTIVE, RollWatch, follows
from tests.unit.test_feeds_client import Venue, ok
from topstepx.contracts import ContractResolver

Z26 = {"id": "CON.F.US.EP.Z26", "name": "ESZ6", "symbolId": "F.US.EP", "activeContract": True,
       "tickSize": 0.25, "tickValue": 12.5, "description": "E-mini S&P 500: December 2026"}
H27 = dict(Z26, id="CON.F.US.EP.H27", name="ESH7", description="E-mini S&P 500: March 2027")
ES = {"contract": "CON.F.US.EP.Z26", "symbol": "ES", "follow": True}
BY_ID = {"contract": "CON.F.US.EP.Z26", "symbol": "ES", "follow": False}
DAY1, DAY2 = date(2026, 12, 9), date(2026, 12, 10)


def venue(by_id: dict, listed: list[dict]) -> Venue:
    v = Venue()
    v.routes["/api/Contract/searchById"] = lambda b, t: ok(contract=by_id)
    v.routes["/api/Contract/search"] = lambda b, t: ok(contracts=listed)
    v.routes["/api/Contract/available"] = lambda b, t: ok(contracts=listed)
    return v


async def test_the_venue_calling_the_held_contract_inactive_rolls_a_symbol_not_an_id() -> None:
    v = venue(dict(Z26, activeContract=False), [dict(Z26, activeContract=False), H27])
    async with v.client() as cl:
        rolls = await RollWatch(ContractResolver(cl)).check([ES, BY_ID], DAY1)
    assert [(r.symbol, r.old, r.new.id, r.reason) for r in rolls] == [
        ("ES", "CON.F.US.EP.Z26", "CON.F.US.EP.H27", INACTIVE)]


async def test_once_per_trading_date_the_symbol_is_resolved_again() -> None:
    listed = [Z26]
    v = venue(Z26, listed)
    async with v.client() as cl:
        watch = RollWatch(ContractResolver(cl))
        assert await watch.check([ES], DAY1) == []          # first check: resolved, same
        searches = v.count("/api/Contract/search")
        listed[:] = [dict(Z26, activeContract=False), H27]  # the venue moved the front month
        assert await watch.check([ES], DAY1) == []          # same day: by-id says active, no search
        assert v.count("/api/Contract/search") == searches
        rolls = await watch.check([ES], DAY2)               # the next trading date: re-resolved
    assert [(r.new.id, r.reason) for r in rolls] == [("CON.F.US.EP.H27", DAILY)]


async def test_no_front_month_or_a_venue_error_keeps_the_subscription() -> None:
    v = venue(dict(Z26, activeContract=False), [dict(Z26, activeContract=False)])
    async with v.client(read_retries=0) as cl:
        watch = RollWatch(ContractResolver(cl))
        assert await watch.check([ES], DAY1) == []
        v.routes["/api/Contract/searchById"] = lambda b, t: httpx.Response(503)
        assert await watch.check([ES], DAY1) == []
    assert watch.counters["roll_check_failures"] == 2 and watch.counters["rolls"] == 0


def test_saved_entries_from_before_rolls_follow_when_they_have_a_symbol() -> None:
    assert follows({"contract": "CON.F.US.EP.Z26", "symbol": "ES"})
    assert not follows({"contract": "CON.F.US.EP.Z26", "symbol": None})
    assert not follows(BY_ID)


async def test_a_symbol_cache_saves_the_search_within_its_ttl_only() -> None:
    """The gateway's cache (GATEWAY_SYMBOL_CACHE_S): one venue search per TTL, not per order;
    after the TTL the symbol follows the venue's active contract again."""
    listed = [Z26]
    now = [0.0]
    v = venue(Z26, listed)
    async with v.client() as cl:
        r = ContractResolver(cl, symbol_ttl_s=30, monotonic=lambda: now[0])
        assert (await r.resolve("ES")).id == Z26["id"]
        searches = v.count("/api/Contract/search")
        listed[:] = [dict(Z26, activeContract=False), H27]   # the venue rolled
        now[0] = 29.0
        assert (await r.resolve("es")).id == Z26["id"]         # cached: no search
        assert v.count("/api/Contract/search") == searches
        now[0] = 31.0
        assert (await r.resolve("ES")).id == H27["id"]         # expired: searched, rolled
        uncached = ContractResolver(cl)
        await uncached.resolve("ES")
        await uncached.resolve("ES")
        assert v.count("/api/Contract/search") == searches + 3  # no TTL: a search each time
