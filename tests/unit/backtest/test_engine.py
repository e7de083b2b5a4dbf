"""The backtest engine drives an unchanged strategy class in market time: what it sees and when,
its orders' outcomes, the bracket rule, and a strategy that sees ahead is caught."""

from __future__ import annotations

import pytest

from chillly.messages import Bar
from trading.strategy.api import Config, Strategy
from trading.strategy.engine import Engine

from backtest.run import LookAhead, Run
from tests.unit.backtest.rig import ES, T0, bars_from, random_walk, run


class Watcher(Strategy):
    """Records what it is shown, and checks at every hook that nothing is from the future."""

    Config = Config

    def on_start(self) -> None:
        self.seen: list[tuple[str, int, int]] = []
        self.future: list[str] = []

    def _check(self, where: str) -> None:
        now = self.now()
        for tf, ms in (("1m", 60_000), ("5m", 300_000)):
            for b in self.bars(tf, n=10_000):
                if b.t + ms > now:
                    self.future.append(f"{where}: {tf} {b.t} at {now}")

    def on_bar(self, bar: Bar) -> None:
        self.seen.append((bar.tf, bar.t, self.now()))
        self._check("on_bar")

    def on_fill(self, fill) -> None:  # type: ignore[no-untyped-def]
        self._check("on_fill")


def test_bars_are_handed_over_at_their_close_and_nothing_later_is_in_reach() -> None:
    bars = random_walk(60)
    r, out = run(Watcher, bars, timeframes=("1m", "5m"))
    w = r.engine.strategy
    assert not w.future
    ones = [(t, now) for tf, t, now in w.seen if tf == "1m"]
    assert ones == [(row[0], row[0] + 60_000) for _, row in bars]
    fives = [(t, now) for tf, t, now in w.seen if tf == "5m"]
    # Every complete 5m bucket, final with its last minute, handed over at its end.
    assert fives and all(now == t + 300_000 for t, now in fives)
    assert len(fives) == 60 // 5 - (1 if T0 % 300_000 else 0)


class Peeker(Strategy):
    """Reads ahead: a leak that puts the next minute in its series (as a broken engine would)
    is used at once to trade the next bar's move."""

    Config = Config

    def on_bar(self, bar: Bar) -> None:
        series = self.bars("1m", n=2)
        if len(series) == 2 and series[-1].t > bar.t:     # the future is visible
            self.buy() if series[-1].c > bar.c else self.sell()


def test_a_strategy_that_sees_the_next_bar_is_caught() -> None:
    bars = random_walk(30)
    # Without a leak the peeker never trades and nothing is raised.
    r, out = run(Peeker, bars)
    assert out.orders_sent == 0

    # A leak: every bar handed over with the next minute already in the series (a broken
    # engine). The look-ahead check stops the run at the first bar the strategy reads.
    class Leaky(Run):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            call = self.engine.call

            def leaky_call(hook, *a):  # type: ignore[no-untyped-def]
                if hook == "on_bar":
                    t = a[0].t + 60_000
                    nxt = next((row for _, row in bars if row[0] == t), None)
                    if nxt is not None:
                        self.engine._append(Bar(contract=ES, tf="1m", t=t, o=nxt[1], h=nxt[2],
                                                l=nxt[3], c=nxt[4], volume=nxt[5], final=True))
                return call(hook, *a)
            self.engine.call = leaky_call  # type: ignore[method-assign]

    with pytest.raises(LookAhead, match="closes at"):
        run(Peeker, bars, run_cls=Leaky)

    # The same leak without the check: the strategy sees the next bar and trades on it.
    class Unchecked(Leaky):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            self.engine.bars = Engine.bars.__get__(self.engine)  # type: ignore[method-assign]

    r, out = run(Peeker, bars, run_cls=Unchecked)
    assert out.orders_sent > 0


class BuyOnce(Strategy):
    class Config(Config):
        sl: int | None = None
        tp: int | None = None
        size: int = 1

    def on_bar(self, bar: Bar) -> None:
        if not getattr(self, "sent", False):
            self.sent = True
            self.cid = self.buy(self.config.size, sl=self.config.sl, tp=self.config.tp)

    def on_start(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    def on_order(self, order) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("order", order.state, self.now()))

    def on_fill(self, fill) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("fill", str(fill.price), self.now()))

    def on_position(self, pos) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("position", str(pos.size), self.now()))


