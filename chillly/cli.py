"""`chillly`: one console command, a subcommand per process and per tool.

Each subcommand lives in the package that owns it and is imported only when chosen, so
`chillly tap` does not pay for the sim's imports. A module that adds a subcommand registers it
in COMMANDS as "module:function"; the function gets the argparse namespace and returns the exit
code. Options given on the command line override the environment (same names, lower case).

One convention for a process's entry point: `cli(args: argparse.Namespace) -> int` in the
module that defines its Service (`run_service(TheService)`), registered here as
"package.module:cli"; `chillly NAME` is how supervisord, scripts and tests start it. A tool's
entry is `<tool>_cli` beside what it asks. A package runnable as `python -m PACKAGE` (the broker;
the strategy host, which its launcher execs into a sandbox) has a `__main__.py` that calls that
same entry under `if __name__ == "__main__":`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

from chillly.errors import StartupError

# name -> (help, "module:add_arguments" or None, "module:run")
COMMANDS: dict[str, tuple[str, str | None, str]] = {
    "broker": ("run the bus relay (XSUB/XPUB)", None, "broker.relay:cli"),
    "tap": ("print bus messages matching topic prefixes", "broker.tap:add_arguments",
            "broker.tap:cli"),
    "keys": ("print a fresh set of bus CURVE keys for .env", None, "chillly.security:keys_cli"),
    "status": ("is everything well? state, heartbeat age, alarms, counters; exit 1 if not",
               "chillly.status:add_arguments", "chillly.status:cli"),
    "metrics": ("serve heartbeats and alarms to Prometheus on 127.0.0.1:METRICS_PORT", None,
                "chillly.metrics:cli"),
    "sim": ("run the local TopstepX-compatible venue", "sim.server:add_arguments",
            "sim.server:cli"),
    "aggregator": ("build 5m..1d bars from final 1m bars", None,
                   "feeds.aggregator_process:cli"),
    "store": ("write bars, contracts and ticks to the market database", None,
              "store.process:cli"),
    "series": ("serve the last N bars per contract and timeframe", None, "store.series:cli"),
    "bars": ("print the last bars of a contract", "store.cli:add_arguments", "store.cli:bars_cli"),
    "feed-bars": ("run the 1m bar poller, clock ticks and backfill service", None,
                  "feeds.bars:cli"),
    "feed-market": ("run the market hub feed (quotes, trades, depth)", None, "feeds.market:cli"),
    "subscriptions": ("print the subscribed contracts (`subscriptions serve` runs the process)",
                      "feeds.subscriptions:add_list_arguments", "feeds.subscriptions:cli_list"),
    "subscribe": ("subscribe a contract (symbol or id)", "feeds.subscriptions:add_contract_argument",
                  "feeds.subscriptions:cli_subscribe"),
    "unsubscribe": ("unsubscribe a contract (--force: even one a strategy trades)",
                    "feeds.subscriptions:add_unsubscribe_arguments",
                    "feeds.subscriptions:cli_unsubscribe"),
    "strategy-host": ("run one strategy instance of strategies.toml in its sandboxed host",
                      "strategy_host.launcher:add_arguments", "strategy_host.launcher:cli"),
    "strategies": ("list strategy instances (state, lag, position, day P&L); `sync` writes "
                   "their supervisord programs", "strategy_host.programs:add_arguments",
                   "strategy_host.programs:cli"),
    "backfill": ("fetch history from the venue onto the bus (hist.<tf>.<contract>.)",
                 "feeds.bars:add_backfill_arguments", "feeds.bars:cli_backfill"),
    "import": ("load 1m bars from a CSV or Databento OHLCV-1m file into the market database",
               "store.importer:add_arguments", "store.importer:cli"),
    "backtest": ("run a strategy over stored 1m bars through the risk gate, judged by Topstep's "
                 "rules (docs/backtest.md)", "backtest.cli:add_arguments", "backtest.cli:cli"),
    # the order gateway and the trading tools (docs/gateway.md)
    "gateway": ("run the order gateway (one account)", None, "gateway.process:cli"),
    "buy": ("buy SYMBOL QTY [--limit P | --stop P] [--sl TICKS] [--tp TICKS]",
            "gateway.tools:add_order_arguments", "gateway.tools:buy_cli"),
    "sell": ("sell SYMBOL QTY [--limit P | --stop P] [--sl TICKS] [--tp TICKS]",
             "gateway.tools:add_order_arguments", "gateway.tools:sell_cli"),
    "orders": ("show working orders (--all: finished too)", "gateway.tools:add_orders_arguments",
               "gateway.tools:orders_cli"),
    "positions": ("show positions and P&L", "gateway.tools:add_positions_arguments",
                  "gateway.tools:positions_cli"),
    "account": ("show balance, equity and day P&L", "gateway.tools:add_json",
                "gateway.tools:account_cli"),
    "cancel": ("cancel one order (venue id or client id)", "gateway.tools:add_cancel_arguments",
               "gateway.tools:cancel_cli"),
    "cancel-all": ("cancel every working order", "gateway.tools:add_cancel_all_arguments",
                   "gateway.tools:cancel_all_cli"),
    "flatten": ("cancel orders and close positions: flatten SYMBOL | --all",
                "gateway.tools:add_flatten_arguments", "gateway.tools:flatten_cli"),
    # what each strategy did and earned, from the journal (gateway/trades.py)
    "trades": ("round trips from the journal: entry, exit, size, P&L after costs, duration",
               "gateway.trades:add_trades_arguments", "gateway.trades:trades_cli"),
    "report": ("per-strategy net P&L, win rate, profit factor, max drawdown, P&L per day",
               "gateway.trades:add_report_arguments", "gateway.trades:report_cli"),
    # the risk gate (docs/risk.md)
    "halt": ("halt trading: cancel, flatten, HALTED until resume", "gateway.tools:"
             "add_reason_arguments", "gateway.tools:halt_cli"),
    "resume": ("lift a manual halt (only when flat)", "gateway.tools:add_reason_arguments",
               "gateway.tools:resume_cli"),
    "risk": ("show floor, equity, limits, trading state, next deadline",
             "gateway.tools:add_risk_arguments", "gateway.tools:risk_cli"),
    # the trader's page (docs/web.md)
    "web": ("serve the trader's page on http://WEB_HOST:WEB_PORT/ (127.0.0.1:7130)", None,
            "web.process:cli"),
}


def _load(ref: str) -> Callable[..., Any]:
    module, func = ref.split(":")
    return getattr(importlib.import_module(module), func)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the selected command's module is imported for its options."""
    parser = argparse.ArgumentParser(prog="chillly", description="CHILLLY trading backend")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if add_args and name == selected:
            _load(add_args)(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_load(COMMANDS[args.command][2])(args) or 0)
    except StartupError as exc:
        # An operator mistake (a remote bus without CURVE keys, ...): one line, exit 2, for
        # every tool alike, never a traceback.
        print(f"chillly {args.command}: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
