"""History and live are one record: bars from History/retrieveBars at 30s, 1m, 5m and 1h equal
the aggregation of the prints the market hub streamed for the same window.

The sim runs at CLOCK_SPEED=3600 (an hour of market per real second), so a couple of seconds of
streaming cover whole hourly buckets. Plain pysignalr and plain httpx only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from pysignalr.client import SignalRClient

from chillly.clock import HOUR_MS, MINUTE_MS, iso_to_ms
from tests.sim_client import login, sim_env
from tests.support import aeventually, running_sim


@pytest.fixture(scope="module")
def fast_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("sim-fast")
    anchor = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = sim_env(tmp, CLOCK_SPEED="3600", CLOCK_ANCHOR=anchor, SIM_ROOTS="EP",
                  SIM_RATE_BARS="100000", SIM_RATE_OTHER="100000")
    with running_sim(tmp, env) as base:
        yield base


async def stream_prints(base: str, token: str, cid: str, market_ms: int) -> list[tuple[int, float, int]]:
    """(t, price, volume) of every GatewayTrade print until they span `market_ms`."""
    client = SignalRClient(f"{base}/hubs/market?access_token={token}", max_size=2**24)
    prints: list[tuple[int, float, int]] = []

    async def on_open() -> None:
        await client.send("SubscribeContractTrades", [cid])

    async def on_trade(args: list[Any]) -> None:
        assert args[0] == cid
        prints.extend((iso_to_ms(p["timestamp"]), p["price"], p["volume"]) for p in args[1])

    client.on_open(on_open)
    client.on("GatewayTrade", on_trade)
    task = asyncio.create_task(client.run())
    try:
        await aeventually(lambda: prints and prints[-1][0] - prints[0][0] > market_ms,
                          timeout=30, what="prints spanning the window")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return prints


def aggregate(prints: list[tuple[int, float, int]], span: int) -> dict[int, dict[str, Any]]:
    """Complete buckets of `span` ms fully inside the streamed interval."""
    first, last = prints[0][0], prints[-1][0]
    out: dict[int, dict[str, Any]] = {}
    for t, p, v in prints:
        a = t - t % span
        if a <= first or a + span > last:
            continue
        bar = out.get(a)
        if bar is None:
            out[a] = {"o": p, "h": p, "l": p, "c": p, "v": v}
        else:
            bar["h"] = max(bar["h"], p)
            bar["l"] = min(bar["l"], p)
            bar["c"] = p
            bar["v"] += v
    return out


async def test_retrieve_bars_equals_the_streamed_prints(fast_sim: str) -> None:
    token = login(fast_sim)
    auth = {"Authorization": f"Bearer {token}"}
    contracts = httpx.post(f"{fast_sim}/api/Contract/available", json={"live": False},
                           headers=auth).json()["contracts"]
    cid = next(c["id"] for c in contracts if c["activeContract"])
    prints = await stream_prints(fast_sim, token, cid, 2 * HOUR_MS + 5 * MINUTE_MS)
    times = [p[0] for p in prints]
    assert times == sorted(times)
    for unit, number, span in ((1, 30, 30_000), (2, 1, MINUTE_MS), (2, 5, 5 * MINUTE_MS),
                               (3, 1, HOUR_MS)):
        expected = aggregate(prints, span)
        assert len(expected) >= max(1, 2 * HOUR_MS // span - 3), f"unit {unit} x{number}"
        start, end = min(expected), max(expected) + span
        body = {"contractId": cid, "live": False,
                "startTime": datetime.fromtimestamp(start / 1000, timezone.utc).isoformat(),
                "endTime": datetime.fromtimestamp(end / 1000, timezone.utc).isoformat(),
                "unit": unit, "unitNumber": number, "limit": 20_000,
                "includePartialBar": False}
        got = httpx.post(f"{fast_sim}/api/History/retrieveBars", json=body, headers=auth).json()
        assert got["success"], got
        bars = {iso_to_ms(b["t"]): {k: b[k] for k in "ohlcv"} for b in got["bars"]}
        assert bars == expected, f"unit {unit} x{number}"
