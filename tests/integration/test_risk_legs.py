"""A bracket leg grown past its position, judged by the sim's referee (issue 20, section 2,
item 1). The sim is lax (SIM_ENFORCE=none: it lets every fill through and only records
breaches), so what a grown stop does shows at the venue: straight over REST, a long 1 whose
stop-loss was grown to 7 lots is short 6 when the stop fires, and the referee records a
`max_position` breach; through the gateway the same modify is refused (rule `max_position`),
and the stop that fires leaves the account flat, with no breach."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from tests.integration.test_gateway_support import Stack, Tap, dump, stack_fixture
from tests.support import aeventually

# The market at 10x (CLOCK_ANCHOR now), so the drift, which moves the price path minute by
# minute, crosses the stops within seconds.
stack = stack_fixture(SIM_ENFORCE="none", CLOCK_SPEED="10", CLOCK_ANCHOR=datetime.now(
    timezone.utc).isoformat(timespec="seconds"))

pytestmark = pytest.mark.timeout(150)

SL, GROWN = 20, 7


def _stop_leg(stack: Stack, acc: int) -> dict[str, Any] | None:
    """The working stop-loss child of the account's bracketed entry, once it has a price."""
    return next((o for o in stack.venue.orders(acc) if o.get("parentOrderId") and o["type"] == 4
                 and o["status"] == 1 and o.get("stopPrice")), None)


def _net(stack: Stack, acc: int, contract: str) -> int:
    return sum(p["size"] * (1 if p["type"] == 1 else -1)
               for p in stack.venue.positions(acc) if p["contractId"] == contract)


def _breaches(stack: Stack, acc: int) -> list[dict[str, Any]]:
    return httpx.get(f"{stack.base}/admin/breaches", params={"account": acc},
                     timeout=5).json()["breaches"]


async def test_a_grown_stop_reverses_the_position_at_the_venue_but_not_through_the_gate(
        stack: Stack) -> None:
    es = stack.venue.contract("EP")
    direct, gated = stack.new_account(), stack.new_account()
    # Straight to the venue: the unsafe case happens.
    placed = stack.venue.place(direct, contractId=es["id"], type=2, side=0, size=1,
                               stopLossBracket={"ticks": -SL, "type": 4})
    assert placed["success"], placed
    # Through the gateway: the same entry, then the same modify of its stop.
    stack.gateway(gated)
    async with Tap(stack.env) as tap:
        await tap.ready()
        res = await tap.submit(contract="ES", side="buy", size=1, sl_ticks=SL)
        assert res["status"] == "accepted", res
        await aeventually(lambda: _stop_leg(stack, direct) and _stop_leg(stack, gated),
                          timeout=20, what="both stop-loss legs working")
        leg = _stop_leg(stack, direct)
        assert leg is not None
        grown = stack.venue.post("/api/Order/modify", {"accountId": direct, "orderId": leg["id"],
                                                       "size": GROWN})
        assert grown["success"], grown
        leg = _stop_leg(stack, gated)
        assert leg is not None
        out = await tap.ask("modify", {"order_id": leg["id"], "size": GROWN})
        assert out["status"] == "rejected" and out["rule"] == "max_position", out
        assert "protects" in out["message"], out
        # The trader's tools read it back as the day's refusal: the order after the change.
        (refusal,) = (await tap.ask("refusals"))["refusals"]
        assert (refusal["rule"], refusal["order"]["kind"], refusal["order"]["order_id"],
                refusal["order"]["size"]) == ("max_position", "modify", leg["id"], GROWN), refusal
        # The market falls through both stops.
        r = httpx.post(f"{stack.base}/admin/market", json={
            "contractId": es["id"], "ticks": -4 * SL, "over_seconds": 60}, timeout=5)
        assert r.status_code == 200, r.text
        await aeventually(lambda: _net(stack, direct, es["id"]) == 1 - GROWN, timeout=60,
                          what=f"the direct account short {GROWN - 1}")
        await aeventually(lambda: _net(stack, gated, es["id"]) == 0, timeout=20,
                          what="the gateway's account flat")
    assert "max_position" in {b["rule"] for b in _breaches(stack, direct)}, \
        dump(_breaches(stack, direct))
    assert _breaches(stack, gated) == [], dump(_breaches(stack, gated))
    assert all(o["size"] == 1 for o in stack.venue.orders(gated) if o.get("parentOrderId")), \
        dump(stack.venue.orders(gated))
