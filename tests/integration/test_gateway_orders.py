"""Orders through the real gateway to the real sim: every order type and both bracket modes,
events on the bus, journal rows, and positions and P&L equal to the venue's to the cent."""

from __future__ import annotations

import pytest

from chillly import topics
from chillly.messages import Quote
from tests.integration.test_gateway_support import Stack, Tap, dump, stack_fixture
from tests.support import aeventually, eventually

stack = stack_fixture()

pytestmark = pytest.mark.timeout(120)


def _venue_realized(trades: list[dict]) -> float:
    return round(sum((t["profitAndLoss"] or 0.0) - (t["fees"] or 0.0)
                     for t in trades if not t["voided"]), 2)


@pytest.mark.serial
async def test_every_order_type_round_trips_and_matches_the_venue(stack: Stack) -> None:
    acc = stack.new_account()
    stack.gateway(acc)
    es = stack.venue.contract("EP")
    tick = float(es["tickSize"])
    async with Tap(stack.env) as tap:
        await tap.ready()
        px, _ = stack.venue.quote(es["id"])
        far = round(round(px / tick) * tick, 2)
        # market buy 2, fills at once
        mkt = await tap.submit(contract="ES", side="buy", size=2)
        assert mkt["status"] == "accepted", mkt
        # resting limit buy, resting stop sell, join_bid: then cancel them
        lim = await tap.submit(contract="ES", side="buy", size=1, type="limit",
                               limit_price=far - 200 * tick)
        stp = await tap.submit(contract=es["id"], side="sell", size=1, type="stop",
                               stop_price=far - 200 * tick)
        join = await tap.submit(contract="ES", side="buy", size=1, type="join_bid")
        joina = await tap.submit(contract="ES", side="sell", size=1, type="join_ask")
        trl = await tap.submit(contract="ES", side="sell", size=1, type="trailing_stop",
                               trail_ticks=150)
        assert [r["status"] for r in (lim, stp, join, joina, trl)] == ["accepted"] * 5, \
            (lim, stp, join, joina, trl)
        venue_trl = next(o for o in stack.venue.orders(acc) if o["id"] == trl["order_id"])
        assert venue_trl["type"] == 5 and venue_trl["trailDistance"] == 150
        # modify the resting limit: the venue moves it, the bus shows the new price
        out = await tap.ask("modify", {"order_id": lim["order_id"],
                                       "limit_price": far - 210 * tick})
        assert out["status"] == "modified", out
        await aeventually(lambda: any(p["order_id"] == lim["order_id"] and
                                      p["limit_price"] == far - 210 * tick
                                      for p in tap.of("order")), what="modified on the bus")
        # a bracketed market sell 1 (venue brackets: Auto OCO account)
        br = await tap.submit(contract="ES", side="sell", size=1, sl_ticks=20, tp_ticks=30)
        assert br["status"] == "accepted", br

        def order_states() -> dict[int, str]:
            return {p["order_id"]: p["state"] for p in tap.of("order")}

        await aeventually(lambda: order_states().get(mkt["order_id"]) == "filled",
                          what="market filled on the bus")
        await aeventually(lambda: order_states().get(lim["order_id"]) == "working",
                          what="limit working")
        # the bracket legs are the venue's: signed correctly, so accepted, with our tags
        legs = stack.venue.tagged(acc, f"{br['client_id']}-SL") + \
            stack.venue.tagged(acc, f"{br['client_id']}-TP")
        assert len(legs) == 2, dump(stack.venue.orders(acc))
        res = await tap.ask("orders", {})
        shown = {o["order_id"]: o for o in res["orders"]}
        assert lim["order_id"] in shown and shown[lim["order_id"]]["owner"] == "manual"
        sl = next(o for o in shown.values() if (o["custom_tag"] or "").endswith("-SL"))
        assert sl["parent_id"] == br["order_id"] and sl["owner"] == "manual"
        for r in (lim, stp, trl):
            out = await tap.ask("cancel", {"order_id": r["order_id"]})
            assert out["status"] == "cancelled", out
        for r in (join, joina):
            out = await tap.ask("cancel", {"client_id": r["client_id"]})
            assert out["status"] in ("cancelled", "rejected"), out  # a join may have filled
        await aeventually(lambda: order_states().get(lim["order_id"]) == "cancelled",
                          what="limit cancelled on the bus")

        async def matches_venue() -> bool:
            venue_pos = {p["contractId"]: p for p in stack.venue.positions(acc)}
            ours = {p["contract"]: p for p in (await tap.ask("positions"))["positions"]
                    if p["owner"] == "_account" and p["size"]}
            if set(venue_pos) != set(ours):
                return False
            for c, vp in venue_pos.items():
                if (vp["size"], vp["type"], round(vp["averagePrice"], 6)) != \
                        (ours[c]["size"], ours[c]["side"], round(ours[c]["avg_price"], 6)):
                    return False
            acct = await tap.ask("account")
            return (acct["realized_pnl"] == _venue_realized(stack.venue.trades(acc))
                    and round(acct["balance"], 2) == round(stack.venue.balance(acc), 2))

        await aeventually(matches_venue, timeout=10, what="positions and P&L equal the venue's")
        # open P&L marked from the quotes on the bus: longs at the bid, shorts at the ask
        pos = next(p for p in stack.venue.positions(acc) if p["contractId"] == es["id"])
        bid, ask = far + 8 * tick, far + 9 * tick
        qty = pos["size"] if pos["type"] == 1 else -pos["size"]
        mark = bid if qty > 0 else ask
        want = round((mark - pos["averagePrice"]) / tick * float(es["tickValue"]) * qty, 2)

        async def marked() -> bool:
            tap.bus.publish(topics.quote(es["id"]), Quote(contract=es["id"], bid=bid, ask=ask,
                                                          last=bid))
            ours = [p for p in (await tap.ask("positions"))["positions"]
                    if p["owner"] == "_account" and p["contract"] == es["id"]]
            acct = await tap.ask("account")
            return bool(ours) and ours[0]["open_pnl"] == want and acct["open_pnl"] == want \
                and acct["equity"] == round(acct["balance"] + want, 2)

        await aeventually(marked, timeout=10, interval=0.2, what="open P&L from the quotes")
        # flatten everything: working legs cancelled, positions closed by our own orders
        out = await tap.ask("flatten", {"all": True})
        assert out["status"] == "done", out
        await aeventually(lambda: stack.venue.positions(acc) == [], what="venue flat")
        await aeventually(lambda: not [o for o in stack.venue.orders(acc)
                                       if o["status"] in (1, 6, 8)], what="nothing working")
        await aeventually(matches_venue, timeout=10, what="flat P&L equals the venue's")
        trades = stack.venue.trades(acc)
        assert trades
        # every fill once on the bus, once in the journal
        await aeventually(lambda: {p["trade_id"] for p in tap.of("fill")} ==
                          {t["id"] for t in trades}, what="every fill on the bus")
    j = stack.journal(acc)
    eventually(lambda: {r["trade_id"] for r in j.execute("SELECT trade_id FROM fills")} ==
               {t["id"] for t in trades}, what="every fill in the journal")
    intents = {r["client_id"]: dict(r) for r in j.execute("SELECT * FROM intents")}
    assert intents[mkt["client_id"]]["status"] == "placed"
    assert intents[mkt["client_id"]]["order_id"] == mkt["order_id"]
    events = eventually(lambda: (ev := [r[0] for r in j.execute(
        "SELECT state FROM order_events WHERE order_id=? ORDER BY seq", (lim["order_id"],))])
        and ev[-1] == "cancelled" and ev, what="the limit's story in the journal")
    assert "working" in events


