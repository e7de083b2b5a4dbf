"""feed-bars against the real sim: the final 1m stream equals the venue's own bars, one per
minute, none twice, through a 10-minute venue outage and a restart, for two contracts at once;
backfill on request."""

from __future__ import annotations

import json

from chillly.clock import MINUTE_MS
from chillly.messages import Bar, BarBatch, ClockTick
from tests.integration.test_feeds_helpers import (Collect, Stack, assert_finals_match_venue,
                                                  stack_env, wait_finals)
from tests.support import aeventually

ES, NQ = "CON.F.US.EP.", "CON.F.US.ENQ."


def contract_ids(col: Collect) -> list[str]:
    return sorted({b.contract for b in col.items if isinstance(b, Bar)})


async def test_final_bars_equal_the_venue_through_an_outage_a_restart_and_a_crash(procs, bus) -> None:  # type: ignore[no-untyped-def]
    procs.env.update(stack_env(speed=60))
    stack = Stack(procs)
    col = Collect(bus, "bar.1m.")
    ticks = Collect(bus, "clock.1m.")
    alarms = Collect(bus, "alarm.feed-bars.")
    await stack.start_sim()
    stack.start("subscriptions")
    stack.start("feed-bars")
    await aeventually(lambda: len(contract_ids(col)) == 2, timeout=20, what="bars of ES and NQ")
    es = next(c for c in contract_ids(col) if c.startswith(ES))
    nq = next(c for c in contract_ids(col) if c.startswith(NQ))
    await wait_finals(col, es, 2)
    await wait_finals(col, nq, 2)

    # A 10-minute venue outage (every API call answers 500): no finals, then the hole is filled.
    stack.faults(rest_fail_rate=1.0)
    down = stack.market_now()
    await aeventually(lambda: stack.market_now() >= down + 10 * MINUTE_MS, timeout=20,
                      what="ten market minutes of outage")
    assert all(b.t < down for b in col.finals(es) + col.finals(nq))
    await aeventually(lambda: any(a.code == "venue_unreachable" and a.active
                                  for a in alarms.items), timeout=10, what="the outage alarm")
    stack.faults(rest_fail_rate=0.0)
    await wait_finals(col, es, 1, after=down + 10 * MINUTE_MS)
    await wait_finals(col, nq, 1, after=down + 10 * MINUTE_MS)
    await aeventually(lambda: not alarms.items[-1].active, timeout=10, what="the alarm cleared")

    # A restart: the high-water mark on disk makes it resume exactly where it stopped.
    assert stack.children["feed-bars"].terminate() == 0
    hwm = json.loads((procs.tmp / "run" / "sim" / "feed-bars-hwm.json").read_text())
    await aeventually(lambda: col.finals(es)[-1].t == hwm[es], timeout=5,
                      what="the saved high-water mark is the last final published")
    stopped = stack.market_now()
    await aeventually(lambda: stack.market_now() >= stopped + 4 * MINUTE_MS, timeout=10,
                      what="four market minutes without feed-bars")
    stack.start("feed-bars")
    await wait_finals(col, es, 1, after=stopped + 4 * MINUTE_MS)
    await wait_finals(col, nq, 1, after=stopped + 4 * MINUTE_MS)

    # A crash (SIGKILL, no stop path at all), then a restart: no hole and no duplicate either.
    stack.children["feed-bars"].kill()
    crashed = stack.market_now()
    await aeventually(lambda: stack.market_now() >= crashed + 3 * MINUTE_MS, timeout=10,
                      what="three market minutes after the crash")
    stack.start("feed-bars")
    await wait_finals(col, es, 1, after=crashed + 3 * MINUTE_MS)
    await wait_finals(col, nq, 1, after=crashed + 3 * MINUTE_MS)

    # Minute boundaries from the clock (FEED_MARKET_HOURS=always: every minute).
    starts = [t.t for t in ticks.items if isinstance(t, ClockTick)]
    assert len(starts) >= 10
    breaks = [b - a for a, b in zip(starts, starts[1:]) if b - a != MINUTE_MS]
    assert len(breaks) <= 2  # feed-bars was down twice: the restart and the crash

    for cid in (es, nq):
        finals = col.finals(cid)
        assert_finals_match_venue(stack, finals)
        assert finals[0].t < down < stopped < finals[-1].t
        # partial revisions came before each final, with rising revs, none after it
        for f in finals[-3:]:
            revs = [b.rev for b in col.items if isinstance(b, Bar) and b.contract == cid
                    and b.t == f.t]
            assert revs == sorted(revs)


async def test_backfill_publishes_history_and_replies_with_count_and_range(procs, bus) -> None:  # type: ignore[no-untyped-def]
    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES"))
    stack = Stack(procs)
    hist = Collect(bus, "hist.")
    await stack.start_sim()
    stack.start("feed-bars")
    tool = procs.chillly("backfill", "ES", "--days", "0.5", stdout_pipe=True)
    out, _ = tool.popen.communicate(timeout=30)
    assert tool.popen.returncode == 0, out
    line = out.decode().strip()
    cid = line.split()[0]
    count = int(line.split(": ")[1].split()[0])
    assert cid.startswith(ES) and count > 600  # about 720 minutes in half a day
    def history() -> list[Bar]:  # backfill sends history in batches (BarBatch)
        return [b for m in hist.items if isinstance(m, BarBatch) for b in m.bars()]

    await aeventually(lambda: len(history()) >= count, timeout=10, what="the history bars")
    bars = history()
    assert all(len(m.rows) <= 500 for m in hist.items)
    assert all(b.final and b.tf == "1m" and b.contract == cid for b in bars)
    ts = [b.t for b in bars]
    assert ts == sorted(set(ts))
    venue = stack.venue_bars(cid, ts[0], ts[-1] + MINUTE_MS)
    assert [[b.t, b.o, b.h, b.l, b.c, b.volume] for b in bars] == venue

    reply = await bus.request("feeds", "backfill", {"contract": cid, "tf": "1h", "days": 1},
                              timeout=10)
    assert reply.ok and reply.result["tf"] == "1h" and reply.result["count"] > 0
    bad = await bus.request("feeds", "backfill", {"contract": cid, "tf": "7x", "days": 1})
    assert not bad.ok and "timeframe" in bad.error
    unknown = procs.chillly("backfill", "NOPE", "--days", "1", stdout_pipe=True)
    unknown.popen.communicate(timeout=30)
    assert unknown.popen.returncode == 1
