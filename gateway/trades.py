"""`chillly trades` and `chillly report`: what each strategy did and earned, from the journal.

Both open the gateway's journal (GATEWAY_DATABASE_PATH) read-only, so they work with the system
running or stopped and never disturb the gateway; the round trips and figures are the trading
core's (trading/round_trips.py). `trades [--owner NAME] [--since DATE] [--json]` lists closed
round trips (entry, exit, size, P&L after fees and commissions, duration); `report [NAME]
[--days N] [--json]` sums them per owner: net P&L, win rate, profit factor, max drawdown and the
P&L per trading day. Dates are CME trading dates (a session opening 17:00 CT belongs to the
next day). `chillly status` asks `open_positions_note` when the gateway is not running.
Exit codes: 0 done, 2 bad usage or no journal.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from chillly.calendar import trading_date
from chillly.clock import clock_from_settings
from chillly.settings import load_settings
from gateway.journal import read_only
from gateway.settings import GatewaySettings
from trading.round_trips import Fill, RoundTrip, performance, round_trips
from trading.venue_codes import Side


def _fills(path: Path, account: int | None) -> list[Fill]:
    conn = read_only(path)
    try:
        rows = conn.execute(
            "SELECT account, owner, contract, side, size, price, fees, at_ms FROM fills "
            + ("WHERE account = ? " if account is not None else "")
            + "ORDER BY at_ms, trade_id", (account,) if account is not None else ()).fetchall()
    finally:
        conn.close()
    return [Fill(owner=r["owner"], contract=r["contract"], side=Side(r["side"]), size=r["size"],
                 price=r["price"], cost=r["fees"] or 0.0, at_ms=r["at_ms"], account=r["account"])
            for r in rows]


def _journal(settings: GatewaySettings, tool: str) -> tuple[list[RoundTrip], list[RoundTrip]]:
    """Closed and open round trips of the configured account (all accounts when none is set),
    or SystemExit(2) naming a journal that is not there."""
    path = settings.gateway_database_path
    if not path.is_file():
        print(f"chillly {tool}: no journal at {path} (GATEWAY_DATABASE_PATH): the gateway has "
              "not run on this venue yet", file=sys.stderr)
        raise SystemExit(2)
    try:
        return round_trips(_fills(path, settings.topstep_account_id))
    except sqlite3.Error as exc:
        print(f"chillly {tool}: cannot read {path}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def add_trades_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--owner", help="only this owner's (a strategy, manual, external)")
    p.add_argument("--since", type=_date, metavar="DATE",
                   help="only trips closed on this trading date (YYYY-MM-DD) or later")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document: {trips: [...], open: [...]}")


def trades_cli(args: argparse.Namespace) -> int:
    settings = load_settings(GatewaySettings)
    done, still_open = _journal(settings, "trades")
    trips = [t for t in done if (args.owner is None or t.owner == args.owner)
             and (args.since is None or t.day >= args.since)]
    opened = [t for t in still_open if args.owner is None or t.owner == args.owner]
    if args.json:
        print(json.dumps({"trips": [t.as_dict() for t in trips],
                          "open": [{**t.as_dict(), "open_size": t.open_size} for t in opened]}))
        return 0
    rows = [[t.owner, t.contract, "long" if t.direction is Side.BUY else "short", t.size,
             _when(t.entry_ms), f"{t.entry_price:.2f}", _when(t.exit_ms), f"{t.exit_price:.2f}",
             _duration(t.duration_s), f"{t.net:,.2f}", f"{t.costs:,.2f}"] for t in trips]
    header = ["OWNER", "CONTRACT", "SIDE", "SIZE", "ENTRY (UTC)", "ENTRY", "EXIT (UTC)", "EXIT",
              "HELD", "NET", "COSTS"]
    cells = [header] + rows
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    net = sum(t.net for t in trips)
    print(f"\n{len(trips)} round trip(s), net {net:,.2f} after fees and commissions "
          f"({sum(t.costs for t in trips):,.2f})")
    for t in opened:
        side = "long" if t.direction is Side.BUY else "short"
        print(f"open: {t.owner} {t.contract} {side} {t.open_size} since {_when(t.entry_ms)}")
    return 0


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="one owner (a strategy's name, manual, external)")
    p.add_argument("--days", type=int, default=30,
                   help="the last N trading dates, today's included (default 30)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document: {since, owners: [...]}")


def report_cli(args: argparse.Namespace) -> int:
    if args.days < 1:
        print("chillly report: --days must be at least 1", file=sys.stderr)
        return 2
    settings = load_settings(GatewaySettings)
    done, _ = _journal(settings, "report")
    since = trading_date(clock_from_settings(settings).now_ms()) - timedelta(days=args.days - 1)
    trips = [t for t in done if t.day >= since and (args.name is None or t.owner == args.name)]
    owners = sorted({t.owner for t in trips} | ({args.name} if args.name else set()))
    perf = [performance(o, [t for t in trips if t.owner == o]) for o in owners]
    if args.json:
        print(json.dumps({"since": since.isoformat(), "owners": [p.as_dict() for p in perf]}))
        return 0
    if not perf:
        print(f"no closed round trips since {since.isoformat()}")
    for p in perf:
        rate = "-" if p.win_rate is None else f"{p.win_rate:.0%}"
        factor = "-" if p.profit_factor is None else f"{p.profit_factor:.2f}"
        print(f"{p.owner}: net {p.net:,.2f} over {p.trips} round trip(s) since {since}  "
              f"(gross {p.gross:,.2f}, costs {p.costs:,.2f})\n"
              f"  win rate {rate}  profit factor {factor}  max drawdown {p.max_drawdown:,.2f}")
        for day, pnl in sorted(p.by_day.items()):
            print(f"  {day}  {pnl:>12,.2f}")
    return 0


def open_positions_note() -> str | None:
    """For `chillly status` when the gateway is not running: the net positions the journal's
    fills leave open at the venue (the last the system knew; every owner's fills together),
    which nothing guards while it is stopped."""
    settings = load_settings(GatewaySettings)
    path = settings.gateway_database_path
    if not path.is_file():
        return None
    try:
        fills = _fills(path, settings.topstep_account_id)
    except sqlite3.Error:
        return None
    net: dict[str, int] = {}
    for f in fills:
        net[f.contract] = net.get(f.contract, 0) + (f.size if f.side is Side.BUY else -f.size)
    held = ", ".join(f"{c} {n:+d}" for c, n in sorted(net.items()) if n)
    if not held:
        return None
    return (f"WARNING: the gateway is not running and its journal shows positions open: {held}. "
            "Nothing guards them (no risk gate, no brackets the gateway manages): start the "
            "system (scripts/run) or close them at the venue (docs/going-live.md)")