async def test_position_brackets_mode_the_gateway_manages_the_oco(stack: Stack) -> None:
    acc = 1099  # a Position Brackets account: the venue refuses brackets (errorCode 2)
    stack.gateway(acc)
    es = stack.venue.contract("EP")
    tick = float(es["tickSize"])
    async with Tap(stack.env) as tap:
        alarms: list[dict] = []
        tap.bus.on("alarm.gateway.", lambda env: alarms.append(env.payload))
        await tap.ready()
        entry = await tap.submit(contract="ES", side="buy", size=2, sl_ticks=40, tp_ticks=40)
        assert entry["status"] == "accepted", entry
        cid = entry["client_id"]

        def legs() -> list[dict]:
            return stack.venue.tagged(acc, f"{cid}-SL") + stack.venue.tagged(acc, f"{cid}-TP")

        await aeventually(lambda: len([o for o in legs() if o["status"] == 1]) == 2,
                          what="the gateway placed both protective legs")
        entry_row = stack.venue.tagged(acc, f"{cid}-E")[0]
        fill = float(entry_row["filledPrice"])
        sl = next(o for o in legs() if o["customTag"].endswith("-SL"))
        tp = next(o for o in legs() if o["customTag"].endswith("-TP"))
        assert sl["type"] == 4 and sl["side"] == 1 and sl["size"] == 2
        assert sl["stopPrice"] == pytest.approx(fill - 40 * tick)
        assert tp["type"] == 1 and tp["limitPrice"] == pytest.approx(fill + 40 * tick)
        # move the take-profit through the market: it fills, the gateway cancels the stop
        out = await tap.ask("modify", {"order_id": tp["id"], "limit_price": fill - 40 * tick})
        assert out["status"] == "modified", out
        await aeventually(lambda: {o["customTag"][-2:]: o["status"] for o in legs()}
                          == {"TP": 2, "SL": 3}, what="TP filled and SL cancelled (OCO)")
        await aeventually(lambda: stack.venue.positions(acc) == [], what="flat")
        # a protective leg cancelled by hand: the position is unprotected, the alarm says so
        entry2 = await tap.submit(contract="ES", side="sell", size=1, sl_ticks=40, tp_ticks=40)
        assert entry2["status"] == "accepted", entry2
        sl2 = await aeventually(lambda: [o for o in stack.venue.tagged(
            acc, f"{entry2['client_id']}-SL") if o["status"] == 1], what="second SL working")
        out = await tap.ask("cancel", {"order_id": sl2[0]["id"]})
        assert out["status"] == "cancelled", out
        await aeventually(lambda: any(a["code"] == "unprotected" and a["active"]
                                      for a in alarms), timeout=10, what="unprotected alarm")
        await tap.ask("flatten", {"all": True})
        await aeventually(lambda: stack.venue.positions(acc) == [], what="flat again")
        await aeventually(lambda: [a["active"] for a in alarms
                                   if a["code"] == "unprotected"][-1] is False,
                          timeout=10, what="alarm cleared once flat")
    j = stack.journal(acc)
    rows = {r["client_id"]: dict(r) for r in j.execute("SELECT * FROM intents")}
    assert rows[cid]["managed"] == 1 and rows[f"{cid}-SL"]["parent_id"] == entry["order_id"]
