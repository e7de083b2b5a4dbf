"""A backtest's history: 1m bars from the market database (read-only, store/queries.py).

Which contract a symbol means: the stored contract of that product (its TopstepX root in the
id: ES is `CON.F.US.EP.*`) with the most 1m bars in the range; one contract per symbol, no
stitching across a roll (the report names the contract used). A range with no data is an
error naming the range the database holds.
"""

from __future__ import annotations

import hashlib
import heapq
import sqlite3
import struct
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path

from chillly.calendar import CHICAGO
from chillly.clock import MINUTE_MS, ms_to_iso
from chillly.timeframes import tf_ms
from store import queries
from trading import products

Row = tuple[int, float, float, float, float, int]
_PACK = struct.Struct("<qddddq")


class DataError(Exception):
    """No usable history (one line, exit 2)."""


@dataclass
class History:
    contracts: dict[str, str]            # as asked (ES) -> contract id
    warmup: dict[str, list[Row]]         # contract id -> rows before the start
    bars: list[tuple[str, Row]]          # (contract id, row) from the start, time order
    start_ms: int
    end_ms: int
    digest: str                          # sha256 of every row used (warm-up included)

    @property
    def first(self) -> int | None:
        return self.bars[0][1][0] if self.bars else None

    @property
    def last(self) -> int | None:
        return self.bars[-1][1][0] if self.bars else None


def day_ms(text: str, end: bool = False) -> int:
    """A date (YYYY-MM-DD: that trading day's session open, 17:00 CT the evening before; with
    `end`, the next one's) or an ISO instant, as epoch ms. Raises ValueError."""
    text = text.strip()
    if len(text) == 10:
        d = date.fromisoformat(text)
        if end:
            d = date.fromordinal(d.toordinal() + 1)
        prev = date.fromordinal(d.toordinal() - 1)
        return int(datetime.combine(prev, time(17), tzinfo=CHICAGO).timestamp() * 1000)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def open_db(path: Path) -> sqlite3.Connection:
    missing = queries.missing_database(path)
    if missing:
        raise DataError(missing)
    return queries.open_reader(path)


def resolve(conn: sqlite3.Connection, wanted: str, start: int, end: int) -> str:
    """The contract id for `wanted` (an id, or a symbol) with the most 1m bars in range."""
    counts = queries.bar_counts(conn, "1m", start, end)
    if wanted.upper().startswith("CON."):
        if wanted not in counts:
            raise DataError(f"no 1m bars of {wanted} in {_span(start, end)}" + _held(conn, wanted))
        return wanted
    root = products.root_of(wanted.upper())
    mine = {c: n for c, n in counts.items() if products.contract_root(c) == root}
    if not mine:
        raise DataError(f"no 1m bars of {wanted} (root {root}) in {_span(start, end)}"
                        + _held(conn, root))
    return max(mine, key=lambda c: mine[c][0])


def _span(start: int, end: int) -> str:
    return f"{ms_to_iso(start)} .. {ms_to_iso(end)}"


def _held(conn: sqlite3.Connection, what: str) -> str:
    """What the database does hold of `what` (an id or a root), for the error line."""
    held = queries.bar_counts(conn, "1m", 0, 2**62)
    mine = {c: v for c, v in held.items() if c == what or products.contract_root(c) == what}
    if not mine:
        return "; the database holds none of it (chillly backfill / chillly import)"
    parts = [f"{c} {ms_to_iso(v[1])[:10]} .. {ms_to_iso(v[2])[:10]}" for c, v in
             sorted(mine.items())]
    return "; the database holds " + ", ".join(parts)


def load(db: Path, wanted: list[str], timeframes: list[str], warmup: int, start: int,
         end: int) -> History:
    """Bars of every wanted contract in [start, end), plus the warm-up before `start`: enough
    1m bars for `warmup` bars of the largest timeframe (at most a year of minutes)."""
    try:
        return _load(db, wanted, timeframes, warmup, start, end)
    except sqlite3.Error as exc:
        raise DataError(f"{db}: not a market database ({exc}); --data takes the database "
                        "that chillly import and the store write") from None


def _load(db: Path, wanted: list[str], timeframes: list[str], warmup: int, start: int,
          end: int) -> History:
    conn = open_db(db)
    try:
        ids = {w: resolve(conn, w, start, end) for w in wanted}
        span = max(tf_ms(tf) for tf in timeframes) // MINUTE_MS
        n_warm = min(warmup * span, 400_000)
        h = hashlib.sha256()
        warm: dict[str, list[Row]] = {}
        series: list[list[tuple[str, Row]]] = []
        for cid in ids.values():
            warm[cid] = queries.bar_rows_before(conn, cid, "1m", start, n_warm)
            rows = queries.bar_rows(conn, cid, "1m", start, end)
            for r in warm[cid]:
                h.update(_PACK.pack(*r))
            for r in rows:
                h.update(_PACK.pack(*r))
            series.append([(cid, r) for r in rows])
    finally:
        conn.close()
    bars = series[0] if len(series) == 1 else list(heapq.merge(*series, key=lambda x: x[1][0]))
    if not bars:
        raise DataError(f"no 1m bars in {_span(start, end)}")
    return History(ids, warm, bars, start, end, h.hexdigest())
