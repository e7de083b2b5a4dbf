"""Reading 1m bar files for `chillly import`: a plain CSV and Databento's OHLCV-1m (DBN or CSV).

Parsing only: every row becomes `[t, o, h, l, c, volume]` (the `BarBatch` row) or a rejection
with its line and reason, judged by the kernel's own bar check (`chillly.timeframes.row_problem`,
the check the store applies to every bar it receives). Nothing here touches the database.

Formats (docs/backtest.md):
- `csv`: a header naming `time,open,high,low,close,volume` (any order, other columns ignored);
  `time` is the bar's open, ISO 8601 (no offset = UTC) or epoch milliseconds.
- `databento`: a DBN file (`.dbn`, or zstd-compressed `.dbn.zst`) of schema `ohlcv-1m`, read
  with Databento's own decoder (`databento-dbn`, the optional extra `databento`), or the CSV
  Databento writes (`ts_event,rtype,publisher_id,instrument_id,open,high,low,close,volume`,
  prices as decimals or as its 1e-9 fixed point, `ts_event` in ns or ISO). A file covering
  several instruments (a parent or continuous symbol spans the roll) keeps, for each trading
  day, the instrument that traded the most that day: one series, the front month by volume.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chillly.calendar import trading_date
from chillly.timeframes import row_problem

FORMATS = ("csv", "databento")
CSV_COLUMNS = ("time", "open", "high", "low", "close", "volume")
DATABENTO_COLUMNS = ("ts_event", "open", "high", "low", "close", "volume")
_DBN_MAGIC = b"DBN"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_FIXED = 1e-9            # Databento's fixed-point price unit
_OHLCV_1M_RTYPE = 33
SHOWN = 5                # rejected rows named in the summary


class FormatError(Exception):
    """The file is not in the format asked for (or any we read): one line, exit 2."""


@dataclass
class Parsed:
    """What a file holds: good rows sorted by time, and what was rejected."""

    rows: list[list[Any]] = field(default_factory=list)
    rejected: int = 0
    examples: list[str] = field(default_factory=list)
    source_rows: int = 0
    dropped_instruments: int = 0      # databento: rows of a non-front instrument that day

    def reject(self, where: str, why: str) -> None:
        self.rejected += 1
        if len(self.examples) < SHOWN:
            self.examples.append(f"{where}: {why}")


def detect(path: Path) -> str:
    """The format of a file from its first bytes (DBN or zstd: databento; else by header)."""
    with path.open("rb") as f:
        head = f.read(4096)
    if head.startswith(_DBN_MAGIC) or head.startswith(_ZSTD_MAGIC):
        return "databento"
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lower()
    cols = {c.strip() for c in first.split(",")}
    if "ts_event" in cols:
        return "databento"
    if set(CSV_COLUMNS) <= cols:
        return "csv"
    raise FormatError(f"{path}: not a bar file we read: expected a CSV with header "
                      f"{','.join(CSV_COLUMNS)}, a Databento CSV or a DBN file")


def parse(path: Path, fmt: str | None, now_ms: int, future_ms: int) -> Parsed:
    """Every row of `path`, checked. Raises FormatError when the file is not `fmt`."""
    fmt = fmt or detect(path)
    if fmt == "csv":
        return _plain_csv(path, now_ms, future_ms)
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(_DBN_MAGIC) or head.startswith(_ZSTD_MAGIC):
        return _front_by_day(_dbn(path), now_ms, future_ms)
    return _front_by_day(_databento_csv(path), now_ms, future_ms)


def _time_ms(text: str) -> int:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))


def _header(reader: Any, path: Path, need: tuple[str, ...], what: str) -> dict[str, int]:
    try:
        header = next(reader)
    except StopIteration:
        raise FormatError(f"{path}: empty file") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: not a {what} file: {exc}") from None
    index = {name.strip().lower(): i for i, name in enumerate(header)}
    missing = [c for c in need if c not in index]
    if missing:
        raise FormatError(f"{path}: not a {what} file: the header lacks "
                          f"{','.join(missing)} (expected {','.join(need)})")
    return index


def _read_text(path: Path) -> io.StringIO:
    try:
        return io.StringIO(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a text (CSV) file") from None


def _plain_csv(path: Path, now_ms: int, future_ms: int) -> Parsed:
    reader = csv.reader(_read_text(path))
    index = _header(reader, path, CSV_COLUMNS, "bar CSV")
    cols = [index[c] for c in CSV_COLUMNS]
    out = Parsed()
    seen: set[int] = set()
    try:
        for line, rec in enumerate(reader, start=2):
            if not rec or not any(x.strip() for x in rec):
                continue
            out.source_rows += 1
            _take(out, seen, f"line {line}", rec, cols, _time_ms, now_ms, future_ms)
    except csv.Error as exc:
        raise FormatError(f"{path}: not a valid CSV: {exc}") from None
    out.rows.sort(key=lambda r: r[0])
    return out


def _take(out: Parsed, seen: set[int], where: str, rec: list[str], cols: list[int],
          to_ms: Any, now_ms: int, future_ms: int) -> None:
    try:
        vol_text = rec[cols[5]].strip()
        volume = int(float(vol_text)) if vol_text else 0
        row = [to_ms(rec[cols[0]]), float(rec[cols[1]]), float(rec[cols[2]]),
               float(rec[cols[3]]), float(rec[cols[4]]), volume]
    except (ValueError, IndexError, OverflowError) as exc:
        out.reject(where, f"unreadable ({exc})")
        return
    problem = row_problem(row, now_ms, future_ms)
    if problem:
        out.reject(where, problem)
    elif row[0] in seen:
        out.reject(where, "a second row for the same minute")
    else:
        seen.add(row[0])
        out.rows.append(row)


# ---------------------------------------------------------------- Databento


@dataclass
class _Record:
    where: str
    instrument: int
    values: list[Any] | None     # [t, o, h, l, c, volume], or None with `why`
    why: str = ""


def _dbn(path: Path) -> list[_Record]:
    try:
        import databento_dbn
    except ImportError:
        raise FormatError(f"{path}: reading DBN needs the optional extra: pip install "
                          "'chillly[databento]' (or give Databento's CSV export)") from None
    dec = databento_dbn.DBNDecoder()
    try:
        dec.write(path.read_bytes())
        records: list[Any] = dec.decode()
    except Exception as exc:      # the decoder raises its own DBNError / ValueError
        raise FormatError(f"{path}: not a readable DBN file: {exc}") from None
    meta, body = (records[0], records[1:]) if records else (None, [])
    schema = str(getattr(meta, "schema", "") or "")
    if meta is not None and schema and "ohlcv-1m" not in schema.lower() \
            and "ohlcv1m" not in schema.lower():
        raise FormatError(f"{path}: DBN schema {schema}, expected ohlcv-1m")
    out = []
    for i, rec in enumerate(body, start=1):
        if getattr(rec, "rtype", None) is None or not hasattr(rec, "open"):
            continue     # symbol mappings, system messages: not bars
        rtype = rec.rtype
        if int(getattr(rtype, "value", rtype)) != _OHLCV_1M_RTYPE:
            raise FormatError(f"{path}: record {i} is {rtype}, expected ohlcv-1m bars")
        values = [rec.ts_event // 1_000_000, rec.open * _FIXED, rec.high * _FIXED,
                  rec.low * _FIXED, rec.close * _FIXED, int(rec.volume)]
        out.append(_Record(f"record {i}", int(rec.instrument_id), values))
    return out


def _fixed_or_decimal(text: str) -> float:
    text = text.strip()
    if "." in text or "e" in text.lower():
        return float(text)
    n = int(text)
    return n * _FIXED if abs(n) >= 10**8 else float(n)   # 1e-9 fixed point, or a whole price


def _ns_or_iso_ms(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text) // 1_000_000
    return _time_ms(text)


def _databento_csv(path: Path) -> list[_Record]:
    reader = csv.reader(_read_text(path))
    index = _header(reader, path, DATABENTO_COLUMNS, "Databento OHLCV CSV")
    inst = index.get("instrument_id")
    rtype = index.get("rtype")
    out = []
    try:
        for line, rec in enumerate(reader, start=2):
            if not rec or not any(x.strip() for x in rec):
                continue
            where = f"line {line}"
            try:
                if rtype is not None and rec[rtype].strip() not in ("33", "ohlcv-1m"):
                    raise FormatError(f"{path}: {where} has rtype {rec[rtype]!r}, "
                                      "expected 33 (ohlcv-1m)")
                instrument = int(rec[inst]) if inst is not None else 0
                values = [_ns_or_iso_ms(rec[index["ts_event"]])] + [
                    _fixed_or_decimal(rec[index[c]]) for c in ("open", "high", "low", "close")
                ] + [int(rec[index["volume"]])]
                out.append(_Record(where, instrument, values))
            except (ValueError, IndexError, OverflowError) as exc:
                out.append(_Record(where, -1, None, f"unreadable ({exc})"))
    except csv.Error as exc:
        raise FormatError(f"{path}: not a valid CSV: {exc}") from None
    return out


def _front_by_day(records: list[_Record], now_ms: int, future_ms: int) -> Parsed:
    """Check every record; where a day holds several instruments, keep its busiest one."""
    out = Parsed(source_rows=len(records))
    volume: dict[Any, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    good: list[_Record] = []
    for r in records:
        if r.values is None:
            out.reject(r.where, r.why)
            continue
        problem = row_problem(r.values, now_ms, future_ms)
        if problem:
            out.reject(r.where, problem)
            continue
        good.append(r)
        assert r.values is not None
        volume[trading_date(r.values[0])][r.instrument] += r.values[5]
    front = {day: max(v.items(), key=lambda kv: (kv[1], -kv[0]))[0] for day, v in volume.items()}
    seen: set[int] = set()
    for r in good:
        assert r.values is not None
        if front[trading_date(r.values[0])] != r.instrument:
            out.dropped_instruments += 1
            continue
        if r.values[0] in seen:
            out.reject(r.where, "a second row for the same minute")
            continue
        seen.add(r.values[0])
        out.rows.append(r.values)
    out.rows.sort(key=lambda row: row[0])
    return out
