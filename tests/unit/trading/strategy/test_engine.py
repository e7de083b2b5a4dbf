"""The strategy engine without a host: a ManualClock, a list for what it sends."""

from __future__ import annotations

from typing import Any

import pytest

from chillly.clock import ManualClock
from chillly.messages import Bar, FillEvent, OrderEvent, PositionEvent, Quote
from trading.strategy.api import Config, Strategy
from trading.strategy.engine import Engine, HostFatal
from trading.strategy.instance import Instance, allowed
from trading.venue_codes import OrderStatus, OrderType, Side

C = "CON.F.US.EP.Z26"


class P(Config):
    size: int = 1


class Recorder(Strategy):
    Config = P

    def on_start(self) -> None:
        self.seen: list[Any] = []

    def on_bar(self, bar: Bar) -> None:
        self.seen.append(("bar", bar.t, len(self.bars(n=1000))))
        if bar.c > 100 and self.position().flat and not self.open_orders():
            self.buy(self.config.size, sl=4, tp=8)

    def on_order(self, order: OrderEvent) -> None:
        self.seen.append(("order", order.client_id, order.state))

    def on_save(self) -> dict[str, Any]:
        return {"n": len(self.seen)}

    def on_load(self, state: dict[str, Any]) -> None:
        self.loaded = state


class Raiser(Strategy):
    def on_quote(self, quote: Quote) -> None:
        raise ValueError("boom")


def inst(**kw: Any) -> Instance:
    return Instance(**{"name": "t1", "class": "x:Y", "contracts": [C], **kw})


def engine(cls: type[Strategy] = Recorder, **kw: Any) -> tuple[Engine, list[tuple[str, dict]]]:
    sent: list[tuple[str, dict]] = []
    e = Engine(inst(), cls, cls.Config(), ManualClock(1_000), lambda c, a: sent.append((c, a)),
               **kw)
    e.call("on_start")
    return e, sent


def bar(t: int, c: float = 99.0, final: bool = True) -> Bar:
    return Bar(contract=C, tf="1m", t=t, o=c, h=c, l=c, c=c, volume=1, final=final)


def test_bars_warm_then_live_finals_once_in_order() -> None:
    e, _ = engine()
    assert e.warm(C, "1m", [[0, 1, 1, 1, 1, 1, True], [60_000, 1, 1, 1, 1, 1, True],
                            [120_000, 1, 1, 1, 1, 1, False]]) == 2
    e.on_bar(bar(60_000))            # already warm: no hook
    e.on_bar(bar(120_000, final=False))
    e.on_bar(bar(120_000))
    e.on_bar(bar(180_000))
    assert e.strategy.seen == [("bar", 120_000, 3), ("bar", 180_000, 4)]  # type: ignore[attr-defined]


def test_submit_ids_pending_reply_and_rejection() -> None:
    e, sent = engine()
    e.next_n = 7
    e.on_bar(bar(0, c=101))
    assert sent == [("submit", {"client_id": "t1-7", "contract": C, "side": "buy", "size": 1,
                                "type": "market", "sl_ticks": 4, "tp_ticks": 8})]
    assert [o.state for o in e.open_orders(None)] == ["pending"]
    e.on_bar(bar(60_000, c=102))      # an order is open: no second entry
    assert len(sent) == 1
    e.on_reply("submit", sent[0][1], True, {"status": "rejected", "rule": "max_lots",
                                            "message": "too big"}, None)
    assert e.open_orders(None) == []
    assert e.strategy.seen[-1] == ("order", "t1-7", "rejected")  # type: ignore[attr-defined]
    assert e.counters["order_rejects"] == 1


