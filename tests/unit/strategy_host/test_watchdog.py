"""The hook watchdog's thread, with a short budget (no process)."""

from __future__ import annotations

import time

from strategy_host.watchdog import Watchdog


def test_watchdog_reports_a_hook_over_budget_once_and_clears() -> None:
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


def test_watchdog_keeps_hook_durations_for_the_heartbeat() -> None:
    w = Watchdog(budget_ms=1000, kill_s=5)
    assert w.hook_p99_us() == 0
    for _ in range(3):
        w.arm("on_bar")
        time.sleep(0.002)
        w.disarm()
    assert w.hook_p99_us(reset=True) >= 2000      # a lower bound: sleep never returns early
    assert w.hook_p99_us() == 0                    # each heartbeat starts afresh
