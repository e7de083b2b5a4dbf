"""Disk trouble for the gateway: its journal cannot be written (RLIMIT_FSIZE lowered on the
running process, as a full disk or a quota would do). The sim's order list is the judge.

While the journal cannot be written the gateway says so (alarm `journal`, FAULTED in its
heartbeat), refuses orders without sending any (an intent that is not on disk is never sent),
does not spin (no busy retry loop: its CPU stays low), and when the cause goes it heals by
itself (RUNNING, alarm cleared) and trades again.

What the venue did meanwhile (a resting order cancelled and an order filled at the venue
itself) is in the journal after the heal, without a restart: the background writes the disk
refused waited in order and were written when it took writes again (they were lost until
the next start before).
"""

from __future__ import annotations

import asyncio
import os
import resource
from typing import Any

import pytest

from chillly import topics
from chillly.messages import Alarm
from chillly.tools_socket import ask as ask_tools
from tests.integration.test_gateway_support import Stack, Tap, dump, stack_fixture
from tests.support import aeventually

stack = stack_fixture()
pytestmark = pytest.mark.timeout(120)


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def submit(tap: Tap, es: str, timeout: float = 10.0) -> tuple[bool, Any]:
    """A manual order as the trader's tools send it (over the tools socket: the bus serves
    manual orders to no one since gateway/commands.py's Authority)."""
    ok, result, error = await ask_tools(tap.tools_path, "submit", {
        "client_id": tap.cid(), "contract": es, "side": "buy", "size": 1, "type": "market"},
        timeout=timeout)
    return ok, result if ok else error


async def test_journal_that_cannot_be_written_faults_refuses_and_heals(stack: Stack) -> None:
    acc = stack.new_account()
    es = stack.venue.contract("EP")["id"]
    gw = stack.gateway(acc)
    alarms: list[dict[str, Any]] = []
    async with Tap(stack.env) as tap:
        tap.bus.on(topics.alarm("gateway"), lambda e: alarms.append(e.payload)
                   if e.cls is Alarm else None)
        await tap.ready()
        ok, res = await submit(tap, es)
        assert ok and res["status"] == "accepted", res
        await aeventually(lambda: len(stack.venue.orders(acc)) == 1, 10, what="first order")
        bid, _ = stack.venue.quote(es)
        resting = await tap.submit(contract=es, side="buy", size=1, type="limit",
                                   limit_price=round(bid * 0.9 / 0.25) * 0.25)
        assert resting["status"] == "accepted", resting
        rest_id = int(resting["order_id"])
        await aeventually(lambda: stack.journal(acc).execute(
            "SELECT status FROM orders WHERE order_id=?", (rest_id,)).fetchone() is not None,
            10, what="the resting order journaled")
        before_outage = len(stack.venue.orders(acc))
        soft, hard = resource.prlimit(gw.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(gw.pid, resource.RLIMIT_FSIZE, (1, hard))   # no file may grow
        try:
            outcomes = [await submit(tap, es) for _ in range(3)]
            for ok, res in outcomes:
                assert not (ok and res.get("status") == "accepted"), dump(outcomes)
            assert len(stack.venue.orders(acc)) == before_outage, \
                "an order was sent without its intent on disk"
            await aeventually(lambda: tap.heartbeats and tap.heartbeats[-1]["state"] == "FAULTED",
                              10, what="FAULTED in the gateway's heartbeat")
            assert any(a["active"] and a["code"] == "journal" for a in alarms), alarms
            assert "journal" in tap.heartbeats[-1].get("alarms", {})   # seen by a late look
            # The venue acts meanwhile: the gateway hears it, the disk refuses to record it.
            stack.venue.post("/api/Order/cancel", {"accountId": acc, "orderId": rest_id})
            outside = stack.venue.place(acc, contractId=es, type=2, side=1, size=1)
            assert outside["success"], outside
            out_id = int(outside["orderId"])
            await aeventually(lambda: any(
                p["order_id"] == rest_id and p["status"] == 3 for p in tap.of("order"))
                and any(p["order_id"] == out_id for p in tap.of("fill")), 10,
                what="the gateway hearing the venue's cancel and fill")
            # No busy retry loop: idle while faulted, it spends little CPU.
            before, t0 = cpu_seconds(gw.pid), asyncio.get_running_loop().time()
            await asyncio.sleep(2.0)
            used = cpu_seconds(gw.pid) - before
            assert used < 0.5 * (asyncio.get_running_loop().time() - t0), f"{used:.2f}s CPU"
            assert gw.alive()
        finally:
            resource.prlimit(gw.pid, resource.RLIMIT_FSIZE, (soft, hard))
        await aeventually(lambda: tap.heartbeats[-1]["state"] == "RUNNING", 20,
                          what="RUNNING again once the journal can be written")
        assert alarms[-1]["code"] == "journal" and not alarms[-1]["active"], alarms
        await aeventually(lambda: "journal" not in tap.heartbeats[-1].get("alarms", {}), 5,
                          what="the alarm gone from the heartbeat")
        ok, res = await submit(tap, es)
        assert ok and res["status"] == "accepted", res
        await aeventually(lambda: len(stack.venue.orders(acc)) == before_outage + 2, 10,
                          what="order after heal")
        # Every order at the venue has its intent in the journal: none was sent unjournaled.
        tags = {r["custom_tag"] for r in stack.journal(acc).execute("SELECT * FROM intents")}
        placed = {o.get("customTag") for o in stack.venue.orders(acc)
                  if o["id"] != int(outside["orderId"])}   # placed at the venue itself
        assert placed <= tags, (placed, tags)
        # What the venue did while the disk refused is journaled now, in order, no restart.
        j = stack.journal(acc)
        await aeventually(lambda: j.execute("SELECT status FROM orders WHERE order_id=?",
                                            (rest_id,)).fetchone()[0] == 3, 10,
                          what="the cancel at the venue journaled after the heal")
        await aeventually(lambda: j.execute("SELECT COUNT(*) FROM fills WHERE order_id=?",
                                            (out_id,)).fetchone()[0] >= 1, 10,
                          what="the venue's fill journaled after the heal")
        states = [r[0] for r in j.execute(
            "SELECT status FROM order_events WHERE order_id=? ORDER BY seq", (rest_id,))]
        assert states[-1] == 3 and 1 in states, states
        await aeventually(lambda: tap.counter("journal_backlog") == 0, 5, what="backlog written")
        # And the healed journal takes the new order's whole story again.
        last = res["client_id"]
        await aeventually(lambda: stack.journal(acc).execute(
            "SELECT status FROM intents WHERE client_id=?", (last,)).fetchone()[0] == "placed",
            10, what="the order after healing journaled as placed")
