"""The trader's page on the real stack (sim at 60x, the EMA example trading ES, the gateway,
`chillly web`) in headless chromium: what it shows equals what the tools answer, the chart is
`chillly bars`, a backtest report is listed, and the buttons halt and flatten (the sim's own
positions judge) while a request without the anti-forgery token changes nothing. A screenshot
of each test is kept (paths printed). The deadlines are test_web_deadlines.py."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from chillly.calendar import trading_date
from chillly.clock import iso_to_ms
from gateway.journal import read_only
from tests.integration.web_rig import (
    HEARTBEAT, WebStack, browser, money, need_chromium, num, open_page, page_risk, rows,
    screenshot, shows_what_the_tool_says, tool_risk, web_stack,
)
from tests.support import aeventually

# Judged by what the page shows and what the venue holds, not by how fast: the parallel phase
# runs it (its tests share one stack: --dist loadfile keeps them on one worker). The two
# deadline tests (a fill within 1 s, a stopped gateway within one heartbeat) are
# test_web_deadlines.py, run alone.
pytestmark = pytest.mark.timeout(420)

POS_SIDES = {0: "flat", 1: "long", 2: "short"}
SIDES = {0: "buy", 1: "sell"}
TYPES = {1: "limit", 2: "market", 3: "stop_limit", 4: "stop", 5: "trailing", 6: "join_bid",
         7: "join_ask"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    need_chromium()
    yield from web_stack(tmp_path_factory.mktemp("web"), heartbeat=str(HEARTBEAT))


# ---------------------------------------------------------------------- the tools' answers, drawn

def position_rows(res: dict[str, Any], all_fields: bool) -> list[list[str]]:
    out = []
    for p in res["positions"]:
        row = [p["owner"], p["contract"], POS_SIDES.get(p["side"], str(p["side"])),
               num(p["size"]), num(p["avg_price"]) if p.get("avg_price") else "-"]
        if all_fields:
            row += [money(p["realized_pnl"]), money(p["open_pnl"])]
        out.append(row)
    return out


def order_rows(res: dict[str, Any]) -> list[list[str]]:
    return [[str(o["order_id"]), o["owner"], o["contract"], SIDES.get(o["side"], str(o["side"])),
             num(o["size"]), TYPES.get(o["order_type"], str(o["order_type"])), o["state"],
             num(o.get("limit_price") or o.get("stop_price") or None),
             str(o["parent_id"]) if o.get("parent_id") else ""] for o in res["orders"]]


def strategy_rows(res: list[dict[str, Any]], all_fields: bool) -> list[list[str]]:
    out = []
    for s in res:
        row = [s["name"], s["supervisor"], s["state"], "yes" if s["live"] else "no",
               num(s["position"])]
        if all_fields:
            row.append("-" if s["day_pnl"] is None else money(s["day_pnl"]))
        out.append(row)
    return out


async def page_positions(page: Any, all_fields: bool) -> list[list[str]]:
    return [r[:7] if all_fields else r[:5] for r in await rows(page, "positions")]


async def page_orders(page: Any) -> list[list[str]]:
    return [r[:9] for r in await rows(page, "orders")]


async def page_strategies(page: Any, all_fields: bool) -> list[list[str]]:
    return [[r[0], r[1], r[2], r[3], r[5]] + ([r[6]] if all_fields else [])
            for r in await rows(page, "strategies")]


# ---------------------------------------------------------------------- tests

async def test_the_page_shows_what_the_tools_answer(stack: WebStack, tmp_path: Path) -> None:
    await stack.page_up()

    async def ema_filled() -> bool:
        res = await stack.cli("orders", "--all", "--owner", "ema")
        return any(o["fill_volume"] > 0 for o in res["orders"])
    await aeventually(ema_filled, 180, interval=2.0, what="the EMA strategy trading")
    async with browser() as ctx:
        page = await open_page(ctx, stack)
        await shows_what_the_tool_says(
            "risk", lambda: tool_risk(stack, False), lambda: page_risk(page, ["floor", "state"]))
        await shows_what_the_tool_says(
            "positions", lambda: _positions(stack, False), lambda: page_positions(page, False))
        await shows_what_the_tool_says("orders", lambda: _orders(stack), lambda: page_orders(page))
        await shows_what_the_tool_says(
            "strategies", lambda: _strategies(stack, False), lambda: page_strategies(page, False))
        assert await rows(page, "strategies"), "the EMA instance has a row"
        await shows_what_the_tool_says("health verdict", lambda: _verdict(stack),
                                       lambda: page.text_content("#health-verdict"))
        await screenshot(page, tmp_path, "trading")
        assert page.errors == []


async def _verdict(stack: WebStack) -> str:
    """`chillly status --json`'s verdict as the page words it."""
    st = await stack.cli("status", ok=False)
    bad = [p["name"] for p in st["programs"] if not p["healthy"]]
    return "no broker" if not st["broker"] else \
        f"UNHEALTHY: {', '.join(bad)}" if bad else "all healthy"


