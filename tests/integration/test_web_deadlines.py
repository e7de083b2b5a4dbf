"""The trader's page's two deadlines, on the same stack as test_web_page.py (sim at 60x, the EMA
example, the gateway, `chillly web`) in headless chromium: a fill at the venue shows within
1 s, and a stopped gateway is said within one heartbeat, then the page recovers by itself.

Serial: a deadline is judged by the clock, so scripts/test runs these alone, before the
parallel rest (bench/web.py measures the speed itself)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.web_rig import (
    HEARTBEAT, WebStack, browser, need_chromium, open_page, page_risk, screenshot,
    shows_what_the_tool_says, tool_risk, web_stack,
)

pytestmark = [pytest.mark.timeout(420), pytest.mark.serial]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    need_chromium()
    yield from web_stack(tmp_path_factory.mktemp("web"), heartbeat=str(HEARTBEAT))


async def test_a_fill_at_the_venue_shows_within_a_second(stack: WebStack, tmp_path: Path) -> None:
    await stack.page_up()
    account = (await stack.cli("account"))["account_id"]
    async with browser() as ctx:
        page = await open_page(ctx, stack)
        # An order placed at the venue itself (the web platform, say): the gateway hears of it
        # on its user hub and books it to `external`.
        placed = stack.venue("/api/Order/place", {"accountId": account, "contractId": stack.nq(),
                                                  "type": 2, "side": 0, "size": 1})
        assert placed["success"], placed
        # A deadline, not a speed figure (bench/web.py measures that).
        await page.wait_for_selector(f'#fills tr[data-order="{placed["orderId"]}"]',
                                     timeout=1000)
        await screenshot(page, tmp_path, "fill")
        assert page.errors == []


async def test_a_stopped_gateway_is_said_at_once_and_the_page_recovers(
        stack: WebStack, tmp_path: Path) -> None:
    await stack.page_up()
    async with browser() as ctx:
        page = await open_page(ctx, stack)
        await page.wait_for_function("() => !('gateway' in window.chillly.missing)",
                                     timeout=30_000)
        stack.started["gateway"].terminate()
        # Its last heartbeat (STOPPED) is the news: within one heartbeat interval.
        await page.wait_for_function("() => 'gateway' in window.chillly.missing",
                                     timeout=HEARTBEAT * 1000)
        banner = await page.text_content("#missing")
        assert banner and "gateway" in banner and await page.is_visible("#missing")
        await screenshot(page, tmp_path, "gateway-down")
        stack.started["gateway"] = stack.procs.chillly("gateway", env=stack.env)
        started = time.monotonic()
        await page.wait_for_function(
            "() => !('gateway' in window.chillly.missing) && "
            "window.chillly.panels.health.programs.some(p => p.name === 'gateway' && p.healthy)",
            timeout=90_000)
        print(f"recovered {time.monotonic() - started:.1f}s after the gateway was started again")
        await shows_what_the_tool_says("risk after the restart", lambda: tool_risk(stack, False),
                                       lambda: page_risk(page, ["floor", "state"]))
        await screenshot(page, tmp_path, "gateway-back")
        assert page.errors == []