def test_an_order_sent_at_a_close_fills_on_the_next_bar_with_its_bracket() -> None:
    # bar 0: the order is sent at its close; bar 1 opens at 100 -> fills 100.25 (1 tick);
    # the legs (sl 2 ticks = 99.75, tp 4 ticks = 101.25) act from the fill on: bar 1 reaches
    # 101.5 after the entry, so the take-profit fills there; bar 2 is never needed.
    bars = bars_from([(100, 100.5, 99.5, 100), (100, 101.5, 100, 101), (101, 101, 95, 95)])
    r, out = run(BuyOnce, bars, params={"sl": 2, "tp": 4})
    s = r.engine.strategy
    assert [(f.client_id, f.price) for f in out.fills] == [("t-1", 100.25), ("t-1-tp", 101.25)]
    assert out.fills[0].t == T0 + 60_000           # at bar 1's open
    assert ("order", "accepted", T0 + 60_000) not in s.events   # the reply is not an event
    kinds = [e[0] for e in s.events]
    assert kinds[:3] == ["order", "order", "fill"] and "position" in kinds
    assert s.position().flat
    assert out.fills[1].pnl == 4 * 12.5
    assert round(r.book.balance - 50_000, 2) == round(50.0 - 2 * 1.40, 2)


def test_one_bar_reaching_both_legs_fills_the_stop_loss() -> None:
    # The entry fills at bar 1's open (100.25); bar 2 reaches the take-profit (101.25) first
    # and then the stop-loss (99.75): the stop-loss fills, one tick worse.
    bars = bars_from([(100, 100.25, 100, 100), (100, 100.5, 100, 100.25),
                      (100.25, 101.5, 99, 100)])
    r, out = run(BuyOnce, bars, params={"sl": 2, "tp": 4})
    assert [(f.client_id, f.price) for f in out.fills] == [("t-1", 100.25), ("t-1-sl", 99.5)]


class TooBig(Strategy):
    """Asks for more than a 50K Combine may hold, then for what it may."""

    Config = Config

    def on_start(self) -> None:
        self.rejected: list[str] = []

    def on_bar(self, bar: Bar) -> None:
        if not getattr(self, "sent", False):
            self.sent = True
            self.buy(6)
            self.buy(1)

    def on_order(self, order) -> None:  # type: ignore[no-untyped-def]
        if order.state == "rejected":
            self.rejected.append(order.reason or "")


class TwoLots(Strategy):
    Config = Config

    def on_bar(self, bar: Bar) -> None:
        if not getattr(self, "sent", False):
            self.sent = True
            self.buy(2)


def test_orders_pass_the_live_risk_gate_and_refusals_are_recorded_with_their_rule() -> None:
    bars = random_walk(5)
    r, out = run(TooBig, bars, gate=True)
    assert [x.rule for x in out.refusals] == ["max_position"]
    assert out.refusals[0].client_id == "t-1"
    assert r.engine.strategy.rejected and "6" in r.engine.strategy.rejected[0]
    assert [f.client_id for f in out.fills] == ["t-2"]
    # The instance's own limits too (strategies.toml [limits]): one lot at most.
    r, out = run(TwoLots, bars, gate=True, limits={"max_lots": 1})
    assert [(x.rule, x.reason) for x in out.refusals] == [
        ("strategy_limit", "t: 2 lots would pass its limit 1")]
    # Without the gate the venue-side book takes all seven lots: the gate is what refused.
    r, out = run(TooBig, bars)
    assert not out.refusals and sum(f.size for f in out.fills) == 7


class Timed(Strategy):
    """A timer every 90 s of market time; the first firing sends a market order."""

    Config = Config

    def on_start(self) -> None:
        self.fired: list[int] = []
        self.every(90, "tick")

    def on_timer(self, name: str) -> None:
        self.fired.append(self.now())
        if len(self.fired) == 1:
            self.buy()


def test_timers_fire_at_their_market_time_and_their_orders_act_from_the_next_bar() -> None:
    bars = bars_from([(100, 100.5, 99.5, 100)] * 6)
    r, out = run(Timed, bars)
    assert r.engine.strategy.fired == [T0 + 90_000, T0 + 180_000, T0 + 270_000, T0 + 360_000]
    # Sent at T0 + 90 s (inside bar 1): it acts from bar 2's open.
    assert [(f.t, f.price) for f in out.fills] == [(T0 + 120_000, 100.25)]


class Prints(Strategy):
    """Takes the path's prints; buys on the first print it sees after the start."""

    Config = Config

    def on_start(self) -> None:
        self.prints: list[tuple[int, float]] = []

    def on_trade(self, trade) -> None:  # type: ignore[no-untyped-def]
        self.prints.append((trade.t, trade.price))
        if len(self.prints) == 6:            # bar 1's second print: its nearer extreme
            self.buy()


def test_on_trade_gets_the_path_prints_and_an_order_there_acts_from_that_point() -> None:
    bars = bars_from([(100, 101, 99.5, 100.5), (100, 100.5, 98, 99)])
    r, out = run(Prints, bars)
    p = r.engine.strategy.prints
    assert p[:4] == [(T0, 100), (T0 + 20_000, 99.5), (T0 + 40_000, 101), (T0 + 60_000, 100.5)]
    assert p[4:] == [(T0 + 60_000, 100), (T0 + 80_000, 100.5), (T0 + 100_000, 98),
                     (T0 + 120_000, 99)]
    # Bought at bar 1's nearer extreme (100.5, the high) and filled there, one tick worse.
    assert [(f.t, f.price) for f in out.fills] == [(T0 + 80_000, 100.75)]
