"""Catch-up bars in the engine: a final that closed longer ago than the allowance (market time)
still reaches on_bar, but the orders it makes are refused locally, never sent; cancels and
flattens go; 0 turns the rule off."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chillly.clock import ManualClock
from chillly.messages import Bar, OrderEvent
from trading.strategy.api import Strategy
from trading.strategy.engine import MAX_CATCHUP_ANSWERS, Engine
from trading.strategy.instance import Instance

C = "CON.F.US.EP.Z26"
MIN = 60_000
ALLOW = 600_000          # the allowance the tests give the engine: 10 market minutes


class Trader(Strategy):
    """Buys on every bar, cancels and flattens too, and records what it saw."""

    def on_start(self) -> None:
        self.seen: list[Any] = []
        self.sma: list[float] = []
        self.resubmit = False

    def on_bar(self, bar: Bar) -> None:
        closes = [b.c for b in self.bars(tf=bar.tf, n=3)]
        self.sma.append(sum(closes) / len(closes))
        cid = self.buy(1)
        self.seen.append(("bar", bar.t, cid, [o.state for o in self.open_orders()]))
        self.cancel("t1-old")
        self.flatten()

    def on_order(self, order: OrderEvent) -> None:
        self.seen.append(("order", order.client_id, order.state, order.reason))
        if self.resubmit and order.state == "rejected":
            self.buy(1)


def engine(max_age: int = ALLOW, now: int = 0) -> tuple[Engine, list[tuple[str, dict]],
                                                       ManualClock]:
    sent: list[tuple[str, dict]] = []
    clock = ManualClock(now)
    e = Engine(Instance(name="t1", **{"class": "x:Y"}, contracts=[C]), Trader, Trader.Config(),
               clock, lambda c, a: sent.append((c, a)), max_bar_age_ms=max_age)
    e.call("on_start")
    return e, sent, clock


def bar(t: int, c: float = 100.0, tf: str = "1m") -> Bar:
    return Bar(contract=C, tf=tf, t=t, o=c, h=c, l=c, c=c, volume=1, final=True)


def commands(sent: list[tuple[str, dict]]) -> list[str]:
    return [c for c, _ in sent]


def test_a_current_bar_trades() -> None:
    e, sent, clock = engine(now=10 * MIN + 2_000)       # the 00:09 minute closed 2 s ago
    e.on_bar(bar(9 * MIN))
    assert commands(sent) == ["submit", "cancel", "flatten"]
    assert e.counters["orders_sent"] == 1 and e.counters["catchup_bars"] == 0


def test_a_catch_up_bar_runs_on_bar_but_its_submit_is_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    # Two hours down: the feed's first good poll publishes the missed minutes at once.
    now = 180 * MIN + 2_000
    e, sent, clock = engine(now=now)
    caplog.set_level(logging.INFO)
    for i in range(60, 62):
        e.on_bar(bar(i * MIN, c=100.0 + i))
    s: Any = e.strategy
    # on_bar ran for both (indicators stay right), and saw its order pending while it ran
    assert [x[1] for x in s.seen if x[0] == "bar"] == [60 * MIN, 61 * MIN]
    assert s.sma == [160.0, 160.5]
    assert s.seen[0][3] == ["pending"]
    # no submit left; the cancels and flattens did
    assert commands(sent) == ["cancel", "flatten", "cancel", "flatten"]
    rejections = [x for x in s.seen if x[0] == "order"]
    assert [(x[1], x[2]) for x in rejections] == [("t1-1", "rejected"), ("t1-2", "rejected")]
    reason = rejections[0][3]
    assert "catch-up bar" in reason and "1970-01-01T01:00:00.000Z" in reason
    assert f"sent {(now - 61 * MIN) // 1000} s after its close" in reason and "allowance 600 s" in reason
    assert e.orders == {}
    assert e.counters["catchup_bars"] == 2 and e.counters["catchup_refused"] == 2
    assert e.counters["orders_sent"] == 0 and e.counters["order_rejects"] == 0
    # logged once for the run, not once per bar or per order; one refusal kept for `chillly
    # strategies`
    starts = [r for r in caplog.records if "catch-up on" in r.getMessage()]
    assert len(starts) == 1 and len(e.refusals) == 1 and e.refusals[0]["rule"] == "catchup"
    # the first current bar ends the run (logged once) and trades
    sent.clear()
    clock.set(181 * MIN + 2_000)
    e.on_bar(bar(180 * MIN))
    assert commands(sent) == ["submit", "cancel", "flatten"]
    assert sent[0][1]["client_id"] == "t1-3"
    ends = [r.getMessage() for r in caplog.records if "caught up on" in r.getMessage()]
    assert len(ends) == 1 and "2 catch-up bar(s)" in ends[0] and "2 order(s) refused" in ends[0]


def test_the_allowance_boundary_counts_from_the_close() -> None:
    # A 5m bar closes at t + 5 minutes: its age is counted from there.
    e, sent, clock = engine(now=5 * MIN + ALLOW)
    e.on_bar(bar(0, tf="5m"))                    # closed exactly the allowance ago: current
    assert commands(sent)[0] == "submit"
    sent.clear()
    clock.set(10 * MIN + ALLOW + 1)
    e.on_bar(bar(5 * MIN, tf="5m"))              # one ms older: catch-up
    assert "submit" not in commands(sent) and e.counters["catchup_refused"] == 1


def test_zero_turns_it_off() -> None:
    e, sent, _ = engine(max_age=0, now=10_000 * MIN)
    e.on_bar(bar(0))
    assert commands(sent)[0] == "submit" and e.counters["catchup_bars"] == 0


def test_resubmitting_on_every_rejection_cannot_loop() -> None:
    e, sent, _ = engine(now=600 * MIN)
    e.strategy.resubmit = True                   # type: ignore[attr-defined]
    e.on_bar(bar(0))
    assert "submit" not in commands(sent)
    assert e.counters["catchup_refused"] == MAX_CATCHUP_ANSWERS + 1 and e.orders == {}
    # the next bar is judged afresh
    e.strategy.resubmit = False                  # type: ignore[attr-defined]
    e.on_bar(bar(600 * MIN - MIN))
    assert commands(sent)[-3:] == ["submit", "cancel", "flatten"]


def test_timers_are_unaffected() -> None:
    class Timed(Trader):
        def on_timer(self, name: str) -> None:
            self.buy(1)

    sent: list[tuple[str, dict]] = []
    e = Engine(Instance(name="t1", **{"class": "x:Y"}, contracts=[C]), Timed, Timed.Config(),
               ManualClock(600 * MIN), lambda c, a: sent.append((c, a)), max_bar_age_ms=ALLOW)
    e.call("on_start")
    e.on_bar(bar(0))
    e.schedule("t", 1.0, False)
    e.fire_timer("t")
    assert commands(sent)[-1] == "submit"


def test_a_bar_sent_on_time_but_delivered_late_still_trades() -> None:
    # The feed sent the 00:09 minute 2 s after its close; the host, still starting (or slowed
    # by a loaded machine), hands it over 20 market minutes later: it is judged by when it
    # was sent, so it trades. The same bar sent 20 minutes late is a catch-up bar.
    e, sent, _ = engine(now=30 * MIN)
    e.on_bar(bar(9 * MIN), published_ms=10 * MIN + 2_000)
    assert commands(sent)[0] == "submit" and e.counters["catchup_bars"] == 0
    sent.clear()
    e.on_bar(bar(10 * MIN), published_ms=30 * MIN)
    assert "submit" not in commands(sent) and e.counters["catchup_bars"] == 1
