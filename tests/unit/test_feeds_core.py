"""Pure parts of the feeds: JWT exp, token refresh, rate budget, final-bar dedup, contract
matching, tick normalisation, clock ticks."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from chillly.clock import MINUTE_MS, ManualClock, iso_to_ms
from topstepx.auth import TokenManager, jwt_exp_ms, refresh_due_ms
from feeds.bars import closing_buckets
from topstepx.budget import ON_ANSWER, RateBudget, priority
from topstepx.contracts import matches, pick, symbol_of
from feeds.finals import FinalTracker
from topstepx.hub import user_events, with_token
from topstepx.models import Contract, VenueBar
from feeds.ticks import TickNormaliser

T0 = iso_to_ms("2026-11-24T15:00:00Z")  # a Tuesday, market open


def jwt(claims: dict) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'HS256'})}.{enc(claims)}.c2ln"


def vb(t: int, o: float = 1, h: float = 2, l: float = 0.5, c: float = 1.5, v: int = 10) -> VenueBar:  # noqa: E741
    return VenueBar(t=t, o=o, h=h, l=l, c=c, v=v)


# ------------------------------------------------------------------ JWT and tokens

def test_jwt_exp_is_read_from_the_payload_without_a_signature_check() -> None:
    assert jwt_exp_ms(jwt({"exp": 1_800_000_000})) == 1_800_000_000_000
    assert jwt_exp_ms(jwt({"sub": "x"})) is None
    assert jwt_exp_ms("not-a-jwt") is None
    assert jwt_exp_ms("a.!!!.c") is None


def test_refresh_is_due_before_exp_but_not_before_four_fifths_of_the_life() -> None:
    assert refresh_due_ms(0, 86_400_000, 300_000) == 86_400_000 - 300_000
    assert refresh_due_ms(0, 10_000, 300_000) == 8_000  # a 10 s token refreshes at 8 s


async def test_token_manager_refreshes_with_validate_and_relogs_in_when_it_fails() -> None:
    clock = ManualClock(1_000_000)
    calls: list[str] = []
    state = {"validate_ok": True, "n": 0}

    def mint() -> str:
        state["n"] += 1
        return jwt({"exp": (clock.now_ms() + 100_000) // 1000, "n": state["n"]})

    async def login() -> str:
        calls.append("login")
        return mint()

    async def validate(tok: str) -> str | None:
        calls.append("validate")
        return mint() if state["validate_ok"] else None

    tm = TokenManager(clock, login, validate, refresh_before_s=300)
    first = await tm.token()
    assert calls == ["login"]
    assert await tm.token() == first  # cached
    clock.advance(81_000)  # past 4/5 of a 100 s life
    second = await tm.token()
    assert second != first and calls == ["login", "validate"]
    state["validate_ok"] = False
    clock.advance(81_000)
    third = await tm.token()
    assert third not in (first, second) and calls[-2:] == ["validate", "login"]


async def test_keep_fresh_refreshes_on_time_without_any_call() -> None:
    clock = ManualClock(0)
    n = {"validate": 0}

    async def login() -> str:
        return jwt({"exp": (clock.now_ms() + 100_000) // 1000})

    async def validate(tok: str) -> str | None:
        n["validate"] += 1
        return jwt({"exp": (clock.now_ms() + 100_000) // 1000, "n": n["validate"]})

    tm = TokenManager(clock, login, validate)
    task = asyncio.ensure_future(tm.keep_fresh(retry_s=0.01))
    await tm.token()
    for _ in range(3):
        clock.set(tm.refresh_at_ms)
        for _ in range(5):
            await asyncio.sleep(0)
    task.cancel()
    assert n["validate"] == 3 and clock.now_ms() < tm.exp_ms


async def test_keep_fresh_follows_a_token_replaced_by_a_login() -> None:
    clock = ManualClock(0)
    life = {"ms": 1_000_000}
    n = {"validate": 0}

    async def login() -> str:
        return jwt({"exp": (clock.now_ms() + life["ms"]) // 1000})

    async def validate(tok: str) -> str | None:
        n["validate"] += 1
        return jwt({"exp": (clock.now_ms() + life["ms"]) // 1000, "n": n["validate"]})

    tm = TokenManager(clock, login, validate)
    await tm.token()  # a long token: refresh due at 800 s
    task = asyncio.ensure_future(tm.keep_fresh(retry_s=0.01))
    await asyncio.sleep(0)
    life["ms"] = 100_000
    await tm.refresh(stale=tm.current, relogin=True)  # e.g. after a GatewayLogout: a 100 s token, due at 80 s
    for _ in range(20):
        await asyncio.sleep(0)
    clock.set(tm.refresh_at_ms)
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    assert n["validate"] == 1 and clock.now_ms() < tm.exp_ms


async def test_concurrent_callers_share_one_refresh() -> None:
    clock = ManualClock(0)
    n = {"login": 0}

    async def login() -> str:
        n["login"] += 1
        await asyncio.sleep(0.01)
        return jwt({"exp": 1000, "i": n["login"]})

    async def validate(tok: str) -> str | None:
        return None

    tm = TokenManager(clock, login, validate)
    tokens = await asyncio.gather(*(tm.token() for _ in range(10)))
    assert n["login"] == 1 and len(set(tokens)) == 1
    stale = tokens[0]
    await asyncio.gather(tm.refresh(stale=stale), tm.refresh(stale=stale))
    assert n["login"] == 2  # the second caller got the first caller's new token


# ------------------------------------------------------------------ budget

def test_budget_never_allows_more_than_the_limit_in_any_window() -> None:
    clock = ManualClock(0)
    b = RateBudget("bars", 30, 30.0, clock, margin_s=0)
    sent = []
    t = 0
    while t < 120_000:
        if b.delay_ms(t) == 0:
            b.take(t)
            sent.append(t)
        t += 100
    for i, s in enumerate(sent):
        assert sum(1 for x in sent[i:] if x < s + 30_000) <= 30
    assert len(sent) >= 4 * 30 - 1  # and it does use the budget


async def test_budget_acquire_waits_for_room_and_for_a_block() -> None:
    clock = ManualClock(0)
    b = RateBudget("rest", 2, 10.0, clock, margin_s=0)
    await b.acquire()
    await b.acquire()
    b.answered(0)
    b.answered(0)
    third = asyncio.ensure_future(b.acquire())
    await asyncio.sleep(0)
    assert not third.done()
    clock.advance(10_001)
    await asyncio.wait_for(third, 1)
    b.answered(clock.now_ms())
    b.block_until(clock.now_ms() + 5_000)
    assert b.delay_ms(clock.now_ms()) >= 5_000


async def test_a_reserved_share_is_left_for_priority_calls() -> None:
    """Issue 20, section 2, item 6: a loop of ordinary calls (a strategy's cancels) may not
    take what the gateway's flatten and reconciliation need. Fails on the old budget (no
    reserved share: the fourth ordinary call took the last request of the window)."""
    clock = ManualClock(0)
    b = RateBudget("rest", 4, 10.0, clock, margin_s=0, reserved=1)
    for _ in range(3):
        await b.acquire()
        b.answered(0)
    ordinary = asyncio.ensure_future(b.acquire())
    await asyncio.sleep(0)
    assert not ordinary.done()                       # 3 of 4 used: ordinary calls wait
    with priority():
        urgent = asyncio.ensure_future(b.acquire())  # a task started here inherits it
    await asyncio.wait_for(urgent, 1)                # the reserved request, at once
    assert b.in_window(clock.now_ms()) == 4 and not ordinary.done()
    clock.advance(10_001)
    await asyncio.wait_for(ordinary, 1)
    with pytest.raises(ValueError):
        RateBudget("rest", 4, 10.0, clock, reserved=4)


async def test_a_request_delayed_on_the_way_is_dated_by_its_answer() -> None:
    """The venue counts a request when it arrives. Dated by when it was sent, a request slow on
    the way (a loaded machine) let the next window's requests go out while it was still
    travelling, and the venue counted limit + 1 in one window (test_feeds_faults saw a 429 in
    normal work at load 8). Fails on the old budget: the 4th request went at 10,001 ms."""
    clock = ManualClock(0)
    b = RateBudget("rest", 3, 10.0, clock, margin_s=0)
    for _ in range(3):                                  # sent at 0; the venue gets them at 2,000
        await b.acquire()
    clock.advance(2_000)
    for _ in range(3):
        b.answered(clock.now_ms())
    clock.advance(8_001)                                # 10,001: a window after they were sent
    fourth = asyncio.ensure_future(b.acquire())
    await asyncio.sleep(0)
    assert not fourth.done()                            # the venue's window [2,000, 12,000] is full
    assert b.delay_ms(clock.now_ms()) == 2_000
    clock.advance(2_000)
    await asyncio.wait_for(fourth, 1)


async def test_places_held_in_flight_free_only_after_an_answer() -> None:
    clock = ManualClock(0)
    b = RateBudget("rest", 2, 10.0, clock, margin_s=0)
    await b.acquire()
    await b.acquire()
    clock.advance(60_000)                               # no answer yet: still two in flight
    assert b.delay_ms(clock.now_ms()) == ON_ANSWER and b.in_window(clock.now_ms()) == 2
    third = asyncio.ensure_future(b.acquire())
    await asyncio.sleep(0)
    assert not third.done()
    b.answered(clock.now_ms())                          # its place frees a window later
    await asyncio.sleep(0)
    assert not third.done()
    clock.advance(10_001)
    await asyncio.wait_for(third, 1)


# ------------------------------------------------------------------ finals

def test_final_bar_published_once_when_polled_twice() -> None:
    tr = FinalTracker("C")
    bars = [vb(T0), vb(T0 + MINUTE_MS)]
    first = tr.on_bars(bars, request_ms=T0 + 2 * MINUTE_MS + 5000)
    assert [(b.t, b.final) for b in first] == [(T0, True), (T0 + MINUTE_MS, True)]
    again = tr.on_bars(bars, request_ms=T0 + 2 * MINUTE_MS + 9000)
    assert again == []
    assert tr.hwm == T0 + MINUTE_MS


def test_partial_revisions_count_up_and_the_final_takes_the_next_rev() -> None:
    tr = FinalTracker("C")
    out1 = tr.on_bars([vb(T0, c=1.0)], request_ms=T0 + 10_000)
    out2 = tr.on_bars([vb(T0, c=1.0)], request_ms=T0 + 20_000)  # unchanged: nothing
    out3 = tr.on_bars([vb(T0, c=1.25, v=12)], request_ms=T0 + 30_000)
    out4 = tr.on_bars([vb(T0, c=1.5, v=15)], request_ms=T0 + MINUTE_MS + 3000, final_delay_ms=2000)
    assert [(b.final, b.rev) for b in out1 + out2 + out3 + out4] == [
        (False, 0), (False, 1), (True, 2)]
    assert out4[0].c == 1.5 and out4[0].volume == 15 and out4[0].origin == "poll"


def test_a_minute_is_not_final_until_the_final_delay_has_passed() -> None:
    tr = FinalTracker("C")
    out = tr.on_bars([vb(T0)], request_ms=T0 + MINUTE_MS + 1000, final_delay_ms=2000)
    assert [b.final for b in out] == [False]
    out = tr.on_bars([vb(T0)], request_ms=T0 + MINUTE_MS + 2000, final_delay_ms=2000)
    assert [b.final for b in out] == [True]


def test_after_an_outage_the_missed_finals_come_in_time_order_without_duplicates() -> None:
    tr = FinalTracker("C", hwm=T0)
    assert tr.start_ms(T0 + 20 * MINUTE_MS) == T0 + MINUTE_MS
    answer = [vb(T0 + i * MINUTE_MS) for i in range(12, -1, -1)]  # newest first, incl. hwm
    out = tr.on_bars(answer, request_ms=T0 + 12 * MINUTE_MS + 30_000)
    finals = [b.t for b in out if b.final]
    assert finals == [T0 + i * MINUTE_MS for i in range(1, 12)]
    assert [b.t for b in out if not b.final] == [T0 + 12 * MINUTE_MS]
    assert tr.counters["stale_skipped"] == 1


def test_start_is_bounded_by_the_catchup_limit_and_new_contracts_start_now() -> None:
    new = FinalTracker("C")
    assert new.start_ms(T0 + 30_000, lookback_min=2) == T0 - 2 * MINUTE_MS
    assert new.start_ms(T0 + 5 * MINUTE_MS) == T0 - 2 * MINUTE_MS  # until its first final
    tr = FinalTracker("C", hwm=T0 - 10 * 86_400_000)
    assert tr.start_ms(T0, max_catchup_ms=86_400_000) == T0 - 86_400_000


def test_a_final_the_venue_revises_inside_the_window_comes_out_once_as_a_correction() -> None:
    """Defect 1: a final published against a lagging venue used to stay wrong forever."""
    tr = FinalTracker("C", revise_window_ms=5 * MINUTE_MS)
    out = tr.on_bars([vb(T0, c=1.0, v=10)], request_ms=T0 + MINUTE_MS + 3000)
    assert [(b.final, b.volume) for b in out] == [(True, 10)]
    assert tr.start_ms(T0 + 2 * MINUTE_MS) == T0 + MINUTE_MS - 5 * MINUTE_MS   # re-reads
    assert tr.take_corrections() == []
    again = tr.on_bars([vb(T0, c=1.0, v=10)], request_ms=T0 + MINUTE_MS + 30_000)
    assert again == [] and tr.take_corrections() == []          # unchanged: nothing
    tr.on_bars([vb(T0, c=1.25, v=14)], request_ms=T0 + 2 * MINUTE_MS)
    fixes = tr.take_corrections()
    assert [(b.t, b.final, b.c, b.volume) for b in fixes] == [(T0, True, 1.25, 14)]
    assert fixes[0].rev > out[0].rev
    tr.on_bars([vb(T0, c=1.25, v=14)], request_ms=T0 + 2 * MINUTE_MS + 5000)
    assert tr.take_corrections() == []                           # once
    # Beyond the window the minute is forgotten (no re-read, no correction).
    tr.on_bars([vb(T0 + 10 * MINUTE_MS)], request_ms=T0 + 11 * MINUTE_MS + 3000)
    tr.on_bars([vb(T0, c=2.0, v=99)], request_ms=T0 + 11 * MINUTE_MS + 9000)
    assert tr.take_corrections() == []
    off = FinalTracker("C", hwm=T0)
    assert off.start_ms(T0 + 5 * MINUTE_MS) == T0 + MINUTE_MS    # no window: as before


# ------------------------------------------------------------------ contracts

def c(cid: str, name: str, active: bool, sym: str | None = None) -> Contract:
    return Contract(id=cid, name=name, tick_size=0.25, tick_value=12.5, active_contract=active,
                    symbol_id=sym)


def test_symbols_resolve_by_venue_root_or_name_and_prefer_the_active_contract() -> None:
    listing = [c("CON.F.US.MES.Z26", "MESZ6", True, "F.US.MES"),
               c("CON.F.US.EP.H27", "ESH7", False, "F.US.EP"),
               c("CON.F.US.EP.Z26", "ESZ6", True, "F.US.EP"),
               c("CON.F.US.ENQ.Z26", "ENQZ26", True, None)]
    assert pick("ES", listing).id == "CON.F.US.EP.Z26"  # not MES, not the back month
    assert pick("MES", listing).id == "CON.F.US.MES.Z26"
    assert pick("NQ", listing).id == "CON.F.US.ENQ.Z26"  # root from the id when symbolId is absent
    assert pick("GC", listing) is None
    assert not matches("ES", listing[0])
    assert symbol_of(listing[2]) == "ES" and symbol_of(listing[3]) == "NQ"


# ------------------------------------------------------------------ ticks

def test_partial_quotes_merge_into_the_last_known_quote() -> None:
    n = TickNormaliser()
    q1 = n.quote("C", {"bestBid": 10.0, "bestAsk": 10.25, "lastPrice": 10.0, "volume": 5,
                       "timestamp": "2026-11-24T15:00:00Z"})
    q2 = n.quote("C", {"bestAsk": 10.5, "symbolName": "/ES", "lastPrice": None})
    assert (q1.bid, q1.ask, q1.volume) == (10.0, 10.25, 5)
    assert (q2.bid, q2.ask, q2.last, q2.vt) == (10.0, 10.5, 10.0, T0)
    assert n.quote("C", "junk") is None and n.rejected == 1


def test_each_print_is_one_trade_and_junk_is_counted() -> None:
    n = TickNormaliser(live_bars=True)
    prints = [{"price": 10.0, "volume": 2, "type": 0, "timestamp": "2026-11-24T15:00:01Z"},
              None, {"price": "x"},
              {"price": 10.5, "volume": 1, "type": 1, "timestamp": "2026-11-24T15:00:02Z"}]
    trades, bar = n.trades("C", prints)
    assert [(t.price, t.size, t.aggressor) for t in trades] == [(10.0, 2, 0), (10.5, 1, 1)]
    assert n.rejected == 1
    assert bar is not None and (bar.o, bar.h, bar.c, bar.volume, bar.final, bar.origin) == (
        10.0, 10.5, 10.5, 3, False, "trades")
    single, _ = n.trades("C", {"price": 11.0, "volume": 1, "type": 0,
                                "timestamp": "2026-11-24T15:00:03Z"})
    assert len(single) == 1


def test_depth_reset_makes_a_snapshot_and_other_batches_are_updates() -> None:
    n = TickNormaliser()
    snap = n.depth("C", [{"type": 6, "price": 0, "volume": 0}, None,
                         {"type": 1, "price": 10.25, "volume": 7, "currentVolume": 7},
                         {"type": 2, "price": 10.0, "volume": 5, "currentVolume": 5}])
    assert snap.snapshot and [lv[:3] for lv in snap.levels] == [[1, 10.25, 7], [2, 10.0, 5]]
    upd = n.depth("C", {"type": 3, "price": 10.25, "volume": 3, "currentVolume": 3})
    assert not upd.snapshot and len(upd.levels) == 1
    assert n.depth("C", []) is None
    assert n.depth("C", [{"type": 6, "price": 0, "volume": 0}]) is None  # Reset alone: held
    book = n.depth("C", [{"type": 1, "price": 10.5, "volume": 2, "currentVolume": 2}])
    assert book.snapshot and len(book.levels) == 1
    assert not n.depth("C", [{"type": 1, "price": 10.5, "volume": 1}]).snapshot


# ------------------------------------------------------------------ hubs

def test_hub_url_always_carries_the_token() -> None:
    url = with_token("http://h:1/hubs/market?access_token=old&x=1", "NEW")
    assert "access_token=NEW" in url and "old" not in url and "x=1" in url


def test_user_events_accept_flat_envelope_and_lists() -> None:
    flat = {"id": 1}
    env = {"action": 1, "data": {"id": 2}}
    assert user_events([flat]) == [(None, flat)]
    assert user_events([env]) == [(1, {"id": 2})]
    assert user_events([[env, flat]]) == [(1, {"id": 2}), (None, flat)]


# ------------------------------------------------------------------ clock ticks

def test_clock_ticks_close_buckets_only_when_their_last_minute_ends() -> None:
    t = iso_to_ms("2026-11-24T15:59:00Z")  # closes 15:59-16:00 UTC: 1m, 5m, 15m, 30m, 1h
    got = dict(closing_buckets(["1m", "5m", "15m", "1h", "4h"], t))
    assert got == {"1m": t, "5m": t - 4 * MINUTE_MS, "15m": t - 14 * MINUTE_MS,
                   "1h": t - 59 * MINUTE_MS}
    saturday = iso_to_ms("2026-11-28T15:59:00Z")
    assert closing_buckets(["1m", "1h"], saturday) == []


@pytest.mark.parametrize("tf", ["1m", "5m", "1h", "4h", "1d"])
def test_every_bucket_of_a_trading_day_gets_exactly_one_tick(tf: str) -> None:
    from chillly.timeframes import BucketSpec
    start = iso_to_ms("2026-11-23T23:00:00Z")  # Mon 17:00 CT session open
    starts = [s for m in range(0, 24 * 60) for (k, s) in
              closing_buckets([tf], start + m * MINUTE_MS) if k == tf]
    assert len(starts) == len(set(starts))
    if tf != "1m":
        spec = BucketSpec.of(tf)
        assert all(spec.bounds(s)[0] == s for s in starts)


# ------------------------------------------------------------------ stale feed alarm

def _agent(clock: ManualClock, expects: list[bool], open_: list[bool]):  # type: ignore[no-untyped-def]
    from topstepx.hub import HubAgent

    async def never() -> str:
        raise AssertionError("no login in this test")

    alarms: list[tuple[str, bool]] = []
    agent = HubAgent("market-hub", "http://x/hubs/market", TokenManager(clock, never, never),
                     clock, stale_after_s=60, expects_data=lambda: expects[0],
                     on_alarm=lambda code, active, text: alarms.append((code, active)),
                     market_open=lambda ms: open_[0], stale_min_real_s=0.0)
    agent.connected.set()
    return agent, alarms


def test_stale_feed_alarm_is_judged_in_market_time_only_while_open_and_expected() -> None:
    clock = ManualClock(T0)
    expects, open_ = [True], [True]
    agent, alarms = _agent(clock, expects, open_)
    agent.last_msg_ms = T0
    clock.advance(59_000)
    agent.check_stale(clock.now_ms())
    assert alarms == []
    clock.advance(2_000)
    agent.check_stale(clock.now_ms())
    assert alarms == [("stale_feed", True)] and agent._wake.is_set()  # alarm and reconnect
    agent.check_stale(clock.now_ms() + 10_000)
    assert len(alarms) == 1  # raised once, not on every check
    asyncio.run(agent._wrap("GatewayQuote", lambda args: None)(["C", {}]))
    assert alarms[-1] == ("stale_feed", False)  # the next message clears it


def test_no_stale_alarm_while_the_market_is_closed_or_nothing_is_expected() -> None:
    clock = ManualClock(T0)
    expects, open_ = [True], [False]
    agent, alarms = _agent(clock, expects, open_)
    agent.last_msg_ms = T0
    clock.advance(3_600_000)
    agent.check_stale(clock.now_ms())  # a closed market is quiet
    open_[0] = True
    clock.advance(30_000)
    agent.check_stale(clock.now_ms())  # quiet time counts from the reopening
    assert alarms == []
    expects[0] = False  # a quiet user hub / nothing subscribed
    clock.advance(3_600_000)
    agent.check_stale(clock.now_ms())
    assert alarms == []


def test_fast_timestamp_parse_agrees_with_the_kernel_parser() -> None:
    import random

    from chillly.clock import ms_to_iso
    from feeds.ticks import fast_iso_ms

    rng = random.Random(4)
    for _ in range(2000):
        ms = T0 + rng.randrange(-10**10, 10**10)
        text = ms_to_iso(ms)
        variants = [text, text[:-5] + "Z", text[:-1] + "+00:00", text[:-1] + "417Z",
                    text[:-5] + ".5Z", text[:-1] + "-05:00"]
        for v in variants:
            assert fast_iso_ms(v) == iso_to_ms(v), v


def test_the_daily_tick_goes_out_at_the_close_also_on_an_early_close() -> None:
    """Defect 10's leftover: the day after Thanksgiving 2026 closes at 12:00 CT; its daily
    tick fired at 17:00 CT while its final went out at the close. Both now at the close, and
    on a normal day at the 16:00 CT halt."""
    def daily_tick_minutes(session_open: str) -> list[int]:
        start = iso_to_ms(session_open)
        return [start + m * MINUTE_MS for m in range(0, 24 * 60)
                if closing_buckets(["1d"], start + m * MINUTE_MS)]
    assert daily_tick_minutes("2026-11-26T23:00:00Z") == [iso_to_ms("2026-11-27T17:59:00Z")]
    assert daily_tick_minutes("2026-11-23T23:00:00Z") == [iso_to_ms("2026-11-24T21:59:00Z")]
