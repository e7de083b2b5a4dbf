"""`chillly halt | resume | risk`: the trader's hand on the risk gate (docs/risk.md).

Each sends one command to the gateway (chillly.oneshot.ask). `halt` latches HALTED (the gate
cancels and flattens); `resume` lifts the latch, refused unless the account is flat; `risk`
shows how far the account is from each limit, or sets the high-water mark of an account whose
history the venue cannot give (`--set-high-water X`). Exit codes: 0 done, 1 refused or no
gateway, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from chillly.oneshot import ask_sync


def _ask(name: str, args: dict[str, Any], as_json: bool) -> tuple[int, Any]:
    ok, result, error = ask_sync("gateway", name, args, tool=name, timeout=12.0)
    if not ok:
        if as_json:
            print(json.dumps({"ok": False, "error": error}))
        else:
            print(f"chillly {name}: {error}", file=sys.stderr)
        return 1, None
    return 0, result


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
