"""The sim's contract catalogue: real TopstepX ids, names and tick data, months from the sim date.

Ids follow the venue's grammar `CON.F.US.<root>.<month code><yy>` with TopstepX roots (ES is
`EP`, NQ is `ENQ`, CL is `CLE`, GC is `GCE`, 6E is `EU6`; projectx-api.md §8), names, tick sizes
and values from the product table (trading/products.py). The front month is computed from the sim clock's date, so an accelerated clock
rolls contracts like the real calendar does:

- quarterly roots (equity index, FX): H/M/U/Z, rolling 8 days before the third Friday of the
  contract month (the CME roll week);
- CL: monthly, the front is next month until the 20th, then the month after (CL expires around
  the 20th of the month before delivery);
- GC: the even months G/J/M/Q/V/Z, rolling on the 25th of the month before delivery.

`search()` (Contract/search) lists what the venue lists: each root's active month only, except
inside the roll window of a quarterly root (from its roll date to its expiry, the third Friday),
when the outgoing month is listed too with activeContract false. `all()` (Contract/available,
and what the market streams) adds each root's next month, inactive, so clients can see the
"ContractNotActive" path; `get()` also resolves any well-formed id of a known root within two
years, active or not, as the venue does for expired months.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from chillly.clock import Clock
from trading import products
from trading.products import Product

MONTH_CODES = "FGHJKMNQUVXZ"
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")
QUARTERLY = (3, 6, 9, 12)
EVEN = (2, 4, 6, 8, 10, 12)
MONTHLY = tuple(range(1, 13))

_ID_RE = re.compile(r"^CON\.F\.US\.([A-Z0-9]+)\.([FGHJKMNQUVXZ])(\d{2})$")


@dataclass(frozen=True)
class SimContract:
    """One listed contract, as the seam with the trading engine defines it."""

    id: str            # "CON.F.US.EP.Z26"
    name: str          # "ESZ6"
    description: str
    tick_size: float
    tick_value: float
    symbol_id: str     # "F.US.EP"
    active: bool       # front month
    symbol: str        # "ES" (our root name)

    def to_api(self) -> dict[str, object]:
        """The venue's `Contract` model (projectx-api.md §3)."""
        return {"id": self.id, "name": self.name, "description": self.description,
                "tickSize": self.tick_size, "tickValue": self.tick_value,
                "activeContract": self.active, "symbolId": self.symbol_id}


@dataclass(frozen=True)
class RootSpec:
    """What the price process and the catalogue need to know of one root: the product (names
    and ticks, from the one product table) and the sim's own price model."""

    product: Product
    months: tuple[int, ...]
    roll: str            # "quarterly" | "cl" | "gc"
    family: str          # price path shared by a full-size contract and its micro
    base_price: float    # level of the path around the epoch of the sim
    vol_per_min: float   # relative standard deviation of one minute's move
    prints_per_min: int  # typical number of trade prints per minute in the day session
    size_mean: float     # mean contracts per print

    @property
    def root(self) -> str:
        """TopstepX root, "EP"."""
        return self.product.root

    @property
    def symbol(self) -> str:
        """CME symbol, "ES"."""
        return self.product.symbol

    @property
    def title(self) -> str:
        return self.product.title

    @property
    def tick_size(self) -> float:
        return self.product.tick_size

    @property
    def tick_value(self) -> float:
        return self.product.tick_value


def _spec(symbol: str, *model: Any) -> RootSpec:
    return RootSpec(products.BY_SYMBOL[symbol], *model)


SPECS: dict[str, RootSpec] = {s.root: s for s in (
    _spec("ES", QUARTERLY, "quarterly", "ES", 6000.0, 1.4e-4, 150, 3.0),
    _spec("NQ", QUARTERLY, "quarterly", "NQ", 21000.0, 1.8e-4, 150, 2.0),
    _spec("MES", QUARTERLY, "quarterly", "ES", 6000.0, 1.4e-4, 120, 4.0),
    _spec("MNQ", QUARTERLY, "quarterly", "NQ", 21000.0, 1.8e-4, 150, 4.0),
    _spec("RTY", QUARTERLY, "quarterly", "RTY", 2300.0, 1.8e-4, 60, 2.0),
    _spec("YM", QUARTERLY, "quarterly", "YM", 44000.0, 1.3e-4, 60, 2.0),
    _spec("CL", MONTHLY, "cl", "CL", 70.0, 3.0e-4, 90, 2.0),
    _spec("GC", EVEN, "gc", "GC", 2650.0, 1.6e-4, 60, 2.0),
    _spec("6E", QUARTERLY, "quarterly", "6E", 1.08, 0.8e-4, 60, 3.0),
)}


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    offset = (4 - first.weekday()) % 7  # Friday is weekday 4
    return first + timedelta(days=offset + 14)


def _roll_date(spec: RootSpec, year: int, month: int) -> date:
    """The first date on which this contract month is no longer the front month."""
    if spec.roll == "quarterly":
        return third_friday(year, month) - timedelta(days=8)
    prev_y, prev_m = (year, month - 1) if month > 1 else (year - 1, 12)
    return date(prev_y, prev_m, 20 if spec.roll == "cl" else 25)


