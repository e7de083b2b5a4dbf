"""The page's list of the day's fills: those heard on the bus and the gateway's `fills` answer
(asked after a restart) merged each once, newest first, at most MAX_FILLS."""

from __future__ import annotations

from typing import Any

from web.board import MAX_FILLS, Board


def fill(trade_id: int, vt: int, account: int = 7) -> dict[str, Any]:
    return {"type": "fill", "account": account, "trade_id": trade_id, "order_id": 1000 + trade_id,
            "contract": "CON.F.US.EP.Z26", "side": 0, "size": 1, "price": 6000.25,
            "owner": "manual", "client_id": None, "fees": 1.4, "pnl": None, "vt": vt}


def ids(board: Board) -> list[int]:
    return [f["trade_id"] for f in board.fills]


def test_the_gateway_s_fills_join_those_heard_once_each_newest_first() -> None:
    board = Board({})
    board.fill(fill(3, 300))
    board.fill(fill(5, 500))
    pushes = board.load_fills([fill(5, 500), fill(4, 400), fill(2, 200), fill(4, 400)])
    assert ids(board) == [5, 4, 3, 2]
    (key, kind, data, urgent), = pushes
    assert kind == "fills" and urgent and [f["trade_id"] for f in data] == [5, 4, 3, 2]
    # The same answer again (the gateway came back): nothing new, nothing pushed.
    assert board.load_fills([fill(5, 500), fill(4, 400), fill(3, 300)]) == []
    # A fill heard on the bus after it was loaded is not drawn twice.
    assert board.fill(fill(4, 400)) == [] and ids(board) == [5, 4, 3, 2]
    # Another account's fill with the same trade id is another fill.
    board.load_fills([fill(4, 450, account=8)])
    assert [(f["account"], f["trade_id"]) for f in board.fills][:3] == [(7, 5), (8, 4), (7, 4)]
    # Each load has a key of its own: a page never gets an older list after a newer fill.
    assert board.load_fills([fill(6, 600)])[0][0] != key


def test_a_fill_without_a_venue_time_sorts_by_its_bus_stamp() -> None:
    board = Board({})
    board.fill({**fill(9, 0), "vt": None, "ts": 350})
    board.load_fills([fill(1, 100), fill(2, 400)])
    assert ids(board) == [2, 9, 1]


def test_the_list_keeps_the_newest_max_fills() -> None:
    board = Board({})
    for i in range(10):
        board.fill(fill(10_000 + i, 10_000 + i))         # heard on the bus: the newest
    board.load_fills([fill(i, i) for i in range(2 * MAX_FILLS)])
    assert len(board.fills) == MAX_FILLS
    assert ids(board) == [10_009 - i for i in range(10)] + \
        [2 * MAX_FILLS - 1 - i for i in range(MAX_FILLS - 10)]
    snapshot_fills = [f for f in board.fills]
    assert snapshot_fills == sorted(snapshot_fills, key=lambda f: f["vt"], reverse=True)
