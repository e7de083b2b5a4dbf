"""Contract tests of the sim's SignalR hubs over real WebSockets (projectx-api.md §6).

Framing is checked byte by byte with a raw `websockets` client; subscription flows use plain
pysignalr, configured the way projectx-api.md §1 says a TopstepX client must be (token in the
URL, negotiate first, subscriptions re-sent in on_open).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from pysignalr.client import SignalRClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.sim_client import clear_faults, login, set_faults, sim_env
from tests.support import aeventually, running_sim

RS = "\x1e"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("sim-hubs")
    anchor = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = sim_env(tmp, CLOCK_SPEED="10", CLOCK_ANCHOR=anchor, SIM_HUB_PING_S="0.3",
                  SIM_HUB_CLOSE_ON_EXPIRY="1", SIM_RATE_OTHER="100000")
    with running_sim(tmp, env) as base:
        yield base


@pytest.fixture
def token(sim: str) -> Iterator[str]:
    yield login(sim)
    clear_faults(sim)


@pytest.fixture
def es(sim: str, token: str) -> str:
    contracts = httpx.post(f"{sim}/api/Contract/available", json={"live": False},
                           headers={"Authorization": f"Bearer {token}"}).json()["contracts"]
    return next(c["id"] for c in contracts if c["symbolId"] == "F.US.EP" and c["activeContract"])


def ws_url(base: str, hub: str, token: str | None) -> str:
    url = base.replace("http://", "ws://") + f"/hubs/{hub}"
    return url + (f"?access_token={token}" if token else "")


_pending: dict[int, list[dict[str, Any]]] = {}


async def records(ws: ClientConnection, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The next frame's records (after any left over by `until`)."""
    left = _pending.pop(id(ws), None)
    if left:
        return left
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str) and raw.endswith(RS)
    return [json.loads(part) for part in raw.split(RS) if part]


