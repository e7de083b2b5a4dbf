"""A run's figures and its Topstep verdict, as one record (printed, or written as JSON).

Trades are closing fills: a trade's net is its realized P&L less the costs of both its sides
(the closing fill's cost, twice: entry and exit are the same size). Net P&L is the balance's
change, every cost included. Max drawdown is on equity (open P&L along the paths included),
peak to trough. The verdict is the referee's (trading/referee/): its breaches, in time order,
and the program's pass criteria over the run's days.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chillly.clock import ms_to_iso
from trading.referee.verdict import (FAILING, MonteCarlo, combine, monte_carlo, xfa)

from backtest.run import Outcome
from backtest.setup import Setup


@dataclass
class Verdict:
    program: str
    size: str
    first_mll_breach: dict[str, Any] | None
    flat_by_breaches: int
    first_flat_by_breach: dict[str, Any] | None
    daily_loss_breaches: int
    max_position_breaches: int
    lost: bool
    combine_passed: bool | None = None
    combine_pass_day: str | None = None
    combine_days_to_pass: int | None = None
    combine_why: str = ""
    xfa_winning_days: int | None = None
    xfa_standard_payout_day: str | None = None
    xfa_consistency_payout_day: str | None = None
    monte_carlo: dict[str, Any] | None = None

    def line(self) -> str:
        if self.first_mll_breach:
            head = f"FAILED: MLL breached {self.first_mll_breach['iso']}"
        elif self.lost:
            head = "FAILED: account lost (" + ", ".join(
                r for r, n in (("flat by 15:10 CT", self.flat_by_breaches),
                               ("position cap", self.max_position_breaches)) if n) + ")"
        elif self.program == "combine":
            head = ("PASSED" if self.combine_passed else "NOT PASSED") + f": {self.combine_why}"
        elif self.program == "xfa":
            head = (f"{self.xfa_winning_days} winning day(s) toward a payout; standard path "
                    f"{self.xfa_standard_payout_day or 'not complete'}, consistency path "
                    f"{self.xfa_consistency_payout_day or 'not complete'}")
        else:
            head = "no breach"
        return head


@dataclass
class Summary:
    strategy: str
    class_: str
    contracts: dict[str, str]
    timeframes: list[str]
    params: dict[str, Any]
    data_from: str | None
    data_to: str | None
    data_bars: int
    warmup_bars: int
    data_sha256: str
    fills_rule: str
    start_balance: float
    end_balance: float
    net_pnl: float
    costs: float
    trades: int
    win_rate: float | None
    profit_factor: float | None
    max_drawdown: float
    best_day: dict[str, Any] | None
    worst_day: dict[str, Any] | None
    days: int
    orders_sent: int
    refusals: int
    hook_errors: int
    verdict: Verdict
    seed: int
    code_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["class"] = out.pop("class_")
        return out


def trade_nets(out: Outcome) -> list[float]:
    return [round(f.pnl - 2 * f.cost, 2) for f in out.fills if f.pnl is not None]


def max_drawdown(out: Outcome) -> float:
    peak = None
    worst = 0.0
    for _, eq, _ in out.equity:
        peak = eq if peak is None or eq > peak else peak
        worst = max(worst, peak - eq)
    for d in out.days:           # intraday lows the sampled curve may not show
        if peak is not None:
            worst = max(worst, min(peak, d.start) - d.low)
    return round(worst, 2)


def _breach(b: Any) -> dict[str, Any]:
    return {"rule": b.rule, "t": b.t, "iso": ms_to_iso(b.t), "figures": b.figures}


def verdict(setup: Setup, out: Outcome, mc: int, seed: int) -> Verdict:
    p = setup.program
    by_rule: dict[str, list[Any]] = {}
    for b in out.breaches:
        by_rule.setdefault(b.rule, []).append(b)
    mll = by_rule.get("mll", [])
    flat = by_rule.get("flat_by", [])
    v = Verdict(p.program, p.size, _breach(mll[0]) if mll else None, len(flat),
                _breach(flat[0]) if flat else None, len(by_rule.get("daily_loss", [])),
                len(by_rule.get("max_position", [])),
                any(b.rule in FAILING for b in out.breaches))
    if p.program == "combine":
        passing = combine(out.days, p, setup.target)
        v.combine_passed, v.combine_pass_day = passing.passed, passing.day
        v.combine_days_to_pass, v.combine_why = passing.days, passing.why
        if mc > 0:
            m: MonteCarlo = monte_carlo(out.days, p, setup.target, mc, seed)
            v.monte_carlo = asdict(m)
    elif p.program == "xfa":
        pay = xfa(out.days)
        v.xfa_winning_days = pay.winning_days
        v.xfa_standard_payout_day, v.xfa_consistency_payout_day = (pay.standard_day,
                                                                   pay.consistency_day)
    return v


def summarize(setup: Setup, contracts: dict[str, str], first: int | None, last: int | None,
              digest: str, out: Outcome, fills_rule: str, mc: int, seed: int,
              version: str) -> Summary:
    nets = trade_nets(out)
    wins = [n for n in nets if n > 0]
    losses = [n for n in nets if n <= 0]
    start = setup.program.start
    end = out.days[-1].end if out.days else start
    days = sorted(out.days, key=lambda d: d.pnl)
    inst = setup.instance
    return Summary(
        strategy=inst.name, class_=inst.class_, contracts=contracts, timeframes=inst.timeframes,
        params=dict(inst.params), data_from=ms_to_iso(first) if first is not None else None,
        data_to=ms_to_iso(last + 60_000) if last is not None else None, data_bars=out.bars,
        warmup_bars=out.warmup_bars, data_sha256=digest, fills_rule=fills_rule,
        start_balance=start, end_balance=end, net_pnl=round(end - start, 2),
        costs=round(sum(f.cost for f in out.fills), 2), trades=len(nets),
        win_rate=round(len(wins) / len(nets), 4) if nets else None,
        profit_factor=round(sum(wins) / -sum(losses), 3) if losses and sum(losses) < 0 else None,
        max_drawdown=max_drawdown(out),
        best_day={"day": days[-1].day, "pnl": days[-1].pnl} if days else None,
        worst_day={"day": days[0].day, "pnl": days[0].pnl} if days else None,
        days=len(out.days), orders_sent=out.orders_sent, refusals=len(out.refusals),
        hook_errors=out.hook_errors, verdict=verdict(setup, out, mc, seed), seed=seed,
        code_version=version)


def text(s: Summary) -> str:
    """The terminal summary."""
    pf = "-" if s.profit_factor is None else f"{s.profit_factor:.2f}"
    wr = "-" if s.win_rate is None else f"{s.win_rate * 100:.1f}%"
    lines = [
        f"{s.strategy} ({s.class_}) on {', '.join(s.contracts.values())} "
        f"{','.join(s.timeframes)}; {s.data_from} .. {s.data_to}, {s.data_bars} 1m bars "
        f"(+{s.warmup_bars} warm-up)",
        f"  net P&L {s.net_pnl:,.2f} after costs {s.costs:,.2f}; {s.trades} trades, win rate "
        f"{wr}, profit factor {pf}; max drawdown {s.max_drawdown:,.2f}",
    ]
    if s.best_day and s.worst_day:
        lines.append(f"  best day {s.best_day['day']} {s.best_day['pnl']:,.2f}, worst day "
                     f"{s.worst_day['day']} {s.worst_day['pnl']:,.2f} over {s.days} days; "
                     f"{s.orders_sent} orders, {s.refusals} refused by the gate")
    v = s.verdict
    lines.append(f"  {v.program} {v.size}: {v.line()}")
    if v.monte_carlo:
        m = v.monte_carlo
        med = "-" if m["median_days"] is None else f"{m['median_days']:g}"
        lines.append(f"  Monte Carlo of day orderings ({m['runs']} runs, seed {m['seed']}): "
                     f"pass rate {m['pass_rate'] * 100:.1f}%, median days to pass {med}")
    if s.hook_errors:
        lines.append(f"  the strategy raised {s.hook_errors} time(s): see the log above")
    return "\n".join(lines)
