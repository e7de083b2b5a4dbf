"""What a trader's tools say when nothing moves or a request makes no sense (issue 21, items 7
and 12): `bars` refuses a timeframe no process builds, every tool's `--json` is one JSON
document, and `tap`, `bars` and `status` say the market is closed and when it opens."""

from __future__ import annotations

import json

from tests.support import START_TIMEOUT, Procs, aeventually, market_at, next_weekday_at

SATURDAY = 5
TUESDAY = 1


def test_bars_refuses_a_timeframe_no_process_builds(procs: Procs) -> None:
    tool = procs.chillly("bars", "ES", "--tf", "7m", "--db")
    assert tool.wait(60) == 2
    lines = tool.log().strip().splitlines()
    assert lines == ["chillly bars: no process builds 7m bars; the timeframes are "
                     "1m, 5m, 15m, 30m, 1h, 4h, 1d (AGGREGATOR_TIMEFRAMES)"], lines
    # What the aggregator is configured to build is what the tool accepts.
    tool = procs.chillly("bars", "ES", "--tf", "7m", "--db",
                         env={"AGGREGATOR_TIMEFRAMES": "7m"}, name="bars-7m")
    assert tool.wait(60) == 2 and "no market database" in tool.log(), tool.log()


async def test_tap_and_status_say_the_market_is_closed_and_when_it_opens(procs, broker) -> None:
    closed = market_at(next_weekday_at(SATURDAY, 12, open_market=False))
    tap = procs.chillly("tap", "bar.1m.", env=closed, name="tap-closed")
    await aeventually(lambda: "listening" in tap.log(), START_TIMEOUT, what="tap listening")
    note = next(ln for ln in tap.log().splitlines() if "the market is closed" in ln)
    assert "it opens Sun " in note and "17:00 CT" in note and "at CLOCK_SPEED=" in note

    status = procs.chillly("status", "--wait", "1", "--json", env=closed, stdout_pipe=True,
                           name="status-closed")
    status.wait(60)
    doc = json.loads(status.popen.stdout.read().decode())  # type: ignore[union-attr]
    assert doc["broker"] and "it opens Sun " in doc["market_closed"]
    status = procs.chillly("status", "--wait", "1", env=closed, stdout_pipe=True,
                           name="status-closed-text")
    status.wait(60)
    assert "the market is closed; it opens Sun " in status.popen.stdout.read().decode()  # type: ignore[union-attr]

    opened = market_at(next_weekday_at(TUESDAY, 15, open_market=True))
    tap = procs.chillly("tap", "bar.1m.", env=opened, name="tap-open")
    status = procs.chillly("status", "--wait", "1", "--json", env=opened, stdout_pipe=True,
                           name="status-open")
    status.wait(60)
    assert json.loads(status.popen.stdout.read().decode())["market_closed"] is None  # type: ignore[union-attr]
    await aeventually(lambda: "listening" in tap.log(), START_TIMEOUT, what="tap listening")
    assert "closed" not in tap.log()
    # A market that never closes (the sim's SIM_ALWAYS_OPEN demo) has nothing to say.
    tap = procs.chillly("tap", "bar.1m.", env={**closed, "FEED_MARKET_HOURS": "always"},
                        name="tap-always")
    await aeventually(lambda: "listening" in tap.log(), START_TIMEOUT, what="tap listening")
    assert "closed" not in tap.log()
