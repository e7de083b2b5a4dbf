"""`chillly backtest` as a trader runs it: bars imported into a real database, the shipped
`ema_es` instance of strategies.toml, the summary, --json, --report DIR, a sweep whose rows
re-run alone to the same figures, and bad input as one line and exit 2."""

from __future__ import annotations

import json
import random
import re
import shlex
from pathlib import Path

import pytest

from chillly.calendar import is_market_open

T0 = 1_767_621_600_000 - 14 * 3_600_000     # 2026-01-05 00:00 UTC


@pytest.fixture
def es_db(procs, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Six trading days of ES 1m bars (a seeded walk), imported with `chillly import`."""
    rng = random.Random(11)
    lines = ["time,open,high,low,close,volume"]
    t, price, n = T0, 6000.0, 0
    while n < 7000:
        t += 60_000
        if not is_market_open(t):
            continue
        pts = [price] + [0.0] * 4
        for i in range(1, 5):
            pts[i] = pts[i - 1] + rng.choice((-0.5, -0.25, 0.0, 0.25, 0.5))
        lines.append(f"{t},{price},{max(pts)},{min(pts)},{pts[-1]},{rng.randint(1, 900)}")
        price, n = pts[-1], n + 1
    f = tmp_path / "es.csv"
    f.write_text("\n".join(lines) + "\n")
    p = procs.chillly("import", str(f), "--symbol", "ES", name="import")
    assert p.wait(60) == 0, p.log()
    return Path(procs.env["DATABASE_PATH"])


def _backtest(procs, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    p = procs.chillly("backtest", *args, name="backtest")
    return p.wait(300), p.log()


def test_a_backtest_of_the_shipped_instance_with_its_report(procs, es_db, tmp_path) -> None:
    report = tmp_path / "rep"
    rc, out = _backtest(procs, "ema_es", "--mc", "50", "--report", str(report))
    assert rc == 0, out
    assert "ema_es (strategy_host.examples.ema_cross:EmaCross) on CON.F.US.EP.H26 5m" in out
    assert re.search(r"net P&L -?[\d,.]+ after costs [\d,.]+; \d+ trades", out), out
    assert "combine 50k:" in out and "Monte Carlo of day orderings (50 runs, seed 1)" in out
    doc = json.loads((report / "report.json").read_text())
    assert doc["strategy"] == "ema_es" and doc["contracts"] == {"ES": "CON.F.US.EP.H26"}
    assert len(doc["data_sha256"]) == 64 and doc["seed"] == 1 and doc["code_version"]
    assert doc["params"]["fast"] == 9 and doc["data_bars"] > 0
    trades = (report / "trades.csv").read_text().splitlines()
    assert trades[0].startswith("time,contract,client_id") and len(trades) > 1
    assert (report / "refusals.csv").read_text().startswith("time,client_id,rule,reason")
    page = (report / "index.html").read_text()
    assert "Plotly.newPlot" in page and "MLL floor" in page
    assert not re.search(r"<script[^>]+src=", page)        # everything inlined: opens offline

    rc, js = _backtest(procs, "ema_es", "--json", "--param", "fast=5")
    assert rc == 0
    again = json.loads(js)
    assert again["params"]["fast"] == 5 and again["data_sha256"] == doc["data_sha256"]


def test_a_sweep_ranks_every_combination_and_each_row_runs_alone(procs, es_db) -> None:
    rc, out = _backtest(procs, "ema_es", "--grid", "fast=5,9", "--grid", "slow=21,30",
                        "--jobs", "2")
    assert rc == 0, out
    rows = re.findall(r"^\s+\d+\s+(\d+)\s+(\d+)\s+(-?[\d,.]+)", out, re.M)
    commands = re.findall(r"^\s+(chillly backtest .*)$", out, re.M)
    assert len(rows) == 4 == len(commands)
    pnls = [float(r[2].replace(",", "")) for r in rows]
    assert pnls == sorted(pnls, reverse=True)
    args = shlex.split(commands[-1])[2:] + ["--json"]
    rc, js = _backtest(procs, *args)
    assert rc == 0, js
    assert json.loads(js)["net_pnl"] == pnls[-1]


@pytest.mark.parametrize("args, says", [
    (["nope"], "unknown instance 'nope'"),
    (["ema_es", "--param", "fastest=3"], "params.fastest: unknown field"),
    (["ema_es", "--param", "fast=zero"], "params.fast"),
    (["no.such.module:Thing"], "unknown class"),
    (["ema_es", "--from", "2025-01-01", "--to", "2025-01-31"],
     "the database holds CON.F.US.EP.H26 2026-01-05 .. 2026-01-"),
    (["ema_es", "--data", "strategies.toml"], "not a market database"),
])
def test_bad_input_is_one_line_and_exit_2(procs, es_db, args, says) -> None:
    rc, out = _backtest(procs, *args)
    assert rc == 2 and says in out, out
    assert len(out.strip().splitlines()) == 1, out
