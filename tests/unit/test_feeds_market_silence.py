"""feeds/market_silence.py: one contract silent while the hub flows is resubscribed, then the
hub reconnected; nothing is judged while the market is closed or the whole hub is quiet."""

from __future__ import annotations

from feeds.market_silence import ContractSilence

STALE = 30_000


class Real:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def watch(open_: bool = True) -> tuple[ContractSilence, Real]:
    real = Real()
    w = ContractSilence(STALE, 1.0, lambda _ms: open_, monotonic=real)
    w.restart(["ES", "NQ"], 0)
    return w, real


def test_a_silent_contract_is_resubscribed_then_the_hub_reconnected_and_data_clears_it() -> None:
    w, real = watch()
    real.t = 5.0
    w.seen("NQ", STALE - 1)
    acts = w.check(STALE, hub_quiet_ms=1)
    assert acts.resubscribe == ["ES"] and not acts.reconnect and w.stale == {"ES"}
    w.seen("NQ", 2 * STALE - 1)
    real.t = 10.0
    assert w.check(2 * STALE - 1, hub_quiet_ms=0).reconnect == []      # not yet again
    acts = w.check(2 * STALE, hub_quiet_ms=1)
    assert acts.reconnect == ["ES"] and not acts.resubscribe
    w.restart(["ES", "NQ"], 2 * STALE)                                  # the new connection
    assert w.seen("ES", 2 * STALE + 5) is True and w.stale == set()
    assert w.seen("ES", 2 * STALE + 6) is False


def test_nothing_is_judged_while_closed_or_while_the_whole_hub_is_quiet() -> None:
    w, real = watch(open_=False)
    real.t = 100.0
    assert w.check(10 * STALE, hub_quiet_ms=0).resubscribe == []
    w, real = watch()
    real.t = 100.0
    acts = w.check(10 * STALE, hub_quiet_ms=10 * STALE)                # the hub agent's job
    assert not acts.resubscribe and not acts.reconnect and not w.stale


def test_too_little_real_time_is_not_silence() -> None:
    w, real = watch()
    real.t = 0.5                                                        # a fast clock
    assert w.check(STALE, hub_quiet_ms=0).resubscribe == []
