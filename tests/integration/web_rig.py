"""Rig for the page's tests: the stack on the sim with a strategy trading and `chillly web`,
Debian's chromium driven headless by Playwright, the CLI tools run as the trader runs them,
the sim's REST API as the judge, and a screenshot kept per test (its path is printed).

The browser tests skip, saying why, only when chromium cannot be had (scripts/test installs
Debian's `chromium` when it runs as root).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sim_client import login
from tests.integration.strategy_rig import EMA, start_system, system_env
from tests.support import ROOT, Proc, Procs, aeventually, free_port

#: HEARTBEAT_INTERVAL of the page tests' stacks (s): the page's figures refresh on each
HEARTBEAT = 1.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test installs it as root: "
                    "apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (the test extra of pyproject.toml)")


@asynccontextmanager
async def browser(executable: str = CHROMIUM) -> AsyncIterator[Any]:
    """A headless chromium with a fresh profile: a Playwright browser context."""
    need_chromium()
    from playwright.async_api import async_playwright

    profile = tempfile.mkdtemp(prefix="chillly-web-profile-")
    try:
        async with async_playwright() as p:
            ctx = await p.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1300})
            try:
                yield ctx
            finally:
                await ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


#: screenshots are also kept here: pytest rotates its tmp dirs away after a few runs
ARTEFACTS = ROOT / "run" / "artefacts" / "web"


async def screenshot(page: Any, tmp: Path, name: str) -> Path:
    """Keep what the page looked like (a test artefact), in the test's tmp dir and under
    run/artefacts/web/; the paths are printed."""
    path = tmp / f"web-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    kept = ARTEFACTS / f"{name}.png"
    shutil.copyfile(path, kept)
    print(f"screenshot: {path} (kept as {kept})")
    return path


class WebStack:
    """The system on the sim at 60x, one EMA strategy trading ES, and `chillly web`."""

    def __init__(self, procs: Procs, env: dict[str, str], tmp: Path) -> None:
        self.procs = procs
        self.env = env
        self.tmp = tmp
        self.url = f"http://127.0.0.1:{env['WEB_PORT']}/"
        self.sim = f"http://127.0.0.1:{env['SIM_PORT']}"
        self.http = httpx.Client(base_url=self.sim, timeout=10.0)
        self.token: str | None = None     # the sim's login, once it is up
        self.started: dict[str, Proc] = {}

    async def cli(self, *args: str, ok: bool = True) -> Any:
        """`chillly ARGS --json` as the trader runs it; its JSON document."""
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chillly.cli", *args, "--json", cwd=str(ROOT),
            env={**os.environ, **self.env}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(), 60)
        if ok:
            assert p.returncode == 0, (args, out, err)
        return json.loads(out.decode())

    async def gateway_ready(self) -> None:
        """Until `chillly account` says the gateway is ready (its start-up reconcile done)."""
        async def ready() -> bool:
            try:
                return bool((await self.cli("account")).get("ready"))
            except AssertionError:
                return False
        await aeventually(ready, 90, interval=0.5, what="the gateway ready")

    def venue(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.token = self.token or login(self.sim)
        r = self.http.post(path, json=body, headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return dict(r.json())

    def nq(self) -> str:
        """The venue's active NQ contract id."""
        cs = self.venue("/api/Contract/available", {"live": False})["contracts"]
        return str(next(c["id"] for c in cs if c["id"].startswith("CON.F.US.ENQ.")
                        and c["activeContract"]))

    def positions(self, account: int) -> list[dict[str, Any]]:
        """The venue's own open positions: the judge of halt and flatten."""
        return list(self.venue("/api/Position/searchOpen", {"accountId": account})["positions"])

    def web(self, **extra: str) -> Proc:
        self.started["web"] = self.procs.chillly("web", env={**self.env, **extra})
        return self.started["web"]

    async def page_up(self) -> None:
        await self.gateway_ready()

        async def up() -> bool:
            try:
                async with httpx.AsyncClient(verify=False) as c:   # http: no CAs (sim_client)
                    return (await c.get(self.url, timeout=1.0)).status_code == 200
            except httpx.HTTPError:
                return False
        await aeventually(up, 60, interval=0.2, what="chillly web answering")