def expiry_date(spec: RootSpec, year: int, month: int) -> date:
    """The last trading date of a contract month (only quarterly roots have a window between
    the roll date and expiry here; the others expire as they roll)."""
    if spec.roll == "quarterly":
        return third_friday(year, month)
    return _roll_date(spec, year, month)


def _outgoing(spec: RootSpec, today: date) -> tuple[int, int] | None:
    """The month that has rolled but not expired yet as of `today` (the roll window)."""
    y, m = today.year, today.month
    for back in range(0, 3):
        yy, mm = (y, m - back) if m - back >= 1 else (y - 1, m - back + 12)
        if mm in spec.months and _roll_date(spec, yy, mm) <= today <= expiry_date(spec, yy, mm):
            return yy, mm
    return None


def _listed_months(spec: RootSpec, today: date, count: int) -> list[tuple[int, int]]:
    """The next `count` (year, month) pairs of this root still trading as of `today`."""
    out: list[tuple[int, int]] = []
    y, m = today.year, today.month
    while len(out) < count:
        if m in spec.months and today < _roll_date(spec, y, m):
            out.append((y, m))
        m += 1
        if m > 12:
            y, m = y + 1, 1
    return out


def contract_id(root: str, year: int, month: int) -> str:
    return f"CON.F.US.{root}.{MONTH_CODES[month - 1]}{year % 100:02d}"


def make_contract(spec: RootSpec, year: int, month: int, active: bool) -> SimContract:
    code = MONTH_CODES[month - 1]
    return SimContract(
        id=contract_id(spec.root, year, month), name=f"{spec.symbol}{code}{year % 10}",
        description=f"{spec.title}: {MONTH_NAMES[month - 1]} {year}",
        tick_size=spec.tick_size, tick_value=spec.tick_value, symbol_id=f"F.US.{spec.root}",
        active=active, symbol=spec.symbol)


def spec_of(contract: SimContract | str) -> RootSpec:
    """The root spec of a contract or contract id (KeyError when the root is unknown)."""
    cid = contract if isinstance(contract, str) else contract.id
    return SPECS[cid.split(".")[3]]


def parse_id(cid: str) -> tuple[str, int, int] | None:
    """(root, year, month) of a well-formed id, or None."""
    m = _ID_RE.match(cid)
    if not m:
        return None
    return m.group(1), 2000 + int(m.group(3)), MONTH_CODES.index(m.group(2)) + 1


class Catalogue:
    """The contracts the sim lists, following the sim clock's date."""

    def __init__(self, clock: Clock, roots: list[str] | None = None) -> None:
        unknown = [r for r in (roots or []) if r not in SPECS]
        if unknown:
            raise ValueError(f"unknown roots {unknown}; known: {sorted(SPECS)}")
        self.clock = clock
        self.roots = list(roots) if roots else list(SPECS)
        self._day: date | None = None
        self._list: list[SimContract] = []
        self._search: list[SimContract] = []
        self._by_id: dict[str, SimContract] = {}

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock.now_ms() / 1000, tz=timezone.utc).date()

    def _refresh(self) -> None:
        today = self.today()
        if today == self._day:
            return
        listed: list[SimContract] = []
        outgoing: list[SimContract] = []
        backs: list[SimContract] = []
        for root in self.roots:
            spec = SPECS[root]
            (fy, fm), (ny, nm) = _listed_months(spec, today, 2)
            listed.append(make_contract(spec, fy, fm, True))
            backs.append(make_contract(spec, ny, nm, False))
            old = _outgoing(spec, today)
            if old is not None:
                outgoing.append(make_contract(spec, old[0], old[1], False))
        self._search = listed + outgoing
        self._list = listed + outgoing + backs
        self._by_id = {c.id: c for c in self._list}
        self._day = today

    def all(self) -> list[SimContract]:
        """Front months of every root first, then outgoing months in their roll window, then
        the next months."""
        self._refresh()
        return list(self._list)

    def front(self) -> list[SimContract]:
        return [c for c in self.all() if c.active]

    def get(self, contract_id: str) -> SimContract | None:
        """Any well-formed id of a listed root within two years of the sim date, else None."""
        self._refresh()
        found = self._by_id.get(contract_id)
        if found is not None:
            return found
        parsed = parse_id(contract_id)
        if parsed is None:
            return None
        root, year, month = parsed
        spec = SPECS.get(root)
        if spec is None or root not in self.roots or month not in spec.months:
            return None
        if abs(year - self.today().year) > 2:
            return None
        return make_contract(spec, year, month, False)

    def search(self, text: str | None, limit: int = 20) -> list[SimContract]:
        """Case-insensitive substring match on name, symbol, root and description (max 20), over
        the active months and, inside their roll window, the outgoing ones."""
        self._refresh()
        needle = (text or "").strip().lower()
        out = []
        for c in self._search:
            hay = (c.name, c.symbol, c.symbol_id, c.description)
            if not needle or any(needle in h.lower() for h in hay):
                out.append(c)
        return out[:limit]
