"""What a strategy is told, through a real host, gateway and sim at 60x: its contract's tick in
`on_start`, sides and order types as the core's enums, and `fill.pnl` as its own P&L.

The P&L case needs two owners in one contract at two prices: the strategy buys 1 ES, the market
is drifted up, a manual order buys 1 more (the account's average is now between the two), then
the strategy's lot is flattened. The venue prices that closing trade against the account's
average; the strategy must be told its own figure, against its own entry.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from chillly import topics
from chillly.codec import Envelope
from chillly.tools_socket import ask as ask_tools
from tests.integration.strategy_rig import Watcher, start_system, system_env
from tests.support import START_TIMEOUT, Procs, aeventually, tools_path

PROBE = '''
from strategy_host.api import Strategy

class Probe(Strategy):
    def on_start(self):
        self.log.info("PROBE start tick=%r", self.tick_size())
    def on_bar(self, bar):
        if not getattr(self, "sent", False):
            self.sent = True
            self.buy(1)
    def on_order(self, order):
        self.log.info("PROBE order %s side=%r type=%r", order.state, order.side, order.order_type)
        if order.state == "rejected" and (order.reason or "").startswith("catch-up"):
            self.sent = False          # sent from a catch-up bar: buy on the next one
    def on_fill(self, fill):
        self.log.info("PROBE fill side=%r price=%r pnl=%r", fill.side, fill.price, fill.pnl)
'''

TOML = '[strategies.probe]\nclass = "probe.py:Probe"\ncontracts = ["ES"]\nwarmup = 10\n'
ES_TICK, ES_TICK_VALUE = 0.25, 12.5


def journal_pnl(db: Path, order_id: int) -> list[float | None]:
    """The venue's P&L of each trade of an order, as the gateway journaled it."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT pnl FROM fills WHERE order_id = ?",
                                           (order_id,))]
    finally:
        conn.close()


def filled(orders: list[dict[str, Any]], owner: str) -> list[dict[str, Any]]:
    return [o for o in orders if o["owner"] == owner and o["state"] == "filled"]


@pytest.mark.timeout(300)
async def test_a_strategy_is_told_its_tick_enums_and_its_own_pnl(
        procs: Procs, bus_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    env = system_env(tmp_path, TOML)
    start_system(procs, bus_env, env, only=("store", "series", "feed-bars", "feed-market"))
    host = procs.chillly("strategy-host", "probe", name="strategy-probe", env=env)
    w = Watcher(bus_env)
    mids: list[float] = []
    await w.start()
    try:
        await w.wait_live("strategy-probe", timeout=150)
        assert "PROBE start tick=0.25" in host.log(), host.log()[-3000:]

        async def entry() -> list[dict[str, Any]]:
            return filled((await w.ask("gateway", "orders", {"open_only": False}))["orders"],
                          "probe")

        await aeventually(entry, 120, interval=0.5, what="the probe's entry filled")
        first = (await entry())[0]
        es, p1 = first["contract"], float(first["filled_price"])

        def on_quote(env_: Envelope) -> None:
            q = env_.payload
            if q.get("bid") is not None and q.get("ask") is not None:
                mids.append((q["bid"] + q["ask"]) / 2)

        w.bus.on(topics.quote(es), on_quote)
        await w.bus.ready(timeout=START_TIMEOUT)
        sim = f"http://127.0.0.1:{bus_env['SIM_PORT']}"
        r = httpx.post(f"{sim}/admin/market", json={"contractId": es, "ticks": 60,
                                                     "over_seconds": 120, "volatility": 0.3},
                       timeout=5)
        assert r.status_code == 200, r.text
        await aeventually(lambda: mids and abs(mids[-1] - p1) >= 20 * ES_TICK, 120,
                          interval=0.2, what="the market 20 ticks away from the entry")
        # The trader's own order and the flatten go where the trader's tools send them.
        tools = tools_path({**bus_env, **env})
        ok, reply, error = await ask_tools(tools, "submit", {
            "client_id": "manual-1", "contract": es, "side": "buy", "size": 1, "type": "market"})
        assert ok and reply["status"] == "accepted", (reply, error)

        async def manual() -> list[dict[str, Any]]:
            return filled((await w.ask("gateway", "orders", {"open_only": False}))["orders"],
                          "manual")

        await aeventually(manual, 60, interval=0.3, what="the manual buy filled")
        p2 = float((await manual())[0]["filled_price"])
        assert p2 != p1, "the two entries must differ in price for the test to judge anything"
        ok, done, error = await ask_tools(tools, "flatten", {"owner": "probe", "contract": es})
        assert ok and done["status"] == "done" and len(done["orders"]) == 1, (done, error)
        closing = done["orders"][0]

        async def closed() -> dict[str, Any] | None:
            for o in (await w.ask("gateway", "orders", {"open_only": False}))["orders"]:
                if o["order_id"] == closing and o["state"] == "filled":
                    return o  # type: ignore[no-any-return]
            return None

        await aeventually(closed, 60, interval=0.3, what="the probe's lot flattened")
        p3 = float((await closed() or {})["filled_price"])
        await aeventually(lambda: len(re.findall(r"PROBE fill ", host.log())) >= 2, 30,
                          interval=0.2, what="both fills told to the strategy")
        told = re.findall(r"PROBE fill side=(<Side\.\w+: \d>) price=(\S+) pnl=(\S+)", host.log())
        assert [t[0] for t in told] == ["<Side.BUY: 0>", "<Side.SELL: 1>"], told
        assert told[0][2] == "None"                         # an opening fill has no P&L
        own = round((p3 - p1) / ES_TICK * ES_TICK_VALUE, 2)
        # The venue's own figure for that trade (kept in the gateway's journal) is against the
        # account's average: telling the strategy that one would be wrong.
        [venue] = await aeventually(lambda: journal_pnl(Path(env["GATEWAY_DATABASE_PATH"]),
                                                        closing), 10, interval=0.2,
                                    what="the closing trade in the journal")
        assert venue == round((p3 - (p1 + p2) / 2) / ES_TICK * ES_TICK_VALUE, 2) != own
        assert float(told[1][2]) == own, (told, p1, p2, p3, venue)
        # Order events carry the enums too (the entry was a market order).
        assert "side=<Side.BUY: 0> type=<OrderType.MARKET: 2>" in host.log()
    finally:
        await w.close()
