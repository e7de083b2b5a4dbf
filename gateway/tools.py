"""The trader's tools: `chillly buy|sell|orders|positions|account|cancel|cancel-all|flatten`
and the hand on the risk gate, `chillly halt|resume|risk` (docs/gateway.md, docs/risk.md).

Each sends one command to the gateway over the trader's tools socket (chillly.oneshot.ask, owner
"manual") and prints a readable table, or the gateway's answer as JSON with `--json`. Exit codes: 0 done,
1 refused (a rejection, an unknown outcome, a gateway that is not ready or not running: the
reason is printed), 2 bad usage (argparse).

`halt` latches HALTED (the gate cancels and flattens); `resume` lifts the latch, refused unless
the account is flat; `risk` shows how far the account is from each limit, or sets the
high-water mark of an account whose history the venue cannot give (`--set-high-water X`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import Any

from chillly.oneshot import ask_sync
from trading.venue_codes import OrderType, PositionType, Side

SIDES = {Side.BUY: "buy", Side.SELL: "sell"}
POS_SIDES = {PositionType.FLAT: "flat", PositionType.LONG: "long", PositionType.SHORT: "short"}
TYPES = {OrderType.LIMIT: "limit", OrderType.MARKET: "market", OrderType.STOP_LIMIT: "stop_limit",
         OrderType.STOP: "stop", OrderType.TRAILING_STOP: "trailing",
         OrderType.JOIN_BID: "join_bid", OrderType.JOIN_ASK: "join_ask"}
_counter = itertools.count(1)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def _table(rows: list[list[Any]], header: list[str]) -> None:
    cells = [header] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _ask(name: str, args: dict[str, Any], as_json: bool) -> tuple[int, Any]:
    ok, result, error = ask_sync("gateway", name, args, tool=name, timeout=12.0)
    if not ok:
        if as_json:
            _print_json({"ok": False, "error": error})
        else:
            print(f"chillly {name}: {error}", file=sys.stderr)
        return 1, None
    return 0, result


def _money(x: Any) -> str:
    return "" if x is None else f"{x:,.2f}"


# --------------------------------------------------------------------------- buy / sell


def add_order_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("symbol", help="symbol (ES, MNQ) or contract id (CON.F.US.EP.Z26)")
    p.add_argument("qty", type=int, help="contracts (> 0)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--limit", type=float, metavar="P", help="limit price")
    kind.add_argument("--stop", type=float, metavar="P", help="stop price")
    p.add_argument("--sl", type=int, metavar="TICKS", help="stop-loss bracket, ticks away")
    p.add_argument("--tp", type=int, metavar="TICKS", help="take-profit bracket, ticks away")
    p.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")


def _order(args: argparse.Namespace, side: str) -> int:
    if args.qty <= 0:
        print(f"chillly {side}: QTY must be > 0", file=sys.stderr)
        return 2
    cmd: dict[str, Any] = {
        "client_id": f"manual-{int(time.time() * 1000)}-{next(_counter)}",
        "contract": args.symbol, "side": side, "size": args.qty,
        "type": "limit" if args.limit is not None else "stop" if args.stop is not None
        else "market"}
    if args.limit is not None:
        cmd["limit_price"] = args.limit
    if args.stop is not None:
        cmd["stop_price"] = args.stop
    if args.sl is not None:
        cmd["sl_ticks"] = args.sl
    if args.tp is not None:
        cmd["tp_ticks"] = args.tp
    rc, res = _ask("submit", cmd, args.json)
    if rc:
        return rc
    if args.json:
        _print_json(res)
    elif res["status"] == "accepted":
        print(f"accepted: order {res['order_id']} ({side} {args.qty} {args.symbol}, "
              f"client id {res['client_id']})")
    else:
        why = res.get("message", "")
        rule = f" [{res['rule']}]" if res.get("rule") else ""
        code = f" (errorCode {res['code']})" if res.get("code") is not None else ""
        print(f"{res['status']}{rule}: {why}{code}", file=sys.stderr)
    return 0 if res["status"] == "accepted" else 1


def buy_cli(args: argparse.Namespace) -> int:
    return _order(args, "buy")


def sell_cli(args: argparse.Namespace) -> int:
    return _order(args, "sell")


# --------------------------------------------------------------------------- queries


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")


def add_orders_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="include finished orders")
    p.add_argument("--owner", help="only this owner's (a strategy, manual, external)")
    add_json(p)


def orders_cli(args: argparse.Namespace) -> int:
    q: dict[str, Any] = {"open_only": not args.all}
    if args.owner:
        q["owner"] = args.owner
    rc, res = _ask("orders", q, args.json)
    if rc:
        return rc
    if args.json:
        _print_json(res)
        return 0
    rows = [[o["order_id"], o["owner"], o["contract"], SIDES.get(o["side"], o["side"]),
             o["size"], TYPES.get(o["order_type"], o["order_type"]), o["state"],
             o["fill_volume"], o.get("limit_price") or o.get("stop_price") or "",
             o.get("filled_price") or "", o.get("client_id") or ""] for o in res["orders"]]
    if not rows:
        print("no orders" if args.all else "no working orders")
        return 0
    header = ["ORDER", "OWNER", "CONTRACT", "SIDE", "SIZE", "TYPE", "STATE", "FILLED",
              "PRICE", "FILL PX", "CLIENT ID"]
    if any(o.get("reason") for o in res["orders"]):    # refused orders say why
        header.append("REASON")
        for row, o in zip(rows, res["orders"]):
            row.append(o.get("reason") or "")
    _table(rows, header)
    return 0


def add_positions_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--owner", help="one owner's share (a strategy name, manual)")
    add_json(p)


def positions_cli(args: argparse.Namespace) -> int:
    rc, res = _ask("positions", {"owner": args.owner} if args.owner else {}, args.json)
    if rc:
        return rc
    if args.json:
        _print_json(res)
        return 0
    rows = [[p["owner"], p["contract"], POS_SIDES.get(p["side"], p["side"]), p["size"],
             p.get("avg_price") or "", _money(p["realized_pnl"]), _money(p["open_pnl"])]
            for p in res["positions"]]
    if not rows:
        print("no positions")
        return 0
    _table(rows, ["OWNER", "CONTRACT", "SIDE", "SIZE", "AVG", "REALIZED", "OPEN P&L"])
    return 0


def account_cli(args: argparse.Namespace) -> int:
    rc, res = _ask("account", {}, args.json)
    if rc:
        return rc
    if args.json:
        _print_json(res)
        return 0
    _table([[res["account_id"], res["name"], _money(res["balance"]), _money(res.get("equity")),
             _money(res["realized_pnl"]), _money(res["open_pnl"]),
             "yes" if res["can_trade"] else "no", res.get("trading_state", ""),
             "yes" if res.get("ready") else "no"]],
           ["ACCOUNT", "NAME", "BALANCE", "EQUITY", "REALIZED", "OPEN P&L", "CAN TRADE",
            "STATE", "READY"])
    return 0


# --------------------------------------------------------------------------- cancel / flatten


def add_cancel_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("order", help="venue order id, or a client id")
    add_json(p)


def _done(res: dict[str, Any], as_json: bool, ok_statuses: tuple[str, ...]) -> int:
    if as_json:
        _print_json(res)
    else:
        print(res.get("message", res["status"]),
              file=sys.stdout if res["status"] in ok_statuses else sys.stderr)
    return 0 if res["status"] in ok_statuses else 1


def cancel_cli(args: argparse.Namespace) -> int:
    key: dict[str, Any] = ({"order_id": int(args.order)} if args.order.isdigit()
                           else {"client_id": args.order})
    rc, res = _ask("cancel", key, args.json)
    return rc or _done(res, args.json, ("cancelled",))


def add_cancel_all_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--contract", help="only this symbol or contract id")
    p.add_argument("--owner", help="only this owner's orders")
    add_json(p)


def cancel_all_cli(args: argparse.Namespace) -> int:
    q = {k: v for k, v in (("contract", args.contract), ("owner", args.owner)) if v}
    rc, res = _ask("cancel_all", q, args.json)
    return rc or _done(res, args.json, ("done",))


def add_flatten_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("symbol", nargs="?", help="symbol or contract id to flatten")
    p.add_argument("--all", action="store_true", help="flatten every position")
    add_json(p)


def flatten_cli(args: argparse.Namespace) -> int:
    if bool(args.symbol) == bool(args.all):
        print("chillly flatten: give a SYMBOL or --all (not both)", file=sys.stderr)
        return 2
    rc, res = _ask("flatten", {"all": True} if args.all else {"contract": args.symbol},
                   args.json)
    return rc or _done(res, args.json, ("done",))


# --------------------------------------------------------------------------- the risk gate


def add_reason_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reason", nargs="*", help="why (shown in `chillly risk` and the risk event)")
    p.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")


def halt_cli(args: argparse.Namespace) -> int:
    return _state("halt", args)


def resume_cli(args: argparse.Namespace) -> int:
    return _state("resume", args)


def _state(name: str, args: argparse.Namespace) -> int:
    reason = " ".join(args.reason) or None
    rc, result = _ask(name, {"reason": reason} if reason else {}, args.json)
    if rc == 0:
        print(json.dumps(result) if args.json else f"{result['state']}: {result['reason']}")
    return rc


def add_risk_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the risk view as JSON")
    p.add_argument("--set-high-water", type=float, metavar="X", dest="set_high_water",
                   help="set the highest EOD balance (an account whose history is unknown)")


def risk_cli(args: argparse.Namespace) -> int:
    req = {} if args.set_high_water is None else {"set_high_water": args.set_high_water}
    rc, r = _ask("risk", req, args.json)
    if rc != 0:
        return rc
    if args.json:
        print(json.dumps(r, indent=2, sort_keys=True))
        return 0
    print(render(r))
    return 0


def _m(x: Any) -> str:
    return "-" if x is None else f"{x:,.2f}"


def render(r: dict[str, Any]) -> str:
    """The risk view at a glance: one line per limit with the distance to it."""
    nd = r["next_deadline"]
    dll = r["daily_loss_limit"]
    lines = [
        f"{r['program']} {r['size']}  account {r['account']}  trading date {r['trading_date']}",
        f"state      {r['state']}" + (f"  ({r['reason']})" if r["reason"] else ""),
        f"equity     {_m(r['equity'])}   balance {_m(r['balance'])}",
        f"floor      {_m(r['floor'])}   distance {_m(r['distance_to_floor'])}  "
        f"(buffer {_m(r['buffer'])}, high water {_m(r['high_water'])})",
        f"day P&L    {_m(r['day_pnl'])}" + (f"   daily loss limit -{_m(dll)}, left "
                                            f"{_m(dll + r['day_pnl'])}" if dll else ""),
        f"lots       {r['lots_used']:g} used of {r['lots_allowed']:g} "
        f"(micros x{r['micro_weight']:g})   contracts today {r['contracts_today']} of "
        f"{r['daily_contracts']}",
        f"next       {nd['name']} at {nd['ct']} CT (in {_span(nd['in_s'])})",
    ]
    if r.get("can_cancel") is False:
        lines.append("CANCELS    not possible on this account (a live or follower account): "
                     "only market entries and venue OCO brackets; flatten fires the brackets")
    if r.get("blind"):
        lines.append(f"BLIND      no price for {', '.join(r['blind'])}: equity unknown, "
                     "entries refused")
    for name, s in sorted(r.get("strategies", {}).items()):
        lines.append(f"strategy   {name}: day P&L {_m(s['day_pnl'])}, lots {s['lots_used']:g}"
                     + (f", HALTED ({s['halted']})" if s.get("halted") else ""))
    c = r.get("consistency") or {}
    if c.get("best_day_share") is not None:
        lines.append(f"consistency best day {_m(c['best_day'])} = "
                     f"{100 * c['best_day_share']:.0f}% of {_m(c['total_profit'])} profit")
    return "\n".join(lines)


def _span(seconds: float) -> str:
    s = int(max(0, seconds))
    h, rem = divmod(s, 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"
