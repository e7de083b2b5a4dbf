"""The sim's trading endpoints over real HTTP (plain httpx) and the user hub (plain pysignalr).

One real `chillly sim` process serves the module (always open, accelerated clock so its own
prints move resting orders within seconds); each test trades on its own account so tests do not
see each other's orders. Brackets are placed wide (200 ticks) so the moving market cannot
trigger them while a test looks at them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from pysignalr.client import SignalRClient

from tests.sim_client import login, sim_env, wait_ready
from tests.support import Procs, aeventually, eventually

ACCOUNTS = {
    "hub": 2001, "reject": 2002, "pnl": 2003, "limit": 2004, "query": 2005,
    "position_mode": 2006, "partial": 2007, "tags": 2008, "stops": 2009, "modify": 2010,
}
USER_EVENTS = ("GatewayUserAccount", "GatewayUserOrder", "GatewayUserPosition",
               "GatewayUserTrade")
WIDE_SL = {"ticks": -200, "type": 4}
WIDE_TP = {"ticks": 200, "type": 1}


class Sim:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token
        self.http = httpx.Client(base_url=base, timeout=10.0,
                                 headers={"Authorization": f"Bearer {token}"})
        contracts = self.post("/api/Contract/available", {"live": False})["contracts"]
        es = [c for c in contracts if c["symbolId"] == "F.US.EP"]
        self.es = next(c for c in es if c["activeContract"])
        self.es_back = next(c for c in es if not c["activeContract"])

    def raw(self, path: str, body: Any) -> httpx.Response:
        return self.http.post(path, json=body)

    def post(self, path: str, body: Any) -> dict[str, Any]:
        r = self.raw(path, body)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def place(self, account: int, **fields: Any) -> dict[str, Any]:
        body = {"accountId": account, "contractId": self.es["id"], "size": 1,
                "limitPrice": None, "stopPrice": None, "trailPrice": None, "customTag": None,
                **fields}
        return self.post("/api/Order/place", body)

    def order(self, account: int, order_id: int) -> dict[str, Any]:
        r = self.post("/api/Order/searchById", {"accountId": account, "orderId": order_id})
        assert r["success"], r
        return r["order"]

    def orders(self, account: int) -> list[dict[str, Any]]:
        return self.post("/api/Order/search", {"accountId": account,
                                               "startTimestamp": "2000-01-01T00:00:00Z"})["orders"]

    def positions(self, account: int) -> list[dict[str, Any]]:
        return self.post("/api/Position/searchOpen", {"accountId": account})["positions"]

    def trades(self, account: int) -> list[dict[str, Any]]:
        return self.post("/api/Trade/search", {"accountId": account,
                                               "startTimestamp": "2000-01-01T00:00:00Z"})["trades"]

    def balance(self, account: int) -> float:
        accs = self.post("/api/Account/search", {"onlyActiveAccounts": True})["accounts"]
        return next(a["balance"] for a in accs if a["id"] == account)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    tmp: Path = tmp_path_factory.mktemp("sim_trading")
    # Each a 50K Combine, but "query" keeps six orders working (a 150K's 15 lots allow it).
    accounts = ",".join(
        f"{aid}:{'150K' if key == 'query' else '50K'}TC-V2-000002-{aid}:50000"
        + (":position" if key == "position_mode" else "")
        for key, aid in ACCOUNTS.items())
    # ES only: the sim starts in a second and its market loop keeps up on a loaded machine.
    env = sim_env(tmp, SIM_ACCOUNTS=accounts, SIM_HISTORY_DAYS="1", LOG_LEVEL="INFO",
                  SIM_ROOTS="EP",
                  CLOCK_SPEED="60",
                  CLOCK_ANCHOR=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    procs = Procs(tmp, env)
    proc = procs.chillly("sim", name="sim")
    base = f"http://127.0.0.1:{env['SIM_PORT']}"
    try:
        wait_ready(base)
        yield Sim(base, login(base))
    except BaseException:
        print(procs.dump_logs())
        raise
    finally:
        procs.cleanup()
        assert proc.popen.returncode == 0, proc.log()[-3000:]


class UserHub:
    """A plain pysignalr connection to /hubs/user, subscribed to one account."""

    def __init__(self, sim: Sim, account: int) -> None:
        self.account = account
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.client = SignalRClient(f"{sim.base}/hubs/user?access_token={sim.token}",
                                    access_token_factory=lambda: sim.token)
        for name in USER_EVENTS:
            self.client.on(name, self._handler(name))
        self.client.on_open(self._subscribe)
        self._task: asyncio.Task[None] | None = None

    def _handler(self, name: str):  # type: ignore[no-untyped-def]
        async def on_event(args: list[Any]) -> None:
            for env in args:
                data = env["data"]
                if name == "GatewayUserAccount" and data["id"] != self.account:
                    continue
                self.events.append((name, env))
        return on_event

    async def _subscribe(self) -> None:
        for method in ("SubscribeOrders", "SubscribePositions", "SubscribeTrades"):
            await self.client.send(method, [self.account])
        # Last, so its account snapshot proves the earlier subscriptions were processed.
        await self.client.send("SubscribeAccounts", [])

    async def __aenter__(self) -> "UserHub":
        self._task = asyncio.create_task(self.client.run())
        await aeventually(lambda: any(n == "GatewayUserAccount" for n, _ in self.events),
                          timeout=10, what="account snapshot on subscribe")
        self.events.clear()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass

    def seen(self) -> list[tuple[str, int, int | None, int | None]]:
        """(event, action, order/entity id, status) in arrival order."""
        return [(n, e["action"], e["data"].get("id"), e["data"].get("status"))
                for n, e in self.events]


async def test_bracket_entry_event_sequence_and_close_leaves_legs(sim: Sim) -> None:
    acct = ACCOUNTS["hub"]
    async with UserHub(sim, acct) as hub:
        r = sim.place(acct, type=2, side=0, customTag="int-1", stopLossBracket=WIDE_SL,
                      takeProfitBracket=WIDE_TP)
        assert r["success"] and r["errorCode"] == 0
        entry = r["orderId"]
        await aeventually(lambda: any(n == "GatewayUserAccount" for n, _ in hub.events),
                          what="account update after the fill")
        names = [(n, s) for n, _, _, s in hub.seen()]
        assert names == [("GatewayUserOrder", 8), ("GatewayUserOrder", 6),
                         ("GatewayUserOrder", 8), ("GatewayUserOrder", 2),
                         ("GatewayUserOrder", 1), ("GatewayUserOrder", 1),
                         ("GatewayUserTrade", None), ("GatewayUserPosition", None),
                         ("GatewayUserAccount", None)]
        sl0, entry0, tp0, filled, tp1, sl1, trade, pos, acc = (e["data"] for _, e in hub.events)
        assert entry0["id"] == filled["id"] == entry and trade["orderId"] == entry
        assert (sl0["customTag"], tp0["customTag"]) == ("int-1-SL", "int-1-TP")
        assert sl0["parentOrderId"] == tp0["parentOrderId"] == entry
        assert tp0["linkedOrderId"] == sl0["id"]
        fill = filled["filledPrice"]
        assert tp1["limitPrice"] == pytest.approx(fill + 50.0)
        assert sl1["stopPrice"] == pytest.approx(fill - 50.0)
        assert "profitAndLoss" not in trade and "limitPrice" not in filled   # nulls omitted
        assert filled["creationTimestamp"].endswith("Z")
        assert (pos["type"], pos["size"], pos["averagePrice"]) == (1, 1, fill)
        assert acc["balance"] == pytest.approx(50000.0 - 1.40)

        hub.events.clear()
        assert sim.post("/api/Position/closeContract",
                        {"accountId": acct, "contractId": sim.es["id"]})["success"]
        await aeventually(lambda: any(n == "GatewayUserAccount" for n, _ in hub.events),
                          what="account update after the close")
        seen = hub.seen()
        assert [n for n, *_ in seen] == ["GatewayUserOrder", "GatewayUserOrder",
                                         "GatewayUserTrade", "GatewayUserPosition",
                                         "GatewayUserAccount"]
        flat = hub.events[3][1]
        assert (flat["action"], flat["data"]["type"], flat["data"]["size"]) == (2, 0, 0)
        assert sim.positions(acct) == []
        # closeContract does not cancel the bracket legs (as on the live venue)
        legs = sim.post("/api/Order/searchOpen", {"accountId": acct})["orders"]
        assert sorted(o["id"] for o in legs) == sorted([sl0["id"], tp0["id"]])
        for leg in legs:
            assert sim.post("/api/Order/cancel", {"accountId": acct, "orderId": leg["id"]}
                            )["success"]
        await aeventually(lambda: sum(1 for n, _, _, s in hub.seen() if s == 3) == 2,
                          what="cancel events")
        assert sim.post("/api/Order/searchOpen", {"accountId": acct})["orders"] == []


async def test_rejected_bracket_gets_an_id_and_a_status_5_event(sim: Sim) -> None:
    acct = ACCOUNTS["reject"]
    async with UserHub(sim, acct) as hub:
        r = sim.place(acct, type=2, side=0, stopLossBracket={"ticks": 40, "type": 4},
                      takeProfitBracket={"ticks": 20, "type": 1})
        assert r == {"orderId": r["orderId"], "success": False, "errorCode": 2,
                     "errorMessage": "Invalid stop loss ticks (40). "
                                     "Ticks should be less than zero when longing."}
        await aeventually(lambda: hub.events, what="rejection event")
        name, env = hub.events[0]
        assert name == "GatewayUserOrder" and env["data"]["id"] == r["orderId"]
        assert (env["data"]["status"], env["data"]["fillVolume"]) == (5, 0)
    r = sim.place(acct, type=2, side=0, stopLossBracket={"ticks": -10, "type": 1})
    assert r["errorMessage"] == "Invalid stop loss type (Limit)"
    r = sim.place(acct, type=2, side=0, stopLossBracket={"ticks": -1, "type": 4})
    assert r["errorMessage"] == ("Invalid stop loss ticks (-1). "
                                 "Price should be at least 4 ticks away.")
    r = sim.place(acct, type=2, side=0, contractId=sim.es_back["id"])
    assert (r["success"], r["errorCode"]) == (False, 9)
    assert sim.positions(acct) == []
    assert {o["status"] for o in sim.orders(acct)} == {5}


def test_brackets_rejected_on_a_position_bracket_account(sim: Sim) -> None:
    r = sim.place(ACCOUNTS["position_mode"], type=2, side=0, stopLossBracket=WIDE_SL)
    assert (r["errorCode"], r["errorMessage"]) == (
        2, "Brackets cannot be used with Position Brackets. You must enable Auto OCO Brackets.")


def test_round_trip_pnl_fees_and_balance(sim: Sim) -> None:
    acct = ACCOUNTS["pnl"]
    assert sim.place(acct, type=2, side=0, size=2)["success"]
    assert sim.place(acct, type=2, side=1, size=2)["success"]
    opening, closing = sim.trades(acct)
    assert opening["profitAndLoss"] is None and opening["creationTimestamp"].endswith("+00:00")
    expected = (closing["price"] - opening["price"]) / 0.25 * 12.5 * 2
    assert closing["profitAndLoss"] == pytest.approx(expected)
    assert opening["fees"] == closing["fees"] == pytest.approx(2.80)
    assert sim.balance(acct) == pytest.approx(50000.0 + expected - 5.60)
    assert sim.positions(acct) == []


def test_partial_close_then_close(sim: Sim) -> None:
    acct = ACCOUNTS["partial"]
    sim.place(acct, type=2, side=1, size=3)
    body = {"accountId": acct, "contractId": sim.es["id"]}
    bad = sim.post("/api/Position/partialCloseContract", {**body, "size": 4})
    assert (bad["success"], bad["errorCode"]) == (False, 5)
    assert sim.post("/api/Position/partialCloseContract", {**body, "size": 2})["success"]
    (pos,) = sim.positions(acct)
    assert (pos["type"], pos["size"]) == (2, 1)
    assert sim.post("/api/Position/closeContract", body)["success"]
    assert sim.positions(acct) == []
    assert [t["size"] for t in sim.trades(acct)] == [3, 2, 1]
    missing = sim.post("/api/Position/closeContract", body)
    assert (missing["success"], missing["errorCode"]) == (False, 2)


def test_resting_join_orders_fill_from_the_sims_own_prints(sim: Sim) -> None:
    acct = ACCOUNTS["limit"]
    # One joins the bid, one the ask: whichever way the market goes, a print soon trades at one.
    ids = []
    for otype, side in ((6, 0), (7, 1)):
        r = sim.place(acct, type=otype, side=side)
        assert r["success"], r
        order = sim.order(acct, r["orderId"])
        # Open, or already filled by a print at its price before this read (a busy tape): it
        # rested at the joined price either way, which the fill price below checks (an order
        # filled at once as marketable would have filled at the market instead).
        assert order["type"] == otype and order["status"] in (1, 2), order
        assert order["limitPrice"] is not None
        ids.append((r["orderId"], order["limitPrice"]))

    def one_filled() -> dict | None:
        for oid, _ in ids:
            o = sim.order(acct, oid)
            if o["status"] == 2:
                return o
        return None

    filled = eventually(one_filled, timeout=20, interval=0.05, what="a join order to fill")
    assert filled["filledPrice"] == dict(ids)[filled["id"]]
    for oid, _ in ids:
        if oid != filled["id"]:
            sim.post("/api/Order/cancel", {"accountId": acct, "orderId": oid})
    rows = sim.positions(acct)
    if rows:   # both may have filled by now: then the account is flat
        (pos,) = rows
        assert pos["size"] == 1
        sim.post("/api/Position/closeContract", {"accountId": acct, "contractId": sim.es["id"]})


def test_custom_tag_unique_per_account(sim: Sim) -> None:
    acct = ACCOUNTS["tags"]
    assert sim.place(acct, type=2, side=0, customTag="dup")["success"]
    dup = sim.place(acct, type=2, side=0, customTag="dup")
    assert dup["success"] is False and dup["errorCode"] == 2
    assert isinstance(dup["orderId"], int)
    assert sim.place(ACCOUNTS["pnl"], type=2, side=1, customTag="dup")["success"]
    sim.place(ACCOUNTS["pnl"], type=2, side=0)   # flatten the other account again


def test_v2_query_paging_and_problem_details(sim: Sim) -> None:
    acct = ACCOUNTS["query"]
    last = sim.post("/api/Order/place", {"accountId": acct, "contractId": sim.es["id"],
                                         "type": 2, "side": 0, "size": 1})
    price = sim.order(acct, last["orderId"])["filledPrice"]
    ids = [sim.place(acct, type=1, side=0, limitPrice=price - 200.0 - i)["orderId"]
           for i in range(5)]
    page = sim.post("/api/Order/v2/query", {
        "filter": {"accountId": acct, "statuses": [1]}, "pageSize": 2, "pageOffset": 0,
        "sortBy": 1, "sortDirection": 0, "includeTotalCount": True})
    assert page["success"] and page["totalCount"] == 5
    assert [o["id"] for o in page["orders"]] == ids[:2]
    r = sim.raw("/api/Order/v2/query", {"filter": {"accountId": acct}, "pageSize": 500})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    prob = r.json()
    assert prob["status"] == 400 and {"type", "title", "detail", "instance"} <= set(prob)
    r = sim.raw("/api/Order/v2/query", {"pageSize": 10})
    assert r.status_code == 400
    for oid in ids:
        assert sim.post("/api/Order/cancel", {"accountId": acct, "orderId": oid})["success"]
    sim.post("/api/Position/closeContract", {"accountId": acct, "contractId": sim.es["id"]})


async def test_trailing_stop_fires_on_the_sims_prints(sim: Sim) -> None:
    acct = ACCOUNTS["stops"]
    entry = sim.place(acct, type=2, side=0, size=2)
    fill = sim.order(acct, entry["orderId"])["filledPrice"]
    async with UserHub(sim, acct) as hub:
        # a sell trailing stop a couple of ticks under the market: whichever way the random walk
        # goes, a pullback of that size from its running high comes within seconds
        trail = sim.place(acct, type=5, side=1, trailPrice=fill - 0.5)
        if not trail["success"]:   # the market moved a lot since the entry; re-anchor
            trail = sim.place(acct, type=5, side=1, trailPrice=fill - 1.25)
        assert trail["success"], trail
        order = sim.order(acct, trail["orderId"])
        assert order["trailDistance"] >= 1 and order["stopPrice"] is not None
        assert order["trailPrice"] == pytest.approx(order["trailDistance"] * 0.25)
        fired = eventually(lambda: (o := sim.order(acct, trail["orderId"]))["status"] == 2 and o,
                           timeout=30, interval=0.1, what="the trailing stop to fire")
        assert fired["filledPrice"] <= fired["stopPrice"]
        await aeventually(lambda: any(n == "GatewayUserAccount" for n, _ in hub.events),
                          what="events of the trailing stop's fill")
        filled_at = next(i for i, (n, _, oid, s) in enumerate(hub.seen())
                         if oid == trail["orderId"] and s == 2)
        assert [n for n, *_ in hub.seen()[filled_at:filled_at + 4]] == [
            "GatewayUserOrder", "GatewayUserTrade", "GatewayUserPosition", "GatewayUserAccount"]
    (pos,) = sim.positions(acct)
    assert (pos["type"], pos["size"]) == (1, 1)
    sim.post("/api/Position/closeContract", {"accountId": acct, "contractId": sim.es["id"]})


def test_modify_and_cancel_a_resting_limit_over_http(sim: Sim) -> None:
    acct = ACCOUNTS["modify"]
    entry = sim.place(acct, type=2, side=0)
    price = sim.order(acct, entry["orderId"])["filledPrice"]
    sim.post("/api/Position/closeContract", {"accountId": acct, "contractId": sim.es["id"]})
    oid = sim.place(acct, type=1, side=0, limitPrice=price - 100.0)["orderId"]
    m = sim.post("/api/Order/modify", {"accountId": acct, "orderId": oid, "size": 3,
                                       "limitPrice": price - 90.0, "stopPrice": None,
                                       "trailPrice": None})
    assert m == {"success": True, "errorCode": 0, "errorMessage": None}
    order = sim.order(acct, oid)
    assert (order["size"], order["limitPrice"], order["status"]) == (3, price - 90.0, 1)
    bad = sim.post("/api/Order/modify", {"accountId": acct, "orderId": oid, "limitPrice": 1.1})
    assert (bad["success"], bad["errorCode"]) == (False, 3)
    assert sim.post("/api/Order/cancel", {"accountId": acct, "orderId": oid})["success"]
    again = sim.post("/api/Order/cancel", {"accountId": acct, "orderId": oid})
    assert (again["success"], again["errorCode"]) == (False, 3)
    assert sim.order(acct, oid)["status"] == 3
    r = sim.raw("/api/Order/modify", {"accountId": acct, "orderId": "abc"})
    assert r.status_code == 400


TRADING_PATHS = (
    "/api/Account/search", "/api/Order/place", "/api/Order/modify", "/api/Order/cancel",
    "/api/Order/search", "/api/Order/searchOpen", "/api/Order/searchById", "/api/Order/v2/query",
    "/api/Position/searchOpen", "/api/Position/closeContract",
    "/api/Position/partialCloseContract", "/api/Trade/search")


def test_every_trading_endpoint_needs_a_token_and_never_crashes_on_an_empty_body(sim: Sim
                                                                                 ) -> None:
    for path in TRADING_PATHS:
        assert httpx.post(sim.base + path, json={}).status_code == 401, path
        r = sim.raw(path, {})
        if path == "/api/Order/v2/query":
            assert r.status_code == 400, r.text        # filter.accountId is required
            continue
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        assert {"success", "errorCode", "errorMessage"} <= set(body), (path, body)
        assert body["success"] is (path == "/api/Account/search"), (path, body)
