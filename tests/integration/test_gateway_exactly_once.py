"""Exactly once, judged by the sim's own order list: a crash while a place is in flight, 500s
before and after the venue acted, resends and duplicate client ids. First the unsafe case: a
naive client that resends after a time-out or a 500 leaves the venue holding two orders."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from chillly.bus import RequestTimeout
from chillly.tools_socket import ask as ask_tools
from tests.sim_client import counters
from tests.integration.test_gateway_support import Stack, Tap, dump, stack_fixture
from tests.support import START_TIMEOUT, aeventually, eventually

stack = stack_fixture()
pytestmark = pytest.mark.timeout(120)
PLACE = ["/api/Order/place"]


def _intent(stack: Stack, acc: int, cid: str) -> dict | None:
    try:
        row = stack.journal(acc).execute("SELECT * FROM intents WHERE client_id=?",
                                         (cid,)).fetchone()
    except Exception:  # the file may not exist yet
        return None
    return dict(row) if row else None


def _delayed(stack: Stack) -> int:
    return int(counters(stack.base)["counters"].get("faulted_delayed", 0))


def test_a_naive_resend_doubles_the_order(stack: Stack) -> None:
    """Without a journal and reconciliation, a resend after an unclear answer is a second
    order: the failure the gateway exists to prevent."""
    acc = stack.new_account()
    es = stack.venue.contract("EP")
    v = stack.venue
    body = {"accountId": acc, "contractId": es["id"], "type": 2, "side": 0, "size": 1}
    hdr = {"Authorization": f"Bearer {v.token}"}
    try:
        # 1. the answer is lost after the order was created (500 after the work)
        v.faults(rest_fail_after_rate=1, rest_fault_paths=PLACE)
        for _ in range(2):  # the naive client: "it failed, send it again"
            assert httpx.post(f"{v.base}/api/Order/place", json=body,
                              headers=hdr).status_code == 500
        v.clear_faults()
        assert len(v.orders(acc)) == 2
        # 2. a slow answer: the client times out and resends
        v.faults(rest_delay_ms=1500, rest_fault_paths=PLACE)
        for _ in range(2):
            with contextlib.suppress(httpx.TimeoutException):
                httpx.post(f"{v.base}/api/Order/place", json=body, headers=hdr, timeout=0.3)
        eventually(lambda: len(v.orders(acc)) == 4, timeout=10,
                   what="both delayed places created")
    finally:
        v.clear_faults()


@pytest.mark.serial
async def test_sigkill_while_place_is_in_flight_leaves_exactly_one_order(stack: Stack) -> None:
    acc = stack.new_account()
    gw = stack.gateway(acc)
    async with Tap(stack.env) as tap:
        await tap.ready()
        stack.venue.faults(rest_delay_ms=8000, rest_fault_paths=PLACE)
        delayed_before = _delayed(stack)
        cid = tap.cid()
        pending = asyncio.ensure_future(tap.submit(contract="ES", side="buy", size=1,
                                                   client_id=cid))
        try:
            await aeventually(lambda: (_intent(stack, acc, cid) or {}).get("status") == "sending",
                              what="intent journaled before the call")
            await aeventually(lambda: _delayed(stack) > delayed_before,
                              what="the place received by the venue and held")
            gw.kill()  # SIGKILL mid-call: the venue has the request but has not acted yet
            assert stack.venue.tagged(acc, cid) == []
            pending.cancel()  # its reply would never come: the gateway died
            with contextlib.suppress(RequestTimeout, AssertionError, asyncio.CancelledError):
                await pending
            gw2 = stack.gateway(acc, GATEWAY_UNKNOWN_WAIT="15")  # the same journal
            # while the unknown intent is being resolved, no new order is accepted
            await aeventually(lambda: any(h["pid"] == gw2.pid and h["counters"].get("ready") == 0
                                          for h in tap.heartbeats), timeout=20,
                              what="the restarted gateway running, not ready yet")
            early = await tap.submit(contract="ES", side="buy", size=1)
            assert early["status"] == "not_ready", early
            # nor a resume or the risk figures: the venue's book is not read yet
            for name in ("resume", "risk"):
                ok, result, error = await ask_tools(tap.tools_path, name, {})
                assert not ok and "reconciling" in (error or ""), (name, result, error)
        finally:
            stack.venue.clear_faults()
        await tap.ready(timeout=START_TIMEOUT)
        rows = stack.venue.tagged(acc, cid)
        assert len(rows) == 1, dump(stack.venue.orders(acc))
        intent = _intent(stack, acc, cid)
        assert intent is not None and intent["status"] == "placed"
        assert intent["order_id"] == rows[0]["id"]
        shown = (await tap.ask("orders", {"open_only": False}))["orders"]
        assert [o["owner"] for o in shown if o["order_id"] == rows[0]["id"]] == ["manual"]
        # and it is never sent again, however long we wait
        await asyncio.sleep(1.0)
        assert len(stack.venue.tagged(acc, cid)) == 1


async def test_500_before_the_venue_acts_is_recorded_not_placed(stack: Stack) -> None:
    acc = stack.new_account()
    stack.gateway(acc, GATEWAY_UNKNOWN_WAIT="2")
    async with Tap(stack.env) as tap:
        await tap.ready()
        stack.venue.faults(rest_fail_rate=1, rest_fault_paths=PLACE)
        try:
            res = await tap.submit(contract="ES", side="buy", size=1)
        finally:
            stack.venue.clear_faults()
        assert res["status"] == "unknown", res
        cid = res["client_id"]
        await aeventually(lambda: (_intent(stack, acc, cid) or {}).get("status") == "not_placed",
                          timeout=15, what="recorded as not placed after the bounded wait")
        assert stack.venue.tagged(acc, cid) == []
        # its owner is told (it would otherwise keep a pending order that never comes)
        told = await aeventually(lambda: [o for o in tap.of("order") if o["client_id"] == cid],
                                 what="an order event for the intent not placed")
        assert [(o["state"], o["order_id"]) for o in told] == [("rejected", 0)], told
        assert "not placed" in told[0]["reason"], told


async def test_500_after_the_venue_acted_adopts_the_one_order(stack: Stack) -> None:
    acc = stack.new_account()
    stack.gateway(acc)
    async with Tap(stack.env) as tap:
        await tap.ready()
        stack.venue.faults(rest_fail_after_rate=1, rest_fault_paths=PLACE)
        try:
            res = await tap.submit(contract="ES", side="buy", size=1)
        finally:
            stack.venue.clear_faults()
        assert res["status"] in ("unknown", "accepted"), res
        cid = res["client_id"]
        await aeventually(lambda: (_intent(stack, acc, cid) or {}).get("status") == "placed",
                          timeout=15, what="found by its customTag and adopted")
        rows = stack.venue.tagged(acc, cid)
        assert len(rows) == 1 and _intent(stack, acc, cid)["order_id"] == rows[0]["id"]
        await aeventually(lambda: any(p["order_id"] == rows[0]["id"] and p["state"] == "filled"
                                      for p in tap.of("order")), what="its events on the bus")


async def test_resend_and_duplicate_client_id_give_one_order(stack: Stack) -> None:
    acc = stack.new_account()
    stack.gateway(acc)
    async with Tap(stack.env) as tap:
        await tap.ready()
        cid = tap.cid()
        args = {"client_id": cid, "contract": "ES", "side": "buy", "size": 1, "type": "market"}
        # the same request id four times, two of them at once (a resend while the first runs)
        at_once = asyncio.ensure_future(tap.ask("submit", args, rid="r-1"))
        first = await tap.ask("submit", args, rid="r-1")
        second = await tap.ask("submit", args, rid="r-1")
        third = await tap.ask("submit", args, rid="r-1")
        assert first == second == third == await at_once and first["status"] == "accepted", \
            (first, second)
        # the same client id under a new request id: refused, never sent
        dup = await tap.ask("submit", args, rid="r-2")
        assert dup["status"] == "rejected" and dup["rule"] == "duplicate", dup
        assert dup["order_id"] == first["order_id"]
        assert len(stack.venue.tagged(acc, cid)) == 1
        # still a duplicate after a restart (the journal remembers it)
        stack.gateway(acc)
        await tap.ready()
        dup = await tap.ask("submit", args, rid="r-3")
        assert dup["status"] == "rejected" and dup["rule"] == "duplicate", dup
        assert len(stack.venue.tagged(acc, cid)) == 1


async def test_an_order_arriving_after_the_bounded_wait_is_adopted(stack: Stack) -> None:
    """The venue takes longer than GATEWAY_UNKNOWN_WAIT: the intent is first recorded not
    placed, then the order shows up after all; it is adopted, never sent again."""
    acc = stack.new_account()
    stack.gateway(acc, GATEWAY_UNKNOWN_WAIT="1", FEED_HTTP_TIMEOUT="1")
    async with Tap(stack.env) as tap:
        await tap.ready()
        stack.venue.faults(rest_delay_ms=4000, rest_fault_paths=PLACE)
        try:
            cid = tap.cid()
            res = await tap.submit(contract="ES", side="buy", size=1, client_id=cid)
            assert res["status"] == "unknown", res  # the client timed out (FEED_HTTP_TIMEOUT)
            await aeventually(lambda: (_intent(stack, acc, cid) or {}).get("status")
                              == "not_placed", timeout=10, what="first recorded not placed")
        finally:
            stack.venue.clear_faults()
        await aeventually(lambda: (_intent(stack, acc, cid) or {}).get("status") == "placed",
                          timeout=20, what="adopted once it reached the venue")
        rows = stack.venue.tagged(acc, cid)
        assert len(rows) == 1 and _intent(stack, acc, cid)["order_id"] == rows[0]["id"]