def web_stack(tmp: Path, heartbeat: str = "0.5") -> Iterator[WebStack]:
    """Start it all (module scope: the stack is shared by a module's tests)."""
    env = {"BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "SIM_PORT": str(free_port()), "WEB_PORT": str(free_port()),
           "METRICS_PORT": str(free_port()), "RUN_DIR": str(tmp / "run"),
           "DATABASE_PATH": str(tmp / "market.db"), "HEARTBEAT_INTERVAL": heartbeat,
           "LOG_LEVEL": "INFO", "SIM_RATE_OTHER": "100000", "WEB_STRATEGIES_INTERVAL": "1"}
    env.update(system_env(tmp, EMA))
    procs = Procs(tmp, env)
    try:
        stack = WebStack(procs, env, tmp)
        stack.started.update(start_system(procs, env, env))
        stack.started["strategy"] = procs.chillly("strategy-host", "ema", name="strategy-ema")
        stack.web()
        yield stack
    finally:
        procs.cleanup()
        print(procs.dump_logs()[-8000:])


async def rows(page: Any, table: str) -> list[list[str]]:
    """The text of every cell of a table's body, row by row (an empty table: [])."""
    got = await page.evaluate(
        """(id) => [...document.querySelectorAll(`#${id} tbody tr`)]
             .map(tr => [...tr.children].map(td => td.dataset.v ?? td.textContent))""", table)
    return [] if got == [["none"]] else [r for r in got if r != ["none"]]


async def field(page: Any, name: str) -> str:
    return str(await page.evaluate(
        "(n) => document.querySelector(`#risk [data-field=\"${n}\"]`).textContent", name))


def money(x: float | None) -> str:
    """What the page shows for an amount (toLocaleString en-US, 2 decimals)."""
    return "-" if x is None else f"{x:,.2f}"


def num(x: Any) -> str:
    """What the page shows for a number: JavaScript's String(x) (6000.0 -> "6000")."""
    if x is None:
        return "-"
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


# ---------------------------------------------------------------------- the page against the tools

def risk_fields(r: dict[str, Any], all_fields: bool) -> dict[str, str]:
    """`chillly risk --json`'s answer as the page words it."""
    out = {"floor": money(r["floor"]),
           "state": r["state"] + (" (manual)" if r.get("manual_halt") else "")}
    if all_fields:
        out.update(balance=money(r["balance"]), equity=money(r["equity"]),
                   distance_to_floor=money(r["distance_to_floor"]), day_pnl=money(r["day_pnl"]),
                   lots=f"{num(r['lots_used'])} / {num(r['lots_allowed'])}")
    return out


async def tool_risk(stack: WebStack, all_fields: bool) -> dict[str, str]:
    return risk_fields(await stack.cli("risk"), all_fields)


async def page_risk(page: Any, names: list[str]) -> dict[str, str]:
    return {n: await field(page, n) for n in names}


async def shows_what_the_tool_says(what: str, tool: Callable[[], Any],
                                   on_page: Callable[[], Any], tries: int = 15) -> None:
    """Ask the tool; the page must show that same answer within a few refreshes. The system
    trades meanwhile, so an answer overtaken by a newer one is asked again."""
    seen: Any = None
    for _ in range(tries):
        want = await tool()

        async def same() -> bool:
            nonlocal seen
            seen = await on_page()
            return bool(seen == want)
        try:
            await aeventually(same, 4 * HEARTBEAT, interval=0.1, what=what)
            return
        except AssertionError:
            continue
    raise AssertionError(f"{what}: the page never showed the tool's answer\n tool: {want}\n"
                         f" page: {seen}")


async def open_page(ctx: Any, stack: WebStack) -> Any:
    """The page in a new tab, its script running; `page.errors` collects its script errors."""
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(stack.url)
    await page.wait_for_function("() => window.chillly && window.chillly.panels.risk")
    page.errors = errors    # checked by each test: the page's script never failed
    return page