async def _positions(stack: WebStack, all_fields: bool) -> list[list[str]]:
    return position_rows(await stack.cli("positions"), all_fields)


async def _orders(stack: WebStack) -> list[list[str]]:
    return order_rows(await stack.cli("orders"))


async def _strategies(stack: WebStack, all_fields: bool) -> list[list[str]]:
    return strategy_rows(await stack.cli("strategies"), all_fields)


async def test_the_chart_is_chillly_bars_and_moves(stack: WebStack, tmp_path: Path) -> None:
    await stack.page_up()
    es = (await stack.cli("bars", "ES", "--tf", "1m", "--last", "1"))["contract"]
    async with browser() as ctx:
        page = await open_page(ctx, stack)
        await page.click(f'#chart-tabs button[data-contract="{es}"]')
        await page.wait_for_function("() => window.chillly.chartBars().length >= 5", timeout=30_000)

        async def matches() -> int:
            cli = (await stack.cli("bars", "ES", "--tf", "1m", "--last", "20"))["bars"]
            drawn = {b["time"]: b for b in await page.evaluate("() => window.chillly.chartBars()")}
            finals = [b for b in cli if b["final"]]
            assert finals, cli
            for b in finals:
                d = drawn.get(b["t"] / 1000)
                assert d is not None, f"bar {b['t']} of chillly bars is not on the chart"
                assert (d["open"], d["high"], d["low"], d["close"]) == \
                    (b["o"], b["h"], b["l"], b["c"]), (b, d)
            return max(drawn)
        last = await matches()
        # At 60x a minute bar forms every second: the chart grows by itself (no reload).
        await page.wait_for_function(
            f"() => window.chillly.chartBars().some(b => b.time > {last})", timeout=20_000)
        await matches()
        await screenshot(page, tmp_path, "chart")
        assert page.errors == []


async def test_a_backtest_report_is_listed_and_opens(stack: WebStack, tmp_path: Path) -> None:
    await stack.page_up()
    out = Path(stack.env["RUN_DIR"]) / "reports" / "ema-today"
    summary = await stack.cli("backtest", "ema", "--report", str(out))
    async with browser() as ctx:
        page = await open_page(ctx, stack)
        link = await page.wait_for_selector('#reports a:text("ema-today")', timeout=30_000)
        row = (await rows(page, "reports"))[0]
        assert row[2] == "ema" and row[4] == money(summary["net_pnl"]), (row, summary)
        async with ctx.expect_page() as opened:
            await link.click()
        report = await opened.value
        await report.wait_for_load_state()
        assert "ema" in (await report.content())
        await screenshot(page, tmp_path, "reports")
        assert page.errors == []


async def _post_from_page(page: Any, path: str, body: dict[str, Any],
                          csrf: bool) -> dict[str, Any]:
    """A request made by the page's own script (same origin), with or without its token."""
    return dict(await page.evaluate(
        """async ([path, body, csrf]) => {
             const headers = {"Content-Type": "application/json"};
             if (csrf) headers["X-Chillly-CSRF"] = document.querySelector('meta[name="csrf"]').content;
             const r = await fetch(path, {method: "POST", headers, body: JSON.stringify(body)});
             return {status: r.status, body: await r.json()};
           }""", [path, body, csrf]))


async def confirm(page: Any, button: str) -> None:
    await page.click(button)
    await page.wait_for_selector("#confirm[open]")
    await page.click("#confirm-yes")


