"""Symbols ("ES", "MNQ", "6E") to the venue's current contract, and contract metadata.

Contract ids are never built by hand (projectx-api.md §8.1): a symbol is searched with
Contract/search (live=false for practice accounts, then the other flag, then Contract/available)
and matched by the venue root in `symbolId` (ES -> F.US.EP, NQ -> F.US.ENQ, ...; the product
table of trading/products.py) or by a
contract name of the form SYMBOL + month code + year ("ESZ6", "ESZ26"). The active contract
(the front month) wins. A full id ("CON.F.US.EP.Z26") is looked up with Contract/searchById.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from chillly.messages import ContractInfo
from topstepx.client import ProjectXClient
from topstepx.errors import ApiError
from topstepx.models import Contract
from trading import products
_ID_RE = re.compile(r"^CON\.[A-Z0-9]+(\.[A-Z0-9]+)+$")


class ContractNotFound(LookupError):
    pass


def is_contract_id(text: str) -> bool:
    return bool(_ID_RE.match(text))


def symbol_of(contract: Contract) -> str:
    """Our symbol for a venue contract: the CME ticker of its root when known
    (trading/products.py)."""
    root = (contract.symbol_id or contract.id).split(".")
    root_name = root[-1] if contract.symbol_id else (root[3] if len(root) > 3 else contract.id)
    found = products.by_root(root_name)
    return found.symbol if found is not None else root_name


def matches(symbol: str, contract: Contract) -> bool:
    sym = symbol.upper()
    root = products.root_of(sym)
    if contract.symbol_id and contract.symbol_id.upper() in (f"F.US.{root}", f"F.US.{sym}"):
        return True
    if contract.id.upper().startswith((f"CON.F.US.{root}.", f"CON.F.US.{sym}.")):
        return True
    return bool(re.fullmatch(re.escape(sym) + r"[FGHJKMNQUVXZ]\d{1,2}", contract.name.upper()))


def pick(symbol: str, contracts: list[Contract]) -> Contract | None:
    found = [c for c in contracts if matches(symbol, c)]
    active = [c for c in found if c.active_contract]
    return active[0] if active else None


def to_info(contract: Contract, symbol: str | None = None) -> ContractInfo:
    return ContractInfo(
        contract=contract.id, symbol=symbol or symbol_of(contract),
        symbol_id=contract.symbol_id or "", name=contract.name, description=contract.description,
        tick_size=float(contract.tick_size or 0.0), tick_value=float(contract.tick_value or 0.0),
        active=bool(contract.active_contract))


class ContractResolver:
    """Resolves and caches contracts through the venue client.

    Ids are cached for good. Symbols are resolved at the venue each time by default, so they
    follow the active contract across a roll; `symbol_ttl_s` > 0 keeps a symbol's answer that
    many real seconds (the order gateway: a search per order cost about 2 ms and one REST call
    of the budget each). Within the TTL after a roll an order may still go to the previous
    month, which is still a tradable contract."""

    def __init__(self, client: ProjectXClient, symbol_ttl_s: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.by_id: dict[str, Contract] = {}
        self.symbol_ttl_s = symbol_ttl_s
        self._monotonic = monotonic
        self._by_symbol: dict[str, tuple[float, Contract]] = {}

    async def resolve(self, text: str) -> Contract:
        """A symbol or an id -> the venue's Contract. ContractNotFound when there is none."""
        text = text.strip()
        if not text:
            raise ContractNotFound("empty contract")
        if is_contract_id(text):
            if text in self.by_id:
                return self.by_id[text]
            try:
                contract = await self.client.contract_by_id(text)
            except ApiError as exc:
                raise ContractNotFound(f"{text}: unknown contract ({exc})") from None
            self.by_id[contract.id] = contract
            return contract
        symbol = text.upper()
        if self.symbol_ttl_s > 0:
            cached = self._by_symbol.get(symbol)
            if cached is not None and self._monotonic() - cached[0] < self.symbol_ttl_s:
                return cached[1]
        live = self.client.live
        for attempt in (live, not live):
            found = pick(symbol, await self.client.search_contracts(symbol, live=attempt))
            if found is None:
                found = pick(symbol, await self.client.available_contracts(live=attempt))
            if found is not None:
                self.by_id[found.id] = found
                if self.symbol_ttl_s > 0:
                    self._by_symbol[symbol] = (self._monotonic(), found)
                return found
        raise ContractNotFound(f"{text}: no active contract at the venue")
