"""The live market over the tape: what the hub streams is the tape, quotes follow prints."""

from __future__ import annotations

from datetime import datetime, timezone

from chillly.clock import MINUTE_MS, ManualClock, iso_to_ms
from sim.market.contracts import Catalogue
from sim.market.history import MINUTE, History
from sim.market.live import DOM_RESET, Market
from sim.market.tape import Tape

ES = "CON.F.US.EP.Z26"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def make(start: str, always_open: bool = False) -> tuple[ManualClock, Market]:
    clock = ManualClock(ms(start))
    tape = Tape(21, always_open=always_open, history_start_ms=clock.now_ms() - 5 * 86_400_000)
    market = Market(clock, Catalogue(clock, ["EP", "EU6"]), tape, History(tape), always_open)
    market.start(clock.now_ms())
    return clock, market


def test_steps_stream_every_print_once_in_order() -> None:
    clock, market = make("2026-11-24T15:00:00")
    start = clock.now_ms()
    streamed = []
    for _ in range(50):
        clock.advance(7_000)
        for up in market.step(clock.now_ms()):
            if up.contract_id == ES:
                streamed.extend(up.prints)
                assert [market.tape.to_price(ES, p[1]) for p in up.prints] == [
                    t["price"] for t in up.trades]
    assert streamed == market.tape.prints_between(ES, start, clock.now_ms())
    assert len({p[0] for p in streamed}) > 100


def test_quote_follows_the_last_print_and_the_session() -> None:
    clock, market = make("2026-11-24T15:00:00")
    clock.advance(90_000)
    ups = {u.contract_id: u for u in market.step(clock.now_ms())}
    q = ups[ES].quote
    assert q is not None
    t, p, _, side = ups[ES].prints[-1]
    last = market.tape.to_price(ES, p)
    assert q["lastPrice"] == last == market.last_price(ES)
    assert q["bestAsk"] - q["bestBid"] == 0.25
    assert (q["bestAsk"] if side == 0 else q["bestBid"]) == last
    assert iso_to_ms(q["timestamp"]) == t and q["symbol"] == "F.US.EP" and q["symbolName"] == "/ES"
    session = market.history.retrieve(ES, ms("2026-11-23T23:00:00"), clock.now_ms() + 1, MINUTE,
                                      1, 20_000, True, clock.now_ms())
    assert q["volume"] == sum(b[5] for b in session)
    assert q["open"] == market.tape.to_price(ES, session[-1][1])
    assert q["high"] == market.tape.to_price(ES, max(b[2] for b in session))
    assert abs(q["changePercent"]) < 0.1 and "change" in q


def test_market_view_and_hours() -> None:
    clock, market = make("2026-11-28T12:00:00")  # Saturday: closed, last prices from Friday
    assert not market.is_open(clock.now_ms())
    assert market.last_price(ES) is not None
    assert market.best_bid(ES) < market.best_ask(ES)  # type: ignore[operator]
    clock.advance(10 * MINUTE_MS)
    assert market.step(clock.now_ms()) == []
    assert market.is_open(ms("2026-11-29T23:30:00"))  # Sunday 17:30 CT
    assert market.last_price("CON.F.US.XX.Z26") is None


def test_new_session_resets_open_high_low_volume() -> None:
    clock, market = make("2026-11-24T21:58:00")  # 15:58 CT, two minutes before the halt
    clock.set(ms("2026-11-24T23:02:00"))  # 17:02 CT: the next session
    ups = {u.contract_id: u for u in market.step(clock.now_ms())}
    q = ups[ES].quote
    assert q is not None
    first_new = [p for p in ups[ES].prints if p[0] >= ms("2026-11-24T23:00:00")]
    assert q["open"] == market.tape.to_price(ES, first_new[0][1])
    assert q["volume"] == sum(p[2] for p in first_new)


def test_depth_snapshot_starts_with_a_reset_and_updates_follow() -> None:
    clock, market = make("2026-11-24T15:00:00")
    clock.advance(5_000)
    market.step(clock.now_ms())
    reset, snap = market.depth_snapshot(ES, clock.now_ms())
    assert [(e["type"], e["price"]) for e in reset] == [(DOM_RESET, 0)]
    types = {e["type"] for e in snap}
    assert {1, 2, 3, 4, 5} <= types
    assert set(reset[0]) == {"timestamp", "type", "price", "volume", "currentVolume"}
    clock.advance(5_000)
    ups = {u.contract_id: u for u in market.step(clock.now_ms())}
    assert ups[ES].depth and all(e["type"] in (1, 2, 3, 4, 5, 7, 8) for e in ups[ES].depth)


def test_a_venue_behind_its_clock_catches_up_in_bounded_steps() -> None:
    """At a fast clock a step covers at most two nominal steps of market time: a loop held up
    (more prints than the CPU takes) falls behind and catches up step by step, answering in
    between, instead of taking one ever longer step. Every print still goes through once."""
    from sim.venue import Venue
    from sim.settings import SimSettings

    clock = ManualClock(ms("2026-11-24T15:00:00"), speed=3600)
    start = clock.now_ms()
    settings = SimSettings(sim_always_open=True, sim_history_days=1, sim_roots=["EP"],
                           sim_tick_interval_s=0.1, sim_state_path="")
    venue = Venue(settings, clock)
    venue.market.start(start)
    assert venue.max_step_ms == 720_000                     # 2 x 0.1 s x 3600
    clock.advance(60 * MINUTE_MS)                            # an hour of market at once
    venue.tick()
    assert venue.market.cursor_ms == start + 720_000
    assert venue.lag_ms == venue.counters["market_lag_ms"] == 60 * MINUTE_MS - 720_000
    steps = 1
    while venue.lag_ms:
        venue.tick()
        steps += 1
    assert steps == 5 and venue.market.cursor_ms == clock.now_ms()
    assert venue.counters["catch_up_steps"] == 4 and venue.counters["market_lag_ms"] == 0
    expected = sum(len(venue.tape.prints_between(c.id, start, clock.now_ms()))
                   for c in venue.catalogue.all())
    assert expected > 0 and venue.counters["prints"] == expected
    clock.advance(360_000)                                   # on time again: one whole step
    venue.tick()
    assert venue.market.cursor_ms == clock.now_ms() and venue.lag_ms == 0
