"""The strategy engine, loader and state file without processes (ManualClock, fake send)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chillly.clock import ManualClock
from chillly.messages import Bar, FillEvent, OrderEvent, PositionEvent, Quote
from strategy_host.api import Config, Strategy
from strategy_host.config import Instance, LoadError, allowed, load_class, read_file
from strategy_host.config import validate_params
from strategy_host.engine import Engine, HostFatal
from strategy_host.state import StateFile

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


def test_state_round_trip_keeps_counter(tmp_path: Path) -> None:
    e, _ = engine()
    e.next_n = 42
    store = StateFile(tmp_path)
    store.save(e.save())
    e2, _ = engine()
    e2.load(store.load())
    assert e2.next_n == 42 and e2.strategy.loaded == {"n": 0}  # type: ignore[attr-defined]
    (tmp_path / "state.json").write_text("{torn")
    assert store.load() == {} and (tmp_path / "state.bad").exists()


def test_submit_refuses_bad_calls() -> None:
    e, sent = engine()
    for kwargs in ({"size": 0}, {"size": 1, "limit": 1.0, "stop": 2.0}, {"size": 1, "sl": -1}):
        with pytest.raises(ValueError):
            e.submit("buy", kwargs.pop("size"), C, kwargs.get("limit"), kwargs.get("stop"),
                     kwargs.get("sl"), None)
    assert sent == []


TOML_OK = """
[strategies.a]
class = "strategy_host.examples.ema_cross:EmaCross"
contract = "ES"
timeframes = ["5m"]
[strategies.a.params]
fast = 5
[strategies.a.limits]
max_lots = 2
"""


def test_loader_reads_and_validates(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(TOML_OK)
    a = read_file(f)["a"]
    assert a.contracts == ["ES"] and a.limits.max_lots == 2 and a.run_on == ["sim"]
    cls = load_class(a, tmp_path, f)
    assert validate_params(a, cls, f).fast == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize("text,expected", [
    (TOML_OK + '\n[strategies.a]\nclass = "x:Y"\n', "[strategies.a] name: duplicate"),
    (TOML_OK.replace('contract = "ES"', 'contract = "es!"'), "[strategies.a] contracts: "
     "unknown contract"),
    (TOML_OK.replace('"5m"', '"7x"'), "[strategies.a] timeframes"),
    (TOML_OK.replace("max_lots = 2", "max_lot = 2"), "[strategies.a] limits.max_lot: unknown"),
    (TOML_OK.replace('class = "strategy_host.examples.ema_cross:EmaCross"\n', ""),
     "[strategies.a] class: missing"),
])
def test_loader_mistakes_name_file_instance_field(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(LoadError) as err:
        read_file(f)
    assert str(f) in str(err.value) and expected in str(err.value), str(err.value)


def test_unknown_class_and_bad_params(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(TOML_OK.replace("ema_cross:EmaCross", "ema_cross:Nope"))
    with pytest.raises(LoadError, match=r"\[strategies.a\] class: unknown class"):
        load_class(read_file(f)["a"], tmp_path, f)
    f.write_text(TOML_OK.replace("fast = 5", "fast = 'quick'"))
    a = read_file(f)["a"]
    with pytest.raises(LoadError, match=r"\[strategies.a\] params.fast: .*quick"):
        validate_params(a, load_class(a, tmp_path, f), f)
    (tmp_path / "mine.py").write_text(
        "from strategy_host.api import Strategy\nclass Mine(Strategy):\n    pass\n")
    f.write_text(TOML_OK.replace("strategy_host.examples.ema_cross:EmaCross", "mine.py:Mine")
                 .replace("[strategies.a.params]\nfast = 5\n", ""))
    assert load_class(read_file(f)["a"], tmp_path, f).__name__ == "Mine"


def test_shipped_examples_never_trade_real_money() -> None:
    """Every instance of the shipped strategies.toml runs on the sim only: with credentials
    set (live venue) none is allowed, whatever the account."""
    from tests.support import ROOT

    instances = read_file(ROOT / "strategies.toml")
    assert any(allowed(i, False, None, None)[0] for i in instances.values())
    for i in instances.values():
        assert not allowed(i, True, 12345, "50KTC-V2-1")[0]
    explicit = inst(run_on=["12345"])
    assert allowed(explicit, True, 12345, None)[0]
    assert not allowed(explicit, True, 999, None)[0]
    assert not allowed(explicit, False, None, None)[0]   # a live-only instance skips the sim


def test_crash_loop_backs_off_and_a_clean_stop_resets(tmp_path: Path) -> None:
    from strategy_host.state import RunMarker

    m = RunMarker(tmp_path)
    assert m.start(1000.0) == 0.0           # first start
    assert m.start(1010.0) == 1.0           # the last run died 10 s in: back off
    assert m.start(1020.0) == 2.0
    assert m.start(1030.0) == 4.0
    m.clean_stop()
    assert m.start(1040.0) == 0.0           # a clean stop (restart, SIGTERM) does not count
    assert m.start(1200.0) == 0.0           # a run of over a minute does not count either


def test_watchdog_reports_a_hook_over_budget_once_and_clears() -> None:
    import time

    from strategy_host.watchdog import Watchdog

    calls: list[tuple[bool, str]] = []
    w = Watchdog(budget_ms=30, kill_s=5, alarm=lambda active, text: calls.append((active, text)))
    w.start()
    try:
        w.arm("on_bar")
        time.sleep(0.01)
        w.disarm()
        assert w.slow == 0 and calls == []
        w.arm("on_bar")
        time.sleep(0.2)
        assert w.slow == 1 and calls[0][0] is True and "on_bar" in calls[0][1]
        w.disarm()
        assert calls[-1][0] is False and w.last_slow.startswith("on_bar ")
    finally:
        w.stop()


def test_scrubbed_env_keeps_no_secret() -> None:
    from strategy_host.sandbox import SCRUBBED_MARK, scrubbed_env

    parent = {"TOPSTEP_API_KEY": "k", "BUS_CURVE_CLIENT_SECRET": "s", "HOME": "/root",
              "AWS_SECRET_ACCESS_KEY": "a", "LANG": "C.UTF-8"}
    env = scrubbed_env(parent, {"BUS_PUBLISH_ADDR": "tcp://127.0.0.1:1", "TOPSTEP_X": "leak"})
    assert env[SCRUBBED_MARK] == "1" and env["BUS_PUBLISH_ADDR"] == "tcp://127.0.0.1:1"
    assert not [k for k in env if k.startswith(("TOPSTEP", "BUS_CURVE", "AWS", "HOME"))]
