"""`--report DIR`: one backtest as files a browser opens offline.

- `index.html`: the summary and the verdict, then four charts drawn by plotly with its
  JavaScript inlined (no CDN at view time): equity against the MLL floor, drawdown, daily
  P&L, and the price (1m closes) with the entries and exits;
- `report.json`: the summary as `--json` prints it (data range and sha256, parameters, seed,
  code version, verdict), for tools and the trader's page;
- `trades.csv` (every fill) and `refusals.csv` (what the gate refused, with its rule).
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

from chillly.clock import ms_to_iso

from backtest.data import History
from backtest.run import Outcome
from backtest.summary import Summary, text

_PRICE_POINTS = 20_000     # closes drawn at most (a year of minutes is thinned evenly)


def write_report(directory: Path, s: Summary, out: Outcome, hist: History) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(s.to_json(), indent=2) + "\n")
    with (directory / "trades.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "contract", "client_id", "side", "size", "price", "kind", "cost",
                    "pnl"])
        for x in out.fills:
            w.writerow([ms_to_iso(x.t), x.contract, x.client_id, "buy" if x.side > 0 else "sell",
                        x.size, x.price, x.kind, x.cost, "" if x.pnl is None else x.pnl])
    with (directory / "refusals.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "client_id", "rule", "reason"])
        for r in out.refusals:
            w.writerow([ms_to_iso(r.t), r.client_id, r.rule, r.reason])
    (directory / "index.html").write_text(_page(s, out, hist))


def _iso(ms: int) -> str:
    return ms_to_iso(ms)[:19]


def _figure(s: Summary, out: Outcome, hist: History) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=4, cols=1, shared_xaxes=False, vertical_spacing=0.06,
                        subplot_titles=("Equity and the MLL floor", "Drawdown", "Daily P&L",
                                        "Price, entries and exits"))
    xs = [_iso(t) for t, _, _ in out.equity]
    eq = [e for _, e, _ in out.equity]
    fig.add_trace(go.Scatter(x=xs, y=eq, name="equity", line={"color": "#1f77b4"}), 1, 1)
    fig.add_trace(go.Scatter(x=xs, y=[f for _, _, f in out.equity], name="MLL floor",
                             line={"color": "#d62728", "dash": "dash"}), 1, 1)
    peak, dd = float("-inf"), []
    for e in eq:
        peak = max(peak, e)
        dd.append(round(e - peak, 2))
    fig.add_trace(go.Scatter(x=xs, y=dd, name="drawdown", fill="tozeroy",
                             line={"color": "#ff7f0e"}), 2, 1)
    fig.add_trace(go.Bar(x=[d.day for d in out.days], y=[d.pnl for d in out.days],
                         name="daily P&L",
                         marker_color=["#2ca02c" if d.pnl >= 0 else "#d62728"
                                       for d in out.days]), 3, 1)
    step = max(1, len(hist.bars) // _PRICE_POINTS)
    pts = hist.bars[::step]
    fig.add_trace(go.Scatter(x=[_iso(r[0]) for _, r in pts], y=[r[4] for _, r in pts],
                             name="close", line={"color": "#7f7f7f", "width": 1}), 4, 1)
    for side, name, color, symbol in ((1, "buys", "#2ca02c", "triangle-up"),
                                      (-1, "sells", "#d62728", "triangle-down")):
        fills = [f for f in out.fills if f.side == side]
        fig.add_trace(go.Scatter(x=[_iso(f.t) for f in fills], y=[f.price for f in fills],
                                 mode="markers", name=name,
                                 marker={"color": color, "symbol": symbol, "size": 7},
                                 text=[f"{f.client_id} {f.kind}" for f in fills]), 4, 1)
    fig.update_layout(height=1400, title=f"{s.strategy}: {s.verdict.line()}",
                      template="plotly_white", showlegend=True)
    return fig


def _page(s: Summary, out: Outcome, hist: History) -> str:
    chart = _figure(s, out, hist).to_html(include_plotlyjs=True, full_html=False)
    facts = [("strategy", f"{s.strategy} ({s.class_})"),
             ("contracts", ", ".join(f"{k}: {v}" for k, v in s.contracts.items())),
             ("data", f"{s.data_from} .. {s.data_to}, {s.data_bars} 1m bars, "
                      f"sha256 {s.data_sha256}"),
             ("parameters", json.dumps(s.params)), ("fills", s.fills_rule),
             ("seed", str(s.seed)), ("code", s.code_version)]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in facts)
    refusals = "".join(f"<tr><td>{_iso(r.t)}</td><td>{html.escape(r.client_id)}</td>"
                       f"<td>{html.escape(r.rule)}</td><td>{html.escape(r.reason)}</td></tr>"
                       for r in out.refusals[:200])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>backtest {html.escape(s.strategy)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}} th{{text-align:left;padding-right:1em}}
pre{{background:#f6f6f6;padding:1em}} table{{border-collapse:collapse}}</style></head>
<body><h1>Backtest: {html.escape(s.strategy)}</h1>
<pre>{html.escape(text(s))}</pre>
<table>{rows}</table>
{chart}
<h2>Refused by the gate ({len(out.refusals)})</h2>
<table><tr><th>time</th><th>order</th><th>rule</th><th>reason</th></tr>{refusals}</table>
<p>Files: <a href="trades.csv">trades.csv</a>, <a href="refusals.csv">refusals.csv</a>,
<a href="report.json">report.json</a></p>
</body></html>
"""
