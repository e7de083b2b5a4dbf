"""A flatten the venue cannot carry out never leaves the position naked (issue 20, section 2,
item 11), judged by the sim's own orders and positions.

Long 1 MES with its stop and target (placed at the sim while the market is open), then the
market shuts (Friday 16:00 CT on the sim's clock) and the gateway starts: the gate's flatten is
due (outside the session) and the venue refuses the close ("Outside of trading hours"). Before
the fix the gateway cancelled the stop and the target first (long 1, no stop) and retried on
every pass that changed its reason; now the legs stay working, the close is tried again with
backoff, and one alarm says what is open and why."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from tests.integration.test_gateway_support import Stack, Tap, _stack, dump
from tests.sim_client import anchor_for, counters
from tests.support import aeventually, eventually

#: Friday 2026-12-04 15:57:30 CT when the sim starts, 4 market seconds a real second: the
#: session closes at 16:00, some 37 real seconds later. Before then the broker and sim must
#: start and the entry fill with its legs: a loaded CI machine took 10-15 s to start 9
#: processes, so the 20 s left from 15:58:30 CT were too near.
FRIDAY_1557 = int(datetime(2026, 12, 4, 21, 57, 30, tzinfo=timezone.utc).timestamp() * 1000)
SPEED = 4
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module", name="stack")
def stack_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from _stack(tmp_path_factory, SIM_ALWAYS_OPEN="0", CLOCK_SPEED=str(SPEED),
                      CLOCK_ANCHOR=anchor_for(FRIDAY_1557, SPEED),
                      SIM_ENFORCE="max_position,mll,daily_loss")


def _open(stack: Stack) -> bool:
    return bool(httpx.get(f"{stack.base}/admin/state").json()["open"])


async def test_a_close_refused_while_the_market_is_shut_keeps_the_legs(stack: Stack) -> None:
    acc = stack.new_account()
    mes = stack.venue.contract("MES")
    assert _open(stack), "the session must still be open to enter"
    stack.venue.place(acc, contractId=mes["id"], type=2, side=0, size=1,
                      stopLossBracket={"ticks": -40, "type": 4},
                      takeProfitBracket={"ticks": 40, "type": 1})
    eventually(lambda: [p["size"] for p in stack.venue.positions(acc)] == [1], timeout=30,
               what="long 1 at the venue")

    def legs() -> list[dict[str, Any]]:
        return [o for o in stack.venue.orders(acc) if o["status"] == 1 and o["side"] == 1]

    eventually(lambda: len(legs()) == 2, what="stop and target working")
    eventually(lambda: not _open(stack), timeout=120, interval=1.0, what="the market shut")
    places_before = counters(stack.base)["paths"].get("/api/order/place", 0)
    stack.gateway(acc)
    async with Tap(stack.env) as tap:
        alarms: list[dict[str, Any]] = []
        tap.bus.on("alarm.gateway.", lambda env: alarms.append(env.payload))
        await tap.ready()
        await aeventually(lambda: counters(stack.base)["paths"].get("/api/order/place", 0)
                          > places_before, timeout=30, what="the gate's close refused")
        await asyncio.sleep(8)          # 8 real seconds of gate passes (32 market seconds)
        # judged at the venue: still long 1, its stop and target still working
        assert [p["size"] for p in stack.venue.positions(acc)] == [1]
        assert len(legs()) == 2, dump(stack.venue.orders(acc))
        # tried again with backoff (1, 2, 4 ... s), not on every pass
        places = counters(stack.base)["paths"].get("/api/order/place", 0) - places_before
        assert 1 <= places <= 6, places
        await aeventually(lambda: any(a["code"] == "flatten_refused" and a["active"]
                                      for a in alarms), what="the flatten_refused alarm")
        raised = [a for a in alarms if a["code"] == "flatten_refused" and a["active"]]
        assert len(raised) == 1, dump(alarms)
        # and no alarm flaps meanwhile (the blind one went on and off ~30 times a second)
        assert len([a for a in alarms if a["code"] == "blind"]) <= 2, dump(alarms)
        text = raised[0]["text"]
        assert "long 1" in text and "Outside of trading hours" in text and "2 protective" \
            in text, text
