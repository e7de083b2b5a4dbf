"""The trading REST handlers: searches, v2/query paging and validation, body binding."""

from __future__ import annotations

import pytest

from sim.api.binding import BadRequest
from tests.unit.sim.exchange.engine_rig import ACCOUNT, ES, MNQ, T0, Rig
from chillly.clock import MINUTE_MS, ms_to_iso


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    r.market_at(6000.0)
    r.market_at(21000.0, MNQ)
    r.take()
    return r


def place_many(rig: Rig, n: int) -> list[int]:
    """n resting limits, one per minute; returns their ids."""
    ids = []
    for i in range(n):
        ids.append(rig.place(type=1, side=0, limitPrice=5900.0 - i * 0.25)["orderId"])
        rig.clock.advance(MINUTE_MS)
    return ids


def query(rig: Rig, **body) -> dict:
    body.setdefault("filter", {"accountId": ACCOUNT})
    return rig.call("/api/Order/v2/query", body)


def test_order_search_by_time_window(rig: Rig) -> None:
    ids = place_many(rig, 5)
    r = rig.call("/api/Order/search", {"accountId": ACCOUNT,
                                       "startTimestamp": ms_to_iso(T0 + MINUTE_MS),
                                       "endTimestamp": ms_to_iso(T0 + 3 * MINUTE_MS)})
    assert r["success"] and [o["id"] for o in r["orders"]] == ids[1:4]
    open_ended = rig.call("/api/Order/search", {"accountId": ACCOUNT,
                                                "startTimestamp": ms_to_iso(T0 + 4 * MINUTE_MS)})
    assert [o["id"] for o in open_ended["orders"]] == ids[4:]


def test_search_open_and_by_id(rig: Rig) -> None:
    resting = rig.place(type=1, side=0, limitPrice=5990.0)["orderId"]
    rig.place(type=2, side=0)
    r = rig.call("/api/Order/searchOpen", {"accountId": ACCOUNT})
    assert [o["id"] for o in r["orders"]] == [resting]
    assert rig.call("/api/Order/searchById", {"accountId": ACCOUNT, "orderId": resting}
                    )["order"]["limitPrice"] == 5990.0
    missing = rig.call("/api/Order/searchById", {"accountId": ACCOUNT, "orderId": 3})
    assert (missing["success"], missing["errorCode"], missing["order"]) == (False, 1, None)


@pytest.mark.parametrize("path, payload", [
    ("/api/Order/search", "orders"), ("/api/Order/searchOpen", "orders"),
    ("/api/Position/searchOpen", "positions"), ("/api/Trade/search", "trades")])
def test_unknown_account_on_searches_is_code_1(rig: Rig, path: str, payload: str) -> None:
    r = rig.call(path, {"accountId": 77, "startTimestamp": "2026-01-01T00:00:00Z"})
    assert (r["success"], r["errorCode"], r[payload]) == (False, 1, None)


def test_trade_search_window(rig: Rig) -> None:
    rig.place(type=2, side=0)
    rig.clock.advance(10 * MINUTE_MS)
    rig.place(type=2, side=1)
    everything = rig.call("/api/Trade/search", {"accountId": ACCOUNT})["trades"]
    assert len(everything) == 2
    later = rig.call("/api/Trade/search", {"accountId": ACCOUNT,
                                           "startTimestamp": ms_to_iso(T0 + MINUTE_MS)})
    assert [t["profitAndLoss"] for t in later["trades"]] == [-12.5]


def test_position_search_open_one_row_per_contract(rig: Rig) -> None:
    rig.place(type=2, side=0)
    rig.place(type=2, side=0)
    rig.place(contract=MNQ, type=2, side=1, size=3)
    rows = rig.call("/api/Position/searchOpen", {"accountId": ACCOUNT})["positions"]
    assert [(p["contractId"], p["type"], p["size"]) for p in rows] == [
        (ES.id, 1, 2), (MNQ.id, 2, 3)]
    assert set(rows[0]) == {"id", "accountId", "contractId", "contractDisplayName",
                            "creationTimestamp", "type", "size", "averagePrice"}


# ----- v2/query ---------------------------------------------------------------------------------

def test_v2_query_pages_sorts_and_counts(rig: Rig) -> None:
    ids = place_many(rig, 7)
    page = query(rig, pageSize=3, pageOffset=0, sortBy=1, sortDirection=0, includeTotalCount=True)
    assert [o["id"] for o in page["orders"]] == ids[:3] and page["totalCount"] == 7
    page2 = query(rig, pageSize=3, pageOffset=3, sortBy=1, sortDirection=0)
    assert [o["id"] for o in page2["orders"]] == ids[3:6] and page2["totalCount"] is None
    newest = query(rig, pageSize=2)          # default: CreatedAt, descending
    assert [o["id"] for o in newest["orders"]] == [ids[6], ids[5]]