def test_order_events_track_open_orders_and_positions() -> None:
    e, sent = engine()
    e.on_bar(bar(0, c=101))
    cid = sent[0][1]["client_id"]
    e.on_reply("submit", sent[0][1], True, {"status": "accepted", "order_id": 5}, None)
    assert e.orders[cid].order_id == 5
    ev = dict(account=1, order_id=5, contract=C, status=1, side=0, size=1, order_type=2,
              owner="t1", client_id=cid)
    e.on_order(OrderEvent(**ev, state="working"))
    e.on_order(OrderEvent(**ev, state="filled"))
    assert e.open_orders(None) == []
    e.on_fill(FillEvent(account=1, trade_id=1, order_id=5, contract=C, side=0, size=1,
                        price=101.0, owner="t1", client_id=cid))
    e.on_position(PositionEvent(account=1, contract=C, side=2, size=3, owner="t1",
                                realized_pnl=10.0, open_pnl=-2.5))
    assert e.position(C).size == -3 and e.net_position() == -3 and e.day_pnl() == 7.5


def test_hook_errors_counted_then_fatal_in_a_row() -> None:
    e, _ = engine(Raiser, max_errors=3)
    q = Quote(contract=C, bid=1.0, ask=2.0)
    e.on_quote(q)
    e.on_quote(q)
    assert e.counters["hook_errors"] == 2
    with pytest.raises(HostFatal):
        e.on_quote(q)


def test_memory_error_is_fatal_at_once() -> None:
    class Leak(Strategy):
        def on_quote(self, quote: Quote) -> None:
            raise MemoryError

    e, _ = engine(Leak)
    with pytest.raises(HostFatal):
        e.on_quote(Quote(contract=C))


def test_submit_refuses_bad_calls() -> None:
    e, sent = engine()
    for kwargs in ({"size": 0}, {"size": 1, "limit": 1.0, "stop": 2.0}, {"size": 1, "sl": -1}):
        with pytest.raises(ValueError):
            e.submit("buy", kwargs.pop("size"), C, kwargs.get("limit"), kwargs.get("stop"),
                     kwargs.get("sl"), None)
    assert sent == []


def test_save_and_load_keep_the_counter_and_the_strategys_state() -> None:
    e, _ = engine()
    e.next_n = 42
    saved = e.save()
    e2, _ = engine()
    e2.load(saved)
    assert e2.next_n == 42 and e2.strategy.loaded == {"n": 0}  # type: ignore[attr-defined]


def test_an_instance_may_trade_live_only_on_the_account_it_names() -> None:
    explicit = inst(run_on=["12345"])
    assert allowed(explicit, True, 12345, None)[0]
    assert not allowed(explicit, True, 999, None)[0]
    assert not allowed(explicit, False, None, None)[0]   # a live-only instance skips the sim
    assert not allowed(inst(enabled=False), False, None, None)[0]


def test_events_reach_the_strategy_with_the_cores_enums() -> None:
    class Seer(Strategy):
        def on_start(self) -> None:
            self.seen: list[Any] = []

        def on_order(self, order: OrderEvent) -> None:
            self.seen.append(order)

        def on_fill(self, fill: FillEvent) -> None:
            self.seen.append(fill)

    e, _ = engine(Seer)
    cid = e.submit("sell", 1, C, None, 99.0, None, None)
    pending = e.orders[cid]
    assert pending.side is Side.SELL and pending.order_type is OrderType.STOP
    e.on_order(OrderEvent(account=1, order_id=5, contract=C, status=1, side=1, size=1,
                          order_type=4, owner="t1", state="working", client_id=cid))
    e.on_fill(FillEvent(account=1, trade_id=1, order_id=5, contract=C, side=1, size=1,
                        price=99.0, owner="t1", client_id=cid, pnl=12.5))
    order, fill = e.strategy.seen  # type: ignore[attr-defined]
    assert (order.side, order.order_type, order.status) == (Side.SELL, OrderType.STOP,
                                                            OrderStatus.OPEN)
    assert isinstance(order.side, Side) and isinstance(order.order_type, OrderType)
    assert fill.side is Side.SELL and fill.pnl == 12.5
    assert e.orders[cid].side is Side.SELL            # the open order it lists, too
    # A code the enum does not know reaches the strategy as the venue's int, not an error.
    e.on_order(OrderEvent(account=1, order_id=6, contract=C, status=1, side=0, size=1,
                          order_type=99, owner="t1", state="working", client_id="t1-x"))
    last = e.strategy.seen[-1]  # type: ignore[attr-defined]
    assert last.order_type == 99 and e.counters["hook_errors"] == 0
