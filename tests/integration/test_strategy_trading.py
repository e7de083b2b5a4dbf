"""Each shipped example trades on the sim at 60x through the real gateway and stays within its
limits: the gateway's own positions and the sim's orders are the judges."""

from __future__ import annotations

from pathlib import Path

import httpx

import pytest

from tests.integration.strategy_rig import (
    EMA, MR, ORB, Watcher, start_system, system_env,
)
from tests.support import Procs, aeventually
from trading.venue_codes import OrderType

TOML = EMA + "\n" + ORB + "\n" + MR

NAMES = ("ema", "orb", "mr")


@pytest.mark.timeout(300)
async def test_examples_trade_on_the_sim_within_limits(procs: Procs, bus_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    env = system_env(tmp_path, TOML)
    start_system(procs, bus_env, env)
    for n in NAMES:
        procs.chillly("strategy-host", n, name=f"strategy-{n}", env=env)
    w = Watcher(bus_env)
    await w.start()
    try:
        await w.wait_live(*(f"strategy-{n}" for n in NAMES), timeout=120)
        max_seen: dict[str, int] = {n: 0 for n in NAMES}

        async def filled() -> bool:
            for n in NAMES:
                pos = await w.ask("gateway", "positions", {"owner": n})
                for p in pos["positions"]:
                    max_seen[n] = max(max_seen[n], abs(p["size"]))
            return all((w.counter(f"strategy-{n}", "fills") or 0) >= 1 for n in NAMES)

        await aeventually(filled, 150, interval=0.5, what="a fill for every example")
        orders = await w.ask("gateway", "orders", {"open_only": False})
        for n in NAMES:
            mine = [o for o in orders["orders"] if o["owner"] == n]
            assert mine and all(o["client_id"].startswith(f"{n}-") for o in mine
                                if o.get("client_id") and o.get("parent_id") is None)
            assert max_seen[n] <= 1, (n, max_seen[n])
            assert (w.counter(f"strategy-{n}", "hook_errors") or 0) == 0
        # Quotes only reach a class that has on_quote.
        assert w.counter("strategy-ema", "quotes") == 0 and w.counter("strategy-mr", "quotes") > 0
        ema = [o for o in orders["orders"] if o["owner"] == "ema"]
        assert any(o.get("parent_id") for o in ema), "the EMA entries carry brackets"
        orb = [o for o in orders["orders"] if o["owner"] == "orb"
               and o["order_type"] == OrderType.STOP]
        assert orb, "the breakout uses stop orders"
        mr = [o for o in orders["orders"] if o["owner"] == "mr"
              and o["order_type"] == OrderType.LIMIT]
        assert mr, "the mean reversion uses limit orders"
        # The sim's referee: no Topstep rule was breached by any of it.
        breaches = httpx.get(f"http://127.0.0.1:{bus_env['SIM_PORT']}/admin/breaches").json()
        assert breaches["breaches"] == [], breaches
    finally:
        await w.close()