def test_v2_query_filters(rig: Rig) -> None:
    ids = place_many(rig, 3)
    rig.place(contract=MNQ, type=2, side=0)
    rig.call("/api/Order/cancel", {"accountId": ACCOUNT, "orderId": ids[0]})
    by_status = query(rig, filter={"accountId": ACCOUNT, "statuses": [1, 6, 7, 8]})
    assert sorted(o["id"] for o in by_status["orders"]) == ids[1:]
    by_contract = query(rig, filter={"accountId": ACCOUNT, "contractId": MNQ.id})
    assert [o["contractId"] for o in by_contract["orders"]] == [MNQ.id]
    window = query(rig, filter={"accountId": ACCOUNT, "createdAfter": ms_to_iso(T0 + MINUTE_MS),
                                "createdBefore": ms_to_iso(T0 + 2 * MINUTE_MS)})
    assert sorted(o["id"] for o in window["orders"]) == ids[1:3]


def test_v2_query_caps_a_page_at_100(rig: Rig) -> None:
    place_many(rig, 120)
    assert len(query(rig)["orders"]) == 100
    with pytest.raises(BadRequest) as exc:
        query(rig, pageSize=101)
    prob = exc.value.problem
    assert prob["status"] == 400 and prob["instance"] == "/api/Order/v2/query"
    assert set(prob) >= {"type", "title", "status", "detail", "instance"}


@pytest.mark.parametrize("body", [
    {"filter": None},
    {"filter": {}},
    {"filter": {"accountId": ACCOUNT, "statuses": [9]}},
    {"filter": {"accountId": ACCOUNT, "statuses": "open"}},
    {"filter": {"accountId": ACCOUNT}, "pageSize": 0},
    {"filter": {"accountId": ACCOUNT}, "pageOffset": -1},
    {"filter": {"accountId": ACCOUNT}, "sortBy": 2},
    {"filter": {"accountId": ACCOUNT}, "sortDirection": 5},
    {"filter": {"accountId": ACCOUNT, "createdAfter": "yesterday"}},
    {"filter": {"accountId": "abc"}},
])
def test_v2_query_invalid_input_is_400(rig: Rig, body: dict) -> None:
    with pytest.raises(BadRequest):
        rig.call("/api/Order/v2/query", body)


def test_v2_query_unknown_account_is_code_1(rig: Rig) -> None:
    r = query(rig, filter={"accountId": 5})
    assert (r["success"], r["errorCode"], r["orders"]) == (False, 1, None)


# ----- body binding -----------------------------------------------------------------------------

def test_property_names_bind_case_insensitively_and_numbers_from_strings(rig: Rig) -> None:
    r = rig.call("/api/Order/place", {"AccountId": str(ACCOUNT), "CONTRACTID": ES.id,
                                      "type": "2", "side": 0, "size": 1.0})
    assert r["success"], r


@pytest.mark.parametrize("path, body", [
    ("/api/Order/place", {"accountId": ACCOUNT, "contractId": 5, "type": 2, "side": 0, "size": 1}),
    ("/api/Order/place", {"accountId": True, "contractId": ES.id, "type": 2, "side": 0}),
    ("/api/Order/place", {"accountId": ACCOUNT, "contractId": ES.id, "type": 2, "side": 0,
                          "size": 1, "stopLossBracket": 5}),
    ("/api/Order/modify", {"accountId": ACCOUNT, "orderId": "x"}),
    ("/api/Order/search", {"accountId": ACCOUNT, "startTimestamp": 12}),
    ("/api/Account/search", {"onlyActiveAccounts": "yes"}),
])
def test_wrong_json_types_are_400(rig: Rig, path: str, body: dict) -> None:
    with pytest.raises(BadRequest) as exc:
        rig.call(path, body)
    assert exc.value.problem["status"] == 400 and exc.value.problem["errors"]


@pytest.mark.parametrize("body, code, message", [
    ({}, 1, "Account not found."),
    ({"accountId": ACCOUNT}, 8, None),
    ({"accountId": ACCOUNT, "contractId": ES.id}, 2, "The type field is required."),
    ({"accountId": ACCOUNT, "contractId": ES.id, "type": 2}, 2, "The side field is required."),
    ({"accountId": ACCOUNT, "contractId": ES.id, "type": 2, "side": 1}, 2,
     "The size field is required."),
])
def test_missing_place_fields_get_the_endpoint_codes(rig: Rig, body: dict, code: int,
                                                     message: str | None) -> None:
    r = rig.call("/api/Order/place", body)
    assert r["success"] is False and r["errorCode"] == code and isinstance(r["orderId"], int)
    if message:
        assert r["errorMessage"] == message


def test_missing_fields_on_other_endpoints_never_crash(rig: Rig) -> None:
    for path in ("/api/Order/modify", "/api/Order/cancel", "/api/Order/search",
                 "/api/Order/searchOpen", "/api/Order/searchById", "/api/Position/searchOpen",
                 "/api/Position/closeContract", "/api/Position/partialCloseContract",
                 "/api/Trade/search"):
        r = rig.call(path, {})
        assert r["success"] is False and r["errorCode"] == 1, (path, r)
    r = rig.call("/api/Order/cancel", {"accountId": ACCOUNT})
    assert (r["errorCode"], r["errorMessage"]) == (2, "The orderId field is required.")
    r = rig.call("/api/Position/closeContract", {"accountId": ACCOUNT})
    assert r["errorCode"] == 3
    accounts = rig.call("/api/Account/search", {})
    assert accounts["success"] and len(accounts["accounts"]) == 1


def test_body_must_be_an_object(rig: Rig) -> None:
    with pytest.raises(BadRequest):
        rig.call("/api/Order/place", [])  # type: ignore[arg-type]