async def until(ws: ClientConnection, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
    """Read records until one satisfies `pred` (pings and events in between are skipped; the
    records after it in the same frame are kept for the next read)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, "expected record did not arrive"
        recs = await records(ws, left)
        for i, rec in enumerate(recs):
            if pred(rec):
                if recs[i + 1:]:
                    _pending[id(ws)] = recs[i + 1:]
                return rec


@pytest.fixture
async def raw(sim: str, token: str) -> AsyncIterator[ClientConnection]:
    """A raw WebSocket on the market hub after a correct handshake."""
    async with connect(ws_url(sim, "market", token), max_size=2**22) as ws:
        await ws.send('{"protocol":"json","version":1}' + RS)
        assert await asyncio.wait_for(ws.recv(), 5) == "{}" + RS
        yield ws
    _pending.pop(id(ws), None)


def test_negotiate_answers_a_connection_id_and_needs_a_token(sim: str, token: str) -> None:
    for hub in ("user", "market"):
        r = httpx.post(f"{sim}/hubs/{hub}/negotiate?access_token={token}")
        assert r.status_code == 200
        body = r.json()
        assert body["connectionId"] and body["availableTransports"] == [
            {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}]
        v1 = httpx.post(f"{sim}/hubs/{hub}/negotiate?negotiateVersion=1",
                        headers={"Authorization": f"Bearer {token}"}).json()
        assert v1["negotiateVersion"] == 1 and v1["connectionToken"]
        assert httpx.post(f"{sim}/hubs/{hub}/negotiate").status_code == 401
        assert httpx.post(f"{sim}/hubs/{hub}/negotiate?access_token=junk").status_code == 401


def test_hub_paths_serve_websockets_only(sim: str, token: str) -> None:
    r = httpx.get(f"{sim}/hubs/market?access_token={token}")
    assert r.status_code == 400


async def test_websocket_refuses_missing_or_bad_tokens(sim: str, token: str) -> None:
    for bad in (None, "junk"):
        with pytest.raises(InvalidStatus) as err:
            async with connect(ws_url(sim, "user", bad)):
                pass
        assert err.value.response.status_code == 401
    # the bearer header works as well as the query string, and a stale ?id= is fine
    async with connect(ws_url(sim, "user", None) + "?id=stale",
                       additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send('{"protocol":"json","version":1}' + RS)
        assert await asyncio.wait_for(ws.recv(), 5) == "{}" + RS


async def test_handshake_with_another_protocol_is_refused(sim: str, token: str) -> None:
    async with connect(ws_url(sim, "market", token)) as ws:
        await ws.send('{"protocol":"messagepack","version":1}' + RS)
        (reply,) = await records(ws)
        assert "messagepack" in reply["error"]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)


async def test_invocations_complete_only_with_an_invocation_id(raw: ClientConnection,
                                                               es: str) -> None:
    await raw.send(json.dumps({"type": 1, "target": "SubscribeContractTrades",
                               "arguments": [es]}) + RS
                   + json.dumps({"type": 1, "target": "UnsubscribeContractTrades",
                                 "arguments": [es], "invocationId": "7"}) + RS)
    done = await until(raw, lambda r: r.get("type") == 3)
    assert done == {"type": 3, "invocationId": "7", "result": None}


async def test_unknown_method_and_missing_argument_errors(raw: ClientConnection) -> None:
    await raw.send(json.dumps({"type": 1, "target": "SubscribeContractDepth",
                               "arguments": ["CON.F.US.EP.Z26"], "invocationId": "1"}) + RS)
    assert await until(raw, lambda r: r.get("type") == 3) == {
        "type": 3, "invocationId": "1", "error": "Method does not exist."}
    await raw.send(json.dumps({"type": 1, "target": "SubscribeContractQuotes", "arguments": [],
                               "invocationId": "2"}) + RS)
    err = await until(raw, lambda r: r.get("type") == 3)
    assert err["invocationId"] == "2" and "argument" in err["error"]


async def test_server_pings_and_client_close(raw: ClientConnection) -> None:
    assert await until(raw, lambda r: r == {"type": 6}, timeout=3)
    await raw.send('{"type":6}' + RS + '{"type":7}' + RS)
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(raw.recv(), 5)


async def test_market_events_are_framed_like_the_venue(raw: ClientConnection, es: str) -> None:
    for i, target in enumerate(("SubscribeContractQuotes", "SubscribeContractTrades",
                                "SubscribeContractMarketDepth")):
        await raw.send(json.dumps({"type": 1, "target": target, "arguments": [es],
                                   "invocationId": str(i)}) + RS)
    quote = await until(raw, lambda r: r.get("target") == "GatewayQuote")
    cid, q = quote["arguments"]
    assert cid == es and quote["type"] == 1
    assert {"symbol", "symbolName", "lastPrice", "bestBid", "bestAsk", "open", "high", "low",
            "volume", "lastUpdated", "timestamp"} <= set(q)
    assert q["symbol"] == "F.US.EP" and q["bestBid"] < q["bestAsk"]
    depth = await until(raw, lambda r: r.get("target") == "GatewayDepth")
    assert depth["arguments"][0] == es
    assert [(e["type"], e["price"]) for e in depth["arguments"][1]] == [(6, 0)]
    snapshot = await until(raw, lambda r: r.get("target") == "GatewayDepth")
    assert {1, 2, 3, 4} <= {e["type"] for e in snapshot["arguments"][1]}
    trade = await until(raw, lambda r: r.get("target") == "GatewayTrade")
    cid, prints = trade["arguments"]
    assert cid == es and isinstance(prints, list) and prints
    for p in prints:
        assert set(p) == {"symbolId", "price", "timestamp", "type", "volume"}
        assert p["type"] in (0, 1) and p["volume"] >= 1 and p["price"] * 4 == int(p["price"] * 4)


async def test_user_hub_methods_complete(sim: str, token: str) -> None:
    async with connect(ws_url(sim, "user", token)) as ws:
        await ws.send('{"protocol":"json","version":1}' + RS)
        assert await asyncio.wait_for(ws.recv(), 5) == "{}" + RS
        calls = [("SubscribeAccounts", []), ("SubscribeOrders", [1001]),
                 ("SubscribePositions", [1001]), ("SubscribeTrades", [1001]),
                 ("UnsubscribeOrders", [1001])]
        for i, (target, args) in enumerate(calls):
            await ws.send(json.dumps({"type": 1, "target": target, "arguments": args,
                                      "invocationId": f"u{i}"}) + RS)
        seen = {}
        while len(seen) < len(calls):
            for rec in await records(ws):
                if rec.get("type") == 3:
                    seen[rec["invocationId"]] = rec
                elif rec.get("target") == "GatewayUserAccount":
                    (env,) = rec["arguments"]
                    assert env["action"] == 1 and "id" in env["data"]
                    assert None not in env["data"].values()
        assert all("error" not in r for r in seen.values())


async def test_drop_closes_with_an_error_message_in_close_mode(sim: str,
                                                               raw: ClientConnection) -> None:
    set_faults(sim, drop_mode="close", drop_hubs_now=True)
    close = await until(raw, lambda r: r.get("type") == 7)
    assert close["error"] and close["allowReconnect"] is True


async def test_gateway_logout_then_close_and_token_revoked(sim: str, token: str,
                                                           raw: ClientConnection) -> None:
    done = set_faults(sim, logout_now=True)["done"]
    assert done["logout_now"] >= 1
    assert (await until(raw, lambda r: r.get("type") == 1 and r["target"] == "GatewayLogout"))
    close = await until(raw, lambda r: r.get("type") == 7)
    assert close["allowReconnect"] is False
    assert httpx.post(f"{sim}/api/Auth/validate",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 401


async def test_expired_token_closes_open_hub_connections(sim: str,
                                                         raw: ClientConnection) -> None:
    set_faults(sim, expire_tokens_now=True)
    close = await until(raw, lambda r: r.get("type") == 7)
    assert "expired" in close["error"]


async def test_pysignalr_resubscribes_after_a_dropped_connection(sim: str, token: str,
                                                                 es: str) -> None:
    url = f"{sim}/hubs/market?access_token={token}"
    client = SignalRClient(url, access_token_factory=lambda: token, max_size=2**22)
    opens = 0
    quotes: list[tuple[int, list[Any]]] = []

    async def on_open() -> None:
        nonlocal opens
        opens += 1
        await client.send("SubscribeContractQuotes", [es])

    async def on_quote(args: list[Any]) -> None:
        quotes.append((opens, args))

    client.on_open(on_open)
    client.on("GatewayQuote", on_quote)
    task = asyncio.create_task(client.run())
    try:
        await aeventually(lambda: any(n == 1 for n, _ in quotes), timeout=10,
                          what="quotes on the first connection")
        assert set_faults(sim, drop_hubs_now=True)["done"]["drop_hubs_now"] >= 1
        await aeventually(lambda: any(n == 2 for n, _ in quotes), timeout=15,
                          what="quotes after the automatic reconnect and resubscribe")
        n, (cid, q) = quotes[-1]
        assert cid == es and q["symbol"] == "F.US.EP"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_periodic_drops_until_switched_off(sim: str, token: str) -> None:
    set_faults(sim, drop_mode="close", drop_hubs_every_s=0.3)
    for _ in range(2):  # dropped again after reconnecting
        async with connect(ws_url(sim, "user", token)) as ws:
            await ws.send('{"protocol":"json","version":1}' + RS)
            assert await asyncio.wait_for(ws.recv(), 5) == "{}" + RS
            close = await until(ws, lambda r: r.get("type") == 7, timeout=5)
            assert close["allowReconnect"] is True
            _pending.pop(id(ws), None)
    set_faults(sim, drop_hubs_every_s=0)
    assert httpx.get(f"{sim}/admin/faults").json()["faults"]["drop_hubs_every_s"] == 0



async def test_nothing_is_replayed_to_a_connection_that_did_not_subscribe(
        sim: str, token: str, raw: ClientConnection, es: str) -> None:
    await raw.send(json.dumps({"type": 1, "target": "SubscribeContractTrades",
                               "arguments": [es]}) + RS)
    await until(raw, lambda r: r.get("target") == "GatewayTrade")
    await raw.close()
    async with connect(ws_url(sim, "market", token)) as ws:
        await ws.send('{"protocol":"json","version":1}' + RS)
        assert await asyncio.wait_for(ws.recv(), 5) == "{}" + RS
        seen: list[dict[str, Any]] = []
        pings = 0
        while pings < 2:  # server pings (every 0.3 s here) bound the observation
            for rec in await records(ws):
                pings += rec == {"type": 6}
                seen.append(rec)
        assert all(r.get("type") == 6 for r in seen)