async def test_the_buttons_flatten_and_halt_and_no_token_changes_nothing(
        stack: WebStack, tmp_path: Path) -> None:
    await stack.page_up()
    account = (await stack.cli("account"))["account_id"]
    nq = stack.nq()

    def nq_size() -> int:
        return sum(p["size"] for p in stack.positions(account) if p["contractId"] == nq)

    placed = stack.venue("/api/Order/place", {"accountId": account, "contractId": nq,
                                              "type": 2, "side": 0, "size": 1})
    assert placed["success"], placed
    await aeventually(lambda: nq_size() > 0, 10, what="a long NQ at the venue")
    held = nq_size()
    async with browser() as ctx:
        page = await open_page(ctx, stack)
        await page.wait_for_selector(f'#positions tr[data-contract="{nq}"] button', timeout=30_000)
        # Without the anti-forgery token: refused, and nothing changes at the venue.
        for path, body in (("/api/action/flatten", {"contract": nq}),
                           ("/api/action/flatten", {"all": True}), ("/api/action/halt", {})):
            out = await _post_from_page(page, path, body, csrf=False)
            assert out["status"] == 403 and "anti-forgery" in out["body"]["error"], out
        time.sleep(2 * HEARTBEAT)
        assert nq_size() == held
        assert (await stack.cli("risk"))["state"] != "HALTED"
        # The Flatten button (the same request, with the page's token): the venue is flat in NQ.
        await confirm(page, f'#positions tr[data-contract="{nq}"] button')
        await aeventually(lambda: nq_size() == 0, 30, what="NQ flattened at the venue")
        await screenshot(page, tmp_path, "flattened")
        # Halt: HALTED, and the venue holds nothing (the gate cancels and flattens).
        await confirm(page, "#btn-halt")
        await aeventually(lambda: stack.positions(account) == [], 60, interval=0.5,
                          what="every position closed at the venue")

        async def halted() -> bool:
            return bool((await stack.cli("risk"))["state"] == "HALTED")
        await aeventually(halted, 30, interval=1.0, what="the gate HALTED")
        await page.wait_for_function("() => document.querySelector('#state').textContent === "
                                     "'HALTED'", timeout=30_000)
        # Flat and halted nothing moves: every figure equals the tools' at the same moment.
        await shows_what_the_tool_says("risk, halted", lambda: tool_risk(stack, True),
                                       lambda: page_risk(page, ["floor", "state", "balance",
                                                                "equity", "distance_to_floor",
                                                                "day_pnl", "lots"]))
        await shows_what_the_tool_says("positions, halted", lambda: _positions(stack, True),
                                       lambda: page_positions(page, True))
        await shows_what_the_tool_says("orders, halted", lambda: _orders(stack),
                                       lambda: page_orders(page))
        await shows_what_the_tool_says("strategies, halted", lambda: _strategies(stack, True),
                                       lambda: page_strategies(page, True))
        await screenshot(page, tmp_path, "halted")
        assert page.errors == []


async def test_the_resume_and_cancel_buttons(stack: WebStack, tmp_path: Path) -> None:
    """After the halt above: Resume lifts it (the account is flat); a resting order's Cancel
    button cancels it at the venue."""
    await stack.page_up()
    account = (await stack.cli("account"))["account_id"]
    async with browser() as ctx:
        page = await open_page(ctx, stack)
        if (await stack.cli("risk"))["state"] == "HALTED":
            await confirm(page, "#btn-resume")

            async def active() -> bool:
                return bool((await stack.cli("risk"))["state"] == "ACTIVE")
            await aeventually(active, 30, interval=1.0, what="trading resumed")
        close = (await stack.cli("bars", "NQ", "--tf", "1m", "--last", "1"))["bars"][-1]["c"]
        far = round(close * 0.9 / 0.25) * 0.25          # a buy that rests, far below
        placed = await stack.cli("buy", "NQ", "1", "--limit", str(far))
        oid = placed["order_id"]
        await confirm(page, f'#orders tr[data-order="{oid}"] button')

        def cancelled() -> bool:
            orders = stack.venue("/api/Order/search", {"accountId": account,
                                                       "startTimestamp": "2000-01-01T00:00:00Z"})
            return any(o["id"] == oid and o["status"] == 3 for o in orders["orders"])
        await aeventually(cancelled, 30, interval=0.5, what=f"order {oid} cancelled at the venue")
        await page.wait_for_selector(f'#orders tr[data-order="{oid}"]', state="detached",
                                     timeout=30_000)
        await screenshot(page, tmp_path, "cancelled")
        assert page.errors == []


