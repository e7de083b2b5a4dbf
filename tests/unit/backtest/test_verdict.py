"""The Topstep verdict of a run: the referee's rules applied to it (trading/referee/)."""

from __future__ import annotations

from chillly.calendar import flat_by_ms, trading_date
from chillly.messages import Bar
from trading.referee.verdict import Day, combine, monte_carlo, replay, xfa
from trading.strategy.api import Config, Strategy

from backtest.setup import program_of
from tests.unit.backtest.rig import T0, bars_from, random_walk, run


class BuyFive(Strategy):
    """Buys 5 ES at the first bar and holds."""

    Config = Config

    def on_bar(self, bar: Bar) -> None:
        if not getattr(self, "sent", False):
            self.sent = True
            self.buy(5)


def test_an_intraday_mll_breach_fails_the_run_on_that_bar() -> None:
    # 5 ES long from 6000.25: $250 a point. Bar 3 dips to 5991 (-9.25 points, -2,312.50 and
    # costs: equity under the 48,000 floor) and closes back at 6000: the bar's closes alone
    # never show it; its path does.
    bars = bars_from([(6000, 6000.25, 5999.75, 6000), (6000, 6000.5, 6000, 6000.25),
                      (6000.25, 6000.5, 6000, 6000.25), (6000.25, 6000.5, 5991, 6000),
                      (6000, 6000.25, 5999.75, 6000)])
    r, out = run(BuyFive, bars)
    mll = [b for b in out.breaches if b.rule == "mll"]
    assert len(mll) == 1
    t3 = bars[3][1][0]
    assert t3 <= mll[0].t < t3 + 60_000
    assert mll[0].figures["equity"] <= mll[0].figures["floor"] == 48_000.0
    assert all(eq > 48_000 for t, eq, _ in out.equity if t % 60_000 == 0)   # closes never
    from backtest.summary import verdict
    from backtest.setup import Setup
    prog, target = program_of("combine", "50k")
    v = verdict(Setup(r.inst, BuyFive, BuyFive.Config(), prog, target), out, 0, 1)
    assert v.lost and v.first_mll_breach is not None and v.first_mll_breach["t"] == mll[0].t


class HoldLate(Strategy):
    """Buys 1 ES and never closes it."""

    Config = Config

    def on_bar(self, bar: Bar) -> None:
        if not getattr(self, "sent", False):
            self.sent = True
            self.buy(1)


def test_a_position_held_past_1510_ct_is_a_breach() -> None:
    # From 14:00 CT to 15:30 CT on Monday 2026-01-05 (20:00 .. 21:30 UTC).
    start = T0 + 5 * 3_600_000 + 30 * 60_000
    bars = random_walk(90, t0=start)
    r, out = run(HoldLate, bars)
    flat = [b for b in out.breaches if b.rule == "flat_by"]
    deadline = flat_by_ms(trading_date(start))
    assert len(flat) == 1 and deadline <= flat[0].t < deadline + 60_000
    assert out.days[0].failed
    # The same strategy flat before the deadline breaks nothing: 30 bars end at 14:30 CT.
    r, out = run(HoldLate, bars[:30])
    assert not [b for b in out.breaches if b.rule == "flat_by"]


def _days(pnls: list[float], start: float = 50_000.0) -> list[Day]:
    out, bal = [], start
    for i, p in enumerate(pnls):
        out.append(Day(f"2026-01-{i + 5:02d}", bal, bal + p, min(bal, bal + p), True))
        bal += p
    return out


def test_a_target_made_with_one_day_over_half_of_it_is_not_passed() -> None:
    prog, target = program_of("combine", "50k")
    one_big = combine(_days([2_000.0, 1_100.0]), prog, target)
    assert not one_big.passed and "over 50%" in one_big.why
    spread = combine(_days([1_400.0, 1_000.0, 700.0]), prog, target)
    assert spread.passed and spread.day == "2026-01-07" and spread.days == 3
    # The big day diluted by later ones passes later.
    later = combine(_days([2_000.0, 1_100.0, 900.0, 500.0]), prog, target)
    assert later.passed and later.days == 3      # 4,000 made, best day 2,000: within 50%
    # A lost day fails, whatever came after.
    lost = _days([1_400.0, 1_000.0, 700.0])
    lost[1] = Day(lost[1].day, lost[1].start, lost[1].end, lost[1].low, True, failed=True)
    assert not combine(lost, prog, target).passed


def test_xfa_winning_days_and_monte_carlo_of_day_orderings() -> None:
    pay = xfa(_days([200.0, 150.0, -100.0, 149.0, 300.0, 160.0, 151.0]))
    assert pay.winning_days == 5 and pay.standard_day == "2026-01-11"
    prog, target = program_of("combine", "50k")
    days = _days([900.0, 800.0, 700.0, 600.0, -1_900.0, 500.0])
    # In this order the -1,900 day comes after +3,000: passed on day 4 before it.
    assert replay(days, prog, target) == 4
    mc = monte_carlo(days, prog, target, 500, seed=7)
    again = monte_carlo(days, prog, target, 500, seed=7)
    assert mc == again                                  # seeded
    assert 0.0 < mc.pass_rate < 1.0 and mc.median_days is not None


def test_the_gate_flattens_before_the_deadline_that_the_referee_judges() -> None:
    """With the live gate (trading/risk), the position held into the afternoon is flattened
    from 15:05 CT, so the referee records no flat-by breach; without it, it does (above)."""
    start = T0 + 5 * 3_600_000 + 30 * 60_000
    bars = random_walk(90, t0=start)
    r, out = run(HoldLate, bars, gate=True)
    assert not [b for b in out.breaches if b.rule == "flat_by"]
    closing = [f for f in out.fills if f.side < 0]
    deadline = flat_by_ms(trading_date(start))
    assert closing and deadline - 5 * 60_000 <= closing[0].t < deadline
    assert r.book.positions[r.inst.contracts[0]].size == 0
