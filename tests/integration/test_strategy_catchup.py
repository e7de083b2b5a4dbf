"""After a feed-bars outage, its first good poll publishes every missed minute at once as finals:
a strategy host must run on_bar for them but send no order from a bar that closed longer ago than
its allowance (STRATEGY_MAX_BAR_AGE, never under 10 wall seconds of market time).

One system at 60x (sim, broker, store, series, feed-bars, feed-market, subscriptions, gateway)
and two real sandboxed hosts of one strategy that trades on every final bar (buy on an even
minute, sell on an odd one): `bare` with the rule off (STRATEGY_MAX_BAR_AGE=0: the unsafe case),
`guarded` with the default. feed-bars is stopped for 30 wall seconds (30 market minutes), then
started again. Judged at the venue (the sim's own order list, by customTag = client id) against
the bar each order came from and the market time its on_bar ran, as the strategy logged them:
nothing here depends on how fast anything ran, only on the outage outlasting the allowance.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from chillly.clock import ms_to_iso
from tests.integration.strategy_rig import Watcher, start_system, system_env
from tests.integration.test_gateway_support import Venue
from tests.support import Proc, Procs, aeventually

ACC = 2201
MIN = 60_000
ALLOWANCE = 600_000        # the default (120 s) raised to 10 wall seconds at 60x
#: The engine judges a bar by when the feed sent it; the strategy logs `now` when its on_bar
#: ran, a moment later (up to a few wall seconds on a loaded machine): a bar counts as plainly
#: late only this far past the allowance.
MARGIN = 240_000
OUTAGE_S = 30              # wall seconds: 30 market minutes, 16 of them past allowance + margin

EVERY = '''
from strategy_host.api import Strategy

class Every(Strategy):
    def on_bar(self, bar):
        cid = (self.buy if bar.t // 60000 % 2 == 0 else self.sell)(1)
        self.log.info("EVERY bar t=%d now=%d cid=%s", bar.t, self.now(), cid)

    def on_order(self, order):
        if order.state == "rejected":
            self.log.info("EVERY rejected %s: %s", order.client_id, order.reason)
'''

TOML = "".join(f'''
[strategies.{name}]
class = "every.py:Every"
contracts = ["ES"]
warmup = 10
''' for name in ("guarded", "bare"))


@dataclass(frozen=True)
class Seen:
    """One on_bar of the strategy: the bar, when it ran (market ms), the order it made."""
    t: int
    now: int
    cid: str

    @property
    def age(self) -> int:
        """Market ms from the bar's close to its on_bar."""
        return self.now - (self.t + MIN)

    @property
    def plainly_late(self) -> bool:
        return self.age > ALLOWANCE + MARGIN


def seen(host: Proc) -> list[Seen]:
    return [Seen(int(t), int(now), cid) for t, now, cid in
            re.findall(r"EVERY bar t=(\d+) now=(\d+) cid=(\S+)", host.log())]


def refused(host: Proc) -> dict[str, str]:
    """client id -> reason, of the orders refused as a catch-up bar's."""
    return {cid: why for cid, why in re.findall(r"EVERY rejected (\S+): (.*)", host.log())
            if why.startswith("catch-up bar")}


@pytest.mark.timeout(240)
async def test_no_orders_from_the_bars_a_feed_outage_replays(
        procs: Procs, bus_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "every.py").write_text(EVERY)
    env = system_env(tmp_path, TOML, SIM_ACCOUNTS=f"{ACC}:50KTC-V2-000001-{ACC}:50000",
                     FEED_INITIAL_LOOKBACK_MIN="3",
                     # Both hosts share the account: its order-rate share must never be what
                     # stops an order here (judged: the host's rule, not the gate's rate).
                     RISK_ACCOUNT_ORDERS_PER_MINUTE="1000",
                     RISK_STRATEGY_ORDERS_PER_MINUTE="1000")
    started = start_system(procs, bus_env, env,
                           only=("store", "series", "feed-bars", "feed-market"))
    guarded = procs.chillly("strategy-host", "guarded", name="strategy-guarded", env=env)
    bare = procs.chillly("strategy-host", "bare", name="strategy-bare",
                         env={**env, "STRATEGY_MAX_BAR_AGE": "0"})
    venue = Venue(f"http://127.0.0.1:{bus_env['SIM_PORT']}")
    w = Watcher(bus_env)
    await w.start()
    try:
        await w.wait_live("strategy-guarded", "strategy-bare", timeout=150)
        await aeventually(lambda: len(seen(guarded)) >= 2 and len(seen(bare)) >= 2, 120,
                          interval=0.3, what="both strategies trading on current bars")

        started["feed-bars"].terminate()
        await asyncio.sleep(OUTAGE_S)
        procs.chillly("feed-bars", name="feed-bars-again", env=env)

        def resumed() -> bool:
            g, no = seen(guarded), refused(guarded)
            last = max((i for i, s in enumerate(g) if s.cid in no), default=None)
            return last is not None and len(g) > last + 1 \
                and any(s.plainly_late for s in seen(bare))

        await aeventually(resumed, 90, interval=0.3, what="the catch-up replayed and over")

        def tags() -> set[str]:
            return {o["customTag"] for o in venue.orders(ACC)}

        # The unsafe case: without the rule, the replayed minutes went to the venue as a burst
        # of real orders, each for a minute that had closed more than 12 minutes before.
        burst = [s for s in seen(bare) if s.plainly_late]
        assert len(burst) >= 10, burst
        await aeventually(lambda: len([s for s in burst if s.cid in tags()]) >= 10, 30,
                          interval=0.3, what="the bare host's replayed orders at the venue")
        assert "catch-up" not in bare.log()

        # With the rule: on_bar ran for every replayed minute; every plainly late one, and
        # only ones past the allowance, had its order refused and was told why; trading
        # resumed with the first current bar.
        g, no = seen(guarded), refused(guarded)
        late = [s for s in g if s.cid in no]
        assert len(late) >= 10, (g, no)
        assert all(s.cid in no for s in g if s.plainly_late), (g, no)
        for s in late:
            why = no[s.cid]
            age_s = int(re.search(r"sent (\d+) s after its close", why).group(1))  # type: ignore[union-attr]
            assert ms_to_iso(s.t) in why and "allowance 600 s" in why, why
            assert ALLOWANCE / 1000 <= age_s <= s.age / 1000 + 1, (s, why)
        first = g.index(late[-1]) + 1
        ts = [s.t for s in g[g.index(late[0]):first + 1]]
        assert ts == list(range(ts[0], ts[-1] + MIN, MIN)), ts     # every minute, in order
        resume = g[first]
        assert resume.cid not in no
        # A host's commands leave one at a time in the order made: once the first current
        # bar's order is at the venue, any order made before it would be there too.
        await aeventually(lambda: resume.cid in tags(), 30, interval=0.3,
                          what=f"the first current bar's order {resume}")
        at_venue = tags()
        assert not [s for s in late if s.cid in at_venue], (late, sorted(at_venue))
        # Counted in the heartbeat, logged once for the run (start and end), not per bar.
        await aeventually(lambda: (w.counter("strategy-guarded", "catchup_refused") or 0)
                          >= len(late), 30, interval=0.2, what="catchup_refused counted")
        assert (w.counter("strategy-guarded", "catchup_bars") or 0) >= len(late)
        assert guarded.log().count("catch-up on ") == 1
        assert guarded.log().count("caught up on ") == 1
    finally:
        await w.close()
