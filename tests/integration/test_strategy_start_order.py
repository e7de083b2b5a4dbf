"""The strategy host's start (ARCHITECTURE.md §9), judged against the gateway's protocol: the
test plays the gateway, series and subscriptions services on the real bus, so it can put an
order and a position event just before the answers they are part of, as a busy gateway does.

The real host process buffers what arrives while it starts and replays it after `on_start`.
Events from before the gateway's answer are already in the view `on_start` saw; replaying them
showed the strategy its order working again and its position flat again after it had started
with the order filled and the position long (the old host, and the test, show that)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chillly import topics
from chillly.messages import OrderEvent, PositionEvent
from tests.support import START_TIMEOUT, Procs, aeventually

CID = "CON.F.US.EP.H26"
ACCOUNT = 7

STRATS = '''
from strategy_host.api import Strategy

class Viewer(Strategy):
    def on_start(self):
        self.log.info("VIEW start position %d open %d", self.position().size,
                      len(self.open_orders()))
    def on_order(self, order):
        self.log.info("VIEW order %s %s", order.client_id, order.state)
    def on_position(self, position):
        self.log.info("VIEW position %d", position.size)
'''

TOML = '''
[strategies.viewer]
class = "strats.py:Viewer"
contracts = ["ES"]
timeframes = ["1m"]
warmup = 0
'''


def order(state: str, status: int, filled: int) -> OrderEvent:
    return OrderEvent(account=ACCOUNT, order_id=11, contract=CID, status=status, side=0, size=1,
                      order_type=1, owner="viewer", state=state, fill_volume=filled,
                      limit_price=6000.0, client_id="viewer-1")


def position(size: int) -> PositionEvent:
    return PositionEvent(account=ACCOUNT, contract=CID, side=1 if size else 0, size=size,
                         owner="viewer", avg_price=6000.0 if size else None)


async def test_events_the_gateways_answer_already_holds_are_not_replayed(
        procs: Procs, bus: Any, tmp_path: Path) -> None:
    (tmp_path / "strats.py").write_text(STRATS)
    (tmp_path / "strategies.toml").write_text(TOML)

    async def subscribe(args: dict[str, Any]) -> dict[str, Any]:
        return {"contract": CID, "subscribed": True}

    async def window(args: dict[str, Any]) -> dict[str, Any]:
        return {"contract": CID, "tf": args.get("tf", "1m"), "bars": []}

    async def account(args: dict[str, Any]) -> dict[str, Any]:
        return {"account_id": ACCOUNT, "ready": True}

    async def orders(args: dict[str, Any]) -> dict[str, Any]:
        # The entry was working; it fills; the answer (built and sent in one step) says filled.
        bus.publish(topics.order_event(ACCOUNT, "viewer"), order("working", 1, 0))
        return {"orders": [order("filled", 2, 1).body()], "ready": True}

    async def positions(args: dict[str, Any]) -> dict[str, Any]:
        bus.publish(topics.position_event(ACCOUNT, "viewer"), position(0))
        return {"positions": [position(1).body()], "ready": True}

    bus.serve("subscriptions", {"subscribe": subscribe})
    bus.serve("series", {"window": window})
    bus.serve("gateway", {"account": account, "orders": orders, "positions": positions})
    await bus.ready(timeout=START_TIMEOUT)   # our command subscriptions have reached the broker
    host = procs.chillly("strategy-host", "viewer", name="strategy-viewer", env={
        "STRATEGIES_FILE": str(tmp_path / "strategies.toml"),
        "STRATEGY_STATE_DIR": str(tmp_path / "state")})
    await aeventually(lambda: "VIEW start" in host.log(), timeout=START_TIMEOUT, what="on_start")
    # Newer than the answers: delivered.
    bus.publish(topics.order_event(ACCOUNT, "viewer"), order("filled", 2, 1))
    await aeventually(lambda: "VIEW order viewer-1 filled" in host.log(), timeout=10,
                      what="the live order event")
    view = [line.split("VIEW ", 1)[1] for line in host.log().splitlines() if "VIEW " in line]
    assert view[0] == "start position 1 open 0", view
    assert view[1:] == ["order viewer-1 filled"], view
    # Its readiness probes, sent again before the resubscription is back at the broker, are no
    # lost messages (issue 21 item 11: every start warned of one).
    assert " lost " not in host.log() and "_probe" not in host.log(), host.log()
