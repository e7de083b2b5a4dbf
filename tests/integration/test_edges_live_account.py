"""An account whose orders the venue will not cancel (a live account: `Order/cancel` answers
errorCode 6, issue 20 section 2, item 10): the gateway says so before it matters and takes no
entry that would rest, since nothing could withdraw it later. Judged by the sim's order list."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_gateway_support import ACCOUNTS, Stack, Tap, _stack
from tests.support import aeventually, eventually

LIVE = 1098
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", name="stack")
def stack_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from _stack(tmp_path_factory, SIM_ACCOUNTS=f"{ACCOUNTS},{LIVE}:LIVE-{LIVE}:50000:live")


async def test_a_live_account_is_told_and_takes_no_resting_entry(stack: Stack) -> None:
    stack.gateway(LIVE)
    async with Tap(stack.env) as tap:
        await tap.ready()
        account = await tap.ask("account")
        assert account["can_cancel"] is False, account
        await aeventually(lambda: any("cancel_unsupported" in (h.get("alarms") or {})
                                      for h in tap.heartbeats), what="the alarm in heartbeats")
        es = stack.venue.contract("EP")
        px, _ = stack.venue.quote(es["id"])
        low = round(round(px / 0.25) * 0.25 - 200 * 0.25, 2)
        res = await tap.submit(contract="ES", side="buy", size=1, type="limit", limit_price=low)
        assert res["status"] == "rejected" and res["rule"] == "cannot_cancel", res
        assert stack.venue.tagged(LIVE, res["client_id"]) == []
        # the venue indeed refuses to withdraw what rests (an order placed at the venue itself)
        rest = stack.venue.place(LIVE, contractId=es["id"], type=1, side=0, size=1,
                                 limitPrice=low)["orderId"]
        await aeventually(lambda: rest in {o["order_id"] for o in tap.of("order")},
                          what="the external order seen")
        out = await tap.ask("cancel", {"order_id": rest})
        assert out["status"] == "rejected" and out["code"] == 6, out
        assert next(o for o in stack.venue.orders(LIVE) if o["id"] == rest)["status"] == 1
        # a market entry rests nowhere: taken
        res = await tap.submit(contract="ES", side="buy", size=1)
        assert res["status"] == "accepted", res
        eventually(lambda: [p["size"] for p in stack.venue.positions(LIVE)] == [1],
                   what="long 1 at the venue")
        await tap.ask("flatten", {"all": True})
        eventually(lambda: stack.venue.positions(LIVE) == [], what="flat", timeout=20)
