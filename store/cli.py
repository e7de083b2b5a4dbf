"""`chillly bars`: the last bars of a contract. (The store's two processes start from `cli` in
store/process.py and in store/series.py.)

`chillly bars CONTRACT --tf 5m --last 20` asks the series process (it includes the bar still
forming) and falls back to reading the database read-only when the series process (or the
broker) does not answer, so the tool works whenever there is data at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from datetime import datetime, timezone
from typing import Any

from chillly.settings import Settings, load_settings
from chillly.timeframes import TimeframeSettings, tf_arg


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("contract", help="contract id (CON.F.US.EP.Z26) or symbol (ES)")
    p.add_argument("--tf", default="1m", type=tf_arg,
                   help="timeframe: 1m, 5m, 15m, 30m, 1h, 4h, 1d ...")
    p.add_argument("--last", type=int, default=20, help="how many bars (newest last)")
    p.add_argument("--db", action="store_true", help="read the database, skip the series process")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the series")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document: {contract, tf, source, bars: [...]}")


async def _from_series(settings: Settings, args: argparse.Namespace) -> dict[str, Any] | None:
    from chillly.bus import Bus, BusNotReady, RequestTimeout

    bus = Bus.from_settings(settings, "bars-cli")   # CURVE keys and all, like every tool
    try:
        await bus.ready(timeout=args.timeout)
        reply = await bus.request("series", "window",
                                  {"contract": args.contract, "tf": args.tf, "last": args.last},
                                  timeout=args.timeout, attempts=1)
    except (BusNotReady, RequestTimeout):
        return None
    finally:
        await bus.close()
    if not reply.ok:
        raise LookupError(reply.error or "series refused the request")
    return reply.result  # type: ignore[no-any-return]


def _from_db(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from store import queries
    from store.queries import open_reader

    try:
        conn = open_reader(settings.database_path)
    except sqlite3.OperationalError as exc:
        raise LookupError(f"cannot open {settings.database_path}: {exc}") from None
    problem = queries.venue_problem(conn, settings.venue, settings.database_path)
    if problem:   # never show another venue's bars as this one's
        conn.close()
        print(f"chillly bars: {problem}", file=sys.stderr)
        raise SystemExit(2)
    try:
        contract = queries.resolve_contract(conn, args.contract, queries.known_contracts(conn))
        if contract is None:
            raise LookupError(f"unknown contract {args.contract!r}")
        bars = queries.last_bars(conn, contract, args.tf, args.last)
    finally:
        conn.close()
    return {"contract": contract, "tf": args.tf,
            "bars": [[b.t, b.o, b.h, b.l, b.c, b.volume, b.final] for b in bars]}


def _decimals(rows: list[list[Any]]) -> int:
    """Decimals enough for every price shown (ES 0.25 -> 2, 6E 0.00005 -> 5), at least 2."""
    most = 2
    for r in rows:
        for x in r[1:5]:
            text = f"{x:.8f}".rstrip("0")
            most = max(most, len(text.split(".")[1]) if "." in text else 0)
    return min(most, 8)


def format_table(result: dict[str, Any], source: str) -> str:
    rows = result.get("bars", [])
    d = _decimals(rows)
    w = max(11, 7 + d)
    lines = [f"{result['contract']} {result['tf']}  ({len(rows)} bars from the {source})",
             f"{'open time (UTC)':<17} {'open':>{w}} {'high':>{w}} {'low':>{w}} {'close':>{w}} "
             f"{'volume':>9}  state"]
    for t, o, h, low, c, v, final in rows:
        when = datetime.fromtimestamp(t / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        prices = " ".join(f"{x:>{w}.{d}f}" for x in (o, h, low, c))
        lines.append(f"{when:<17} {prices} {v:>9d}  {'final' if final else 'partial'}")
    return "\n".join(lines)


def as_json(result: dict[str, Any], source: str) -> str:
    """The whole answer as one JSON document, each bar an object with named fields."""
    keys = ("t", "o", "h", "l", "c", "v", "final")
    return json.dumps({"contract": result["contract"], "tf": result["tf"], "source": source,
                       "bars": [dict(zip(keys, row)) for row in result.get("bars", [])]})


def bars_cli(args: argparse.Namespace) -> int:
    settings = load_settings(TimeframeSettings)
    if args.last < 1:
        print("chillly bars: --last must be at least 1", file=sys.stderr)
        return 2
    if args.tf not in settings.bar_timeframes:   # 7m parses, but no process builds it
        print(f"chillly bars: no process builds {args.tf} bars; the timeframes are "
              f"{', '.join(settings.bar_timeframes)} (AGGREGATOR_TIMEFRAMES)", file=sys.stderr)
        return 2
    from store import queries
    missing = queries.missing_database(settings.database_path)
    if missing:   # not "unknown contract": say which path was looked at
        print(f"chillly bars: {missing}", file=sys.stderr)
        return 2
    try:
        result = None if args.db else asyncio.run(_from_series(settings, args))
        source = "series process"
        if result is None:
            result, source = _from_db(settings, args), "database"
    except LookupError as exc:
        print(f"chillly bars: {exc}", file=sys.stderr)
        return 1
    print(as_json(result, source) if args.json else format_table(result, source))
    note = settings.closed_note()
    if note:   # why the newest bar is hours old
        print(f"chillly bars: {note}", file=sys.stderr)
    return 0
