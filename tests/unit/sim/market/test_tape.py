"""The tape: deterministic, tick-aligned prints whose minutes and bars agree exactly."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from chillly.clock import MINUTE_MS
from sim.market.tape import Tape

ES = "CON.F.US.EP.Z26"
EU = "CON.F.US.EU6.Z26"
CL = "CON.F.US.CLE.F27"


def minute_of(text: str) -> int:
    dt = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000) // MINUTE_MS


TUESDAY = minute_of("2026-11-24T15:00:00")  # 09:00 CT, day session


def test_same_seed_gives_the_same_prints_whatever_the_order_of_asking() -> None:
    a, b = Tape(42), Tape(42)
    forward = [a.prints(ES, m) for m in range(TUESDAY, TUESDAY + 5)]
    backward = [b.prints(ES, m) for m in reversed(range(TUESDAY, TUESDAY + 5))][::-1]
    assert forward == backward
    assert Tape(43).prints(ES, TUESDAY) != forward[0]


def test_contracts_have_independent_prints_but_micro_shares_the_full_size_path() -> None:
    tape = Tape(1)
    assert tape.prints(ES, TUESDAY) != tape.prints("CON.F.US.MES.Z26", TUESDAY)
    assert tape.level_ticks(ES, TUESDAY) == tape.level_ticks("CON.F.US.MES.Z26", TUESDAY)


@settings(max_examples=40, deadline=None)
@given(minute=st.integers(min_value=TUESDAY - 30 * 1440, max_value=TUESDAY + 30 * 1440),
       cid=st.sampled_from([ES, EU, CL, "CON.F.US.YM.Z26"]))
def test_minute_bar_is_exactly_the_aggregate_of_its_prints(minute: int, cid: str) -> None:
    tape = Tape(7, always_open=True)
    bar = tape.minute_bar(cid, minute)
    prints = tape.prints(cid, minute)
    assert bar is not None and len(prints) == bar.n >= 4
    times = [p[0] for p in prints]
    assert times == sorted(times)
    assert all(minute * MINUTE_MS <= t < (minute + 1) * MINUTE_MS for t in times)
    prices = [p[1] for p in prints]
    assert (prices[0], max(prices), min(prices), prices[-1]) == (bar.o, bar.h, bar.l, bar.c)
    assert sum(p[2] for p in prints) == bar.v
    assert all(p[2] >= 1 and p[3] in (0, 1) for p in prints)
    # consecutive minutes join: this close is the next open
    nxt = tape.minute_bar(cid, minute + 1)
    assert nxt is not None and nxt.o == bar.c


def test_prices_sit_on_the_tick_grid() -> None:
    tape = Tape(3, always_open=True)
    for cid, tick in ((ES, 0.25), (EU, 0.00005), (CL, 0.01), ("CON.F.US.RTY.Z26", 0.1)):
        for _, p, _, _ in tape.prints(cid, TUESDAY):
            price = tape.to_price(cid, p)
            assert abs(price / tick - round(price / tick)) < 1e-6
            assert price == round(p * tick, 6)


def test_price_levels_look_like_their_market() -> None:
    tape = Tape(5)
    assert 4000 < tape.to_price(ES, tape.level_ticks(ES, TUESDAY)) < 9000
    assert 0.8 < tape.to_price(EU, tape.level_ticks(EU, TUESDAY)) < 1.4
    # a day's range is a fraction of a percent to a few percent, not zero and not wild
    closes = [tape.level_ticks(ES, m) for m in range(TUESDAY, TUESDAY + 1440, 15)]
    spread = (max(closes) - min(closes)) / closes[0]
    assert 0.0005 < spread < 0.08


def test_no_prints_when_cme_is_closed_or_before_the_history_horizon() -> None:
    tape = Tape(1, history_start_ms=TUESDAY * MINUTE_MS)
    saturday = minute_of("2026-11-28T12:00:00")
    halt = minute_of("2026-11-24T22:30:00")  # 16:30 CT
    assert tape.prints(ES, saturday) == [] and tape.minute_bar(ES, saturday) is None
    assert tape.prints(ES, halt) == []
    assert tape.prints(ES, TUESDAY - 1) == []
    assert tape.prints(ES, TUESDAY) != []
    assert Tape(1, always_open=True).prints(ES, saturday) != []


def test_prints_between_is_half_open_and_ordered() -> None:
    tape = Tape(9, always_open=True)
    a = TUESDAY * MINUTE_MS + 20_000
    b = a + 3 * MINUTE_MS
    got = tape.prints_between(ES, a, b)
    assert got and all(a < p[0] <= b for p in got)
    every = [p for m in range(TUESDAY, TUESDAY + 5) for p in tape.prints(ES, m)]
    assert got == [p for p in every if a < p[0] <= b]
    last = tape.last_print_before(ES, b)
    assert last == got[-1]


def test_back_month_trades_above_front_and_less() -> None:
    tape = Tape(2, always_open=True)
    front, back = ES, "CON.F.US.EP.H27"
    assert tape.level_ticks(back, TUESDAY) > tape.level_ticks(front, TUESDAY)
    assert len(tape.prints(back, TUESDAY)) < len(tape.prints(front, TUESDAY))
