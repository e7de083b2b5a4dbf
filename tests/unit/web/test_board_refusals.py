"""The page's list of the gate's refusals and actions: those heard on the bus and the gateway's
`refusals` answer (the day's, asked after a restart) merged each once, newest first, at most
MAX_REFUSALS."""

from __future__ import annotations

from typing import Any

from web.board import MAX_FILLS, MAX_REFUSALS, Board


def refusal(n: int, ts: int, instance: str = "gateway-1-aa") -> dict[str, Any]:
    return {"type": "risk", "account": 7, "event": "reject", "state": "ACTIVE",
            "reason": f"refused {n}", "rule": "max_position", "owner": "manual",
            "client_id": f"manual-{n}", "floor": 48_000.0, "equity": 50_000.0,
            "figures": {}, "refusal_id": f"{instance}:{n}",
            "order": {"kind": "submit", "contract": "C", "side": 0, "size": n}, "ts": ts}


def action(ts: int) -> dict[str, Any]:
    return {"type": "risk", "account": 7, "event": "action", "state": "HALTED",
            "reason": "flatten: halted", "rule": "halt", "owner": None, "client_id": None,
            "floor": 48_000.0, "equity": 50_000.0, "figures": {}, "refusal_id": None,
            "order": None, "ts": ts}


def ids(board: Board) -> list[Any]:
    return [r["refusal_id"] or f"action@{r['ts']}" for r in board.refusals]


def test_the_gateway_s_refusals_join_those_heard_once_each_newest_first() -> None:
    board = Board({})
    board.refusal(refusal(3, 300))
    board.refusal(action(350))
    board.refusal(refusal(5, 500))
    pushes = board.load_refusals([refusal(5, 500), refusal(4, 400), refusal(2, 200),
                                  refusal(4, 400)])
    assert ids(board) == ["gateway-1-aa:5", "gateway-1-aa:4", "action@350", "gateway-1-aa:3",
                          "gateway-1-aa:2"]
    (key, kind, data, urgent), = pushes
    assert (key, kind, urgent) == ("refusals", "refusals", True) and data == list(board.refusals)
    # The same answer again (the gateway came back): nothing new, nothing pushed.
    assert board.load_refusals([refusal(5, 500), refusal(4, 400), refusal(3, 300)]) == []
    # A refusal heard on the bus after it was loaded is not listed twice.
    assert board.refusal(refusal(4, 400)) == [] and len(board.refusals) == 5
    # The same count from another gateway instance is another refusal.
    board.load_refusals([refusal(4, 450, instance="gateway-2-bb")])
    assert ids(board)[:3] == ["gateway-1-aa:5", "gateway-2-bb:4", "gateway-1-aa:4"]
    # Actions carry no id: each heard is listed.
    board.refusal(action(600))
    board.refusal(action(600))
    assert ids(board)[:2] == ["action@600", "action@600"]


def test_the_list_keeps_the_newest_max_refusals_the_same_cap_as_fills() -> None:
    assert MAX_REFUSALS == MAX_FILLS
    board = Board({})
    for i in range(10):
        board.refusal(refusal(10_000 + i, 10_000 + i))     # heard on the bus: the newest
    board.load_refusals([refusal(i, i) for i in range(2 * MAX_REFUSALS)])
    assert len(board.refusals) == MAX_REFUSALS
    assert [r["ts"] for r in board.refusals] == [10_009 - i for i in range(10)] + \
        [2 * MAX_REFUSALS - 1 - i for i in range(MAX_REFUSALS - 10)]
