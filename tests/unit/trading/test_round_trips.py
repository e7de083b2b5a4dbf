"""Round trips and performance from fills (trading/round_trips.py), on hand-made fills."""

from __future__ import annotations

from datetime import datetime, timezone

from trading.round_trips import Fill, performance, round_trips
from trading.venue_codes import Side

ES = "CON.F.US.EP.Z26"      # 0.25 tick, 12.50 a tick: 50 dollars a point
T0 = int(datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc).timestamp() * 1000)  # Tue 09:00 CT


def fill(side: Side, size: int, price: float, minute: int, owner: str = "ema",
         cost: float = 1.40) -> Fill:
    return Fill(owner=owner, contract=ES, side=side, size=size, price=price, cost=cost * size,
                at_ms=T0 + minute * 60_000, account=7)


def test_a_long_scaled_in_and_out_is_one_trip_with_its_average_prices_and_costs() -> None:
    done, still_open = round_trips([
        fill(Side.BUY, 1, 6000.00, 0), fill(Side.BUY, 1, 6001.00, 1),
        fill(Side.SELL, 1, 6002.00, 5), fill(Side.SELL, 1, 6004.00, 9)])
    assert still_open == [] and len(done) == 1
    t = done[0]
    assert (t.direction, t.size, t.entry_price, t.exit_price) == (Side.BUY, 2, 6000.5, 6003.0)
    assert t.gross == 250.0                       # 2.5 points x 2 contracts x 50
    assert t.costs == 4 * 1.40 and t.net == round(250.0 - 5.6, 2)
    assert t.duration_s == 9 * 60 and t.fills == 4


def test_a_fill_through_flat_closes_one_trip_and_opens_the_other_way() -> None:
    done, still_open = round_trips([
        fill(Side.BUY, 1, 6000.00, 0), fill(Side.SELL, 3, 5999.00, 2),   # long 1 -> short 2
        fill(Side.BUY, 2, 5998.00, 4)])
    assert [(t.direction, t.size, t.gross) for t in done] == \
        [(Side.BUY, 1, -50.0), (Side.SELL, 2, 100.0)]
    # The reversing fill's 3 x 1.40 is split by size: 1.40 to the long, 2.80 to the short.
    assert [round(t.costs, 2) for t in done] == [2.80, 5.60]
    assert still_open == []


def test_owners_in_one_contract_keep_their_own_trips_and_an_open_one_is_reported() -> None:
    done, still_open = round_trips([
        fill(Side.BUY, 1, 6000.00, 0, "a"), fill(Side.SELL, 1, 6001.00, 1, "b"),
        fill(Side.SELL, 1, 6002.00, 2, "a")])
    assert [(t.owner, t.gross) for t in done] == [("a", 100.0)]
    assert [(t.owner, t.direction, t.open_size) for t in still_open] == [("b", Side.SELL, 1)]


def test_performance_win_rate_profit_factor_drawdown_and_days() -> None:
    fills = []
    for i, (entry, exit_) in enumerate([(6000, 6004), (6004, 6002), (6002, 6001), (6001, 6007)]):
        fills += [fill(Side.BUY, 1, entry, i * 10, cost=0.0), fill(Side.SELL, 1, exit_, i * 10 + 5,
                                                                   cost=0.0)]
    fills.append(fill(Side.BUY, 1, 6000, 60 * 24, cost=0.0))          # the next day
    fills.append(fill(Side.SELL, 1, 5999, 60 * 24 + 1, cost=0.0))
    done, _ = round_trips(fills)
    p = performance("ema", done)
    assert [t.net for t in done] == [200.0, -100.0, -50.0, 300.0, -50.0]
    assert (p.trips, p.wins, p.win_rate, p.net) == (5, 2, 0.4, 300.0)
    assert p.profit_factor == round(500 / 200, 4)
    assert p.max_drawdown == 150.0                 # 200 -> 50
    assert p.by_day == {"2026-12-01": 350.0, "2026-12-02": -50.0}
    assert performance("x", []).win_rate is None and performance("x", []).profit_factor is None
