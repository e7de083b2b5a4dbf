"""Fakes of the sim seam (catalogue, market view) and a rig driving the trading engine.

Only the seam's two read-only views are faked; the engine and its REST handlers are the real
code. Shared by the test_sim_trading*.py unit tests.
"""

from __future__ import annotations

from typing import Any

from chillly.clock import ManualClock, iso_to_ms
from sim.market.contracts import SimContract
from sim.exchange.rules import RULES
from sim.exchange.accounts import AccountConfig
from sim.exchange.engine import TradingEngine
from sim.api.trading import build_handlers

T0 = iso_to_ms("2026-11-24T15:00:00Z")
ES = SimContract("CON.F.US.EP.Z26", "ESZ6", "E-mini S&P 500: December 2026", 0.25, 12.5,
                 "F.US.EP", True, "ES")
ES_NEXT = SimContract("CON.F.US.EP.H27", "ESH7", "E-mini S&P 500: March 2027", 0.25, 12.5,
                      "F.US.EP", False, "ES")
MES = SimContract("CON.F.US.MES.Z26", "MESZ6", "Micro E-mini S&P 500: December 2026", 0.25,
                  1.25, "F.US.MES", True, "MES")
MNQ = SimContract("CON.F.US.MNQ.Z26", "MNQZ6", "Micro E-mini Nasdaq-100: December 2026", 0.25,
                  0.5, "F.US.MNQ", True, "MNQ")
ACCOUNT = 1001


class FakeCatalogue:
    def __init__(self) -> None:
        self.contracts = {c.id: c for c in (ES, ES_NEXT, MES, MNQ)}

    def get(self, contract_id: str) -> SimContract | None:
        return self.contracts.get(contract_id)


class FakeMarket:
    def __init__(self) -> None:
        self.bid: dict[str, float] = {}
        self.ask: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.open = True

    def last_price(self, contract_id: str) -> float | None:
        return self.last.get(contract_id)

    def best_bid(self, contract_id: str) -> float | None:
        return self.bid.get(contract_id)

    def best_ask(self, contract_id: str) -> float | None:
        return self.ask.get(contract_id)

    def is_open(self, now_ms: int) -> bool:
        return self.open


class Rig:
    """An engine with fake views, its handlers, and the events it emitted."""

    def __init__(self, accounts: list[AccountConfig] | None = None,
                 bracket_mode: str = "auto_oco", enforce: tuple[str, ...] = RULES,
                 sessions: bool = False, t0: int = T0, fill_model: str = "touch") -> None:
        self.clock = ManualClock(t0)
        self.market = FakeMarket()
        self.events: list[tuple[str, int, dict[str, Any]]] = []
        self.engine = TradingEngine(self.clock, FakeCatalogue(), self.market, self._emit,
                                    accounts=accounts, bracket_mode=bracket_mode,
                                    enforce=enforce, sessions=sessions,
                                    fill_model=fill_model)
        self.api = build_handlers(self.engine)

    def _emit(self, name: str, account_id: int, envelope: dict[str, Any]) -> None:
        # Every event of every test is checked against the hub framing rules.
        assert set(envelope) == {"action", "data"} and envelope["action"] in (0, 1, 2)
        assert all(v is not None for v in envelope["data"].values()), envelope
        assert envelope["data"].get("accountId", account_id) == account_id
        for key in ("creationTimestamp", "updateTimestamp"):
            if key in envelope["data"]:
                assert envelope["data"][key].endswith("Z")
        self.events.append((name, account_id, envelope))

    def quote(self, bid: float, ask: float, contract: SimContract = ES) -> None:
        self.market.bid[contract.id] = bid
        self.market.ask[contract.id] = ask
        self.engine.on_quote(contract.id, bid, ask, self.clock.now_ms())

    def trade(self, price: float, contract: SimContract = ES, size: int = 1) -> None:
        self.market.last[contract.id] = price
        self.engine.on_trade(contract.id, price, size, self.clock.now_ms())

    def market_at(self, last: float, contract: SimContract = ES) -> None:
        """A one-tick-wide market around `last`: bid = last, ask = last + 1 tick."""
        self.trade(last, contract)
        self.quote(last, last + contract.tick_size, contract)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.api[path](body)

    def place(self, contract: SimContract = ES, account: int = ACCOUNT, **fields: Any
              ) -> dict[str, Any]:
        body = {"accountId": account, "contractId": contract.id, "size": 1, **fields}
        return self.call("/api/Order/place", body)

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        """(event name, envelope) pairs emitted since the last take."""
        out = [(n, e) for n, _, e in self.events]
        self.events.clear()
        return out

    def order(self, order_id: int, account: int = ACCOUNT) -> dict[str, Any]:
        r = self.call("/api/Order/searchById", {"accountId": account, "orderId": order_id})
        assert r["success"], r
        return r["order"]

    def orders(self, account: int = ACCOUNT) -> list[dict[str, Any]]:
        r = self.call("/api/Order/search", {"accountId": account,
                                            "startTimestamp": "2000-01-01T00:00:00Z"})
        return r["orders"]

    def positions(self, account: int = ACCOUNT) -> list[dict[str, Any]]:
        return self.call("/api/Position/searchOpen", {"accountId": account})["positions"]

    def trades(self, account: int = ACCOUNT) -> list[dict[str, Any]]:
        return self.call("/api/Trade/search", {"accountId": account})["trades"]

    def balance(self, account: int = ACCOUNT) -> float:
        accs = self.call("/api/Account/search", {"onlyActiveAccounts": False})["accounts"]
        return next(a["balance"] for a in accs if a["id"] == account)