@asynccontextmanager
async def restarted_page_listing(stack: WebStack, rows: str, key: str, want: list[str],
                                 what: str) -> AsyncIterator[Any]:
    """`chillly web` restarted mid-session and the page opened on it: every id in `want` is
    listed (the rows matching the CSS selector `rows`, their `data-<key>`), none twice."""
    assert stack.started["web"].terminate() == 0
    stack.web()
    await stack.page_up()
    async with browser() as ctx:
        page = await open_page(ctx, stack)
        shown: list[str] = []

        async def listed() -> bool:
            nonlocal shown
            shown = await page.evaluate(
                f"() => [...document.querySelectorAll({rows!r})].map(tr => tr.dataset.{key})")
            return set(want) <= set(shown)
        try:
            await aeventually(listed, 30, interval=0.2, what=f"{what} listed again")
        except AssertionError:
            raise AssertionError(f"{what} not on the page: {sorted(set(want) - set(shown))} "
                                 f"(page: {shown[:20]})") from None
        assert len(shown) == len(set(shown)), f"{what}: one listed twice"
        yield page


async def test_a_restarted_web_lists_the_day_s_fills_again(stack: WebStack, tmp_path: Path) -> None:
    """`chillly web` restarted mid-session (supervisorctl restart web, a crash): the page lists
    the day's fills the venue holds, not only those heard on the bus since it started (the
    gateway's `fills` answer from its journal, merged with the bus's, each once)."""
    await stack.page_up()
    account = (await stack.cli("account"))["account_id"]
    # A fill of its own at the venue (whatever the strategy and the tests above did).
    placed = stack.venue("/api/Order/place", {"accountId": account, "contractId": stack.nq(),
                                              "type": 2, "side": 0, "size": 1})
    assert placed["success"], placed
    journal = read_only(Path(stack.env["GATEWAY_DATABASE_PATH"]))

    def before() -> list[int]:
        """The venue's trades of the trading day of the newest, newest first (50 at most: the
        strategy goes on trading meanwhile, and the list keeps 200), once the gateway has
        journaled each (the page cannot show what the gateway never took)."""
        trades = stack.venue("/api/Trade/search", {"accountId": account})["trades"]
        if not any(t["orderId"] == placed["orderId"] for t in trades):
            return []
        when = {t["id"]: iso_to_ms(t["creationTimestamp"]) for t in trades}
        day = trading_date(max(when.values()))
        today = sorted((i for i in when if trading_date(when[i]) == day),
                       key=lambda i: (when[i], i), reverse=True)[:50]
        taken = {r[0] for r in journal.execute("SELECT trade_id FROM fills")}
        return today if set(today) <= taken else []
    want = await aeventually(before, 30, interval=0.5, what="the venue's fills journaled")
    journal.close()

    async with restarted_page_listing(stack, "#fills tr[data-trade]", "trade",
                                      [str(t) for t in want], "the day's fills") as page:
        await screenshot(page, tmp_path, "restarted-fills")
        assert page.errors == []


async def test_a_restarted_web_lists_the_day_s_refusals_again(stack: WebStack,
                                                              tmp_path: Path) -> None:
    """`chillly web` restarted mid-session: the page lists the gate's refusals of the day the
    gateway journaled, not only those heard on the bus since it started (the gateway's
    `refusals` answer, merged with the bus's, each once)."""
    await stack.page_up()
    # A refusal of the trader's own by the gate (whatever the strategy and the tests above had
    # refused): 50 lots pass every plan's maximum position.
    refused = await stack.cli("buy", "NQ", "50", ok=False)
    assert refused["status"] == "rejected" and refused["rule"] in ("max_position", "halt"), \
        refused
    journal = read_only(Path(stack.env["GATEWAY_DATABASE_PATH"]))
    rows = [(r["refusal_id"], r["at_ms"], json.loads(r["event"])) for r in journal.execute(
        "SELECT refusal_id, at_ms, event FROM refusals ORDER BY at_ms DESC, rowid DESC")]
    journal.close()
    # journaled before the trader was answered
    assert any(e["client_id"] == refused["client_id"] for _, _, e in rows), rows[:3]
    day = trading_date(rows[0][1])
    want = [rid for rid, at_ms, _ in rows if trading_date(at_ms) == day][:50]

    async with restarted_page_listing(stack, "#refusals tr[data-refusal]", "refusal", want,
                                      "the day's refusals") as page:
        mine = await page.evaluate(
            "(id) => [...document.querySelector(`#refusals tr[data-refusal='${id}']`).cells]"
            ".map(td => td.textContent)", next(rid for rid, _, e in rows
                                               if e["client_id"] == refused["client_id"]))
        assert mine[1:4] == ["reject", refused["rule"], "manual"], mine
        await screenshot(page, tmp_path, "restarted-refusals")
        assert page.errors == []
