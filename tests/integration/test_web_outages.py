"""The page stays up when others do not: with no market database yet, and across a broker
restart, it says what is missing and clears it by itself once it is back (no reload)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.web_rig import browser, need_chromium, screenshot
from tests.support import Procs, aeventually

pytestmark = pytest.mark.timeout(240)


async def test_no_database_and_a_broker_restart_are_said_and_recover(
        procs: Procs, bus_env: dict[str, str], tmp_path: Path) -> None:
    need_chromium()
    broker = procs.spawn(["-m", "broker"], name="broker")
    procs.chillly("web")
    url = f"http://127.0.0.1:{bus_env['WEB_PORT']}/"
    async with browser() as ctx:
        page = await ctx.new_page()

        async def answering() -> bool:
            try:
                return (await page.goto(url)) is not None
            except Exception:
                return False
        await aeventually(answering, 60, interval=0.3, what="chillly web answering")
        missing = "() => window.chillly && Object.keys(window.chillly.missing)"
        await page.wait_for_function(f"() => ({missing})().includes('database')", timeout=30_000)
        assert "no market database" in (await page.text_content("#missing") or "")
        await page.wait_for_function("() => window.chillly.panels.health && "
                                     "window.chillly.panels.health.broker", timeout=30_000)
        broker.terminate()
        await page.wait_for_function(f"() => ({missing})().includes('broker')", timeout=30_000)
        assert "no bus" in (await page.text_content("#missing") or "")
        await screenshot(page, tmp_path, "no-broker")
        procs.spawn(["-m", "broker"], name="broker-again")
        procs.chillly("store")     # creates the market database
        await page.wait_for_function(
            f"() => !({missing})().includes('broker') && !({missing})().includes('database')",
            timeout=60_000)
        await screenshot(page, tmp_path, "recovered")
