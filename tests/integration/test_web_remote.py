"""The page off loopback is read-only and needs WEB_TOKEN, judged from a real non-loopback
address: `chillly web` runs in a network namespace of this test's own, listening on
192.0.2.10 (TEST-NET-1, which exists only inside that namespace), and chromium runs there too,
so every request really comes from a non-loopback peer. The bus is ipc:// (unix sockets reach
across network namespaces), so that page is as live as any: the refusal is the protection, not
a missing path. The same flatten through a page on loopback does flatten (the control).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sim_client import wait_ready
from tests.integration.web_rig import CHROMIUM, WebStack, browser, need_chromium, screenshot
from tests.support import Procs, aeventually, free_port

pytestmark = pytest.mark.timeout(240)

ADDRESS = "192.0.2.10"
TOKEN = secrets.token_urlsafe(24)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of our own with lo up and ADDRESS on it."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 (ip netns) to make a non-loopback address")
    name = f"chillly-web-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.decode().strip()}")
    try:
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo"]):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[WebStack]:
    need_chromium()
    env = {"BUS_PUBLISH_ADDR": f"ipc://{tmp_path}/bus-pub", "BUS_SUBSCRIBE_ADDR":
           f"ipc://{tmp_path}/bus-sub", "SIM_PORT": str(free_port()),
           "WEB_PORT": str(free_port()), "RUN_DIR": str(tmp_path / "run"),
           "DATABASE_PATH": str(tmp_path / "market.db"), "HEARTBEAT_INTERVAL": "0.5",
           "SIM_ALWAYS_OPEN": "1", "SIM_HISTORY_DAYS": "1", "SIM_RATE_OTHER": "100000",
           "GATEWAY_DATABASE_PATH": str(tmp_path / "orders.db"),
           "STRATEGIES_FILE": str(tmp_path / "none.toml"), "LOG_LEVEL": "INFO"}
    procs = Procs(tmp_path, env)
    try:
        procs.spawn(["-m", "broker"], name="broker")
        procs.chillly("sim")
        wait_ready(f"http://127.0.0.1:{env['SIM_PORT']}")
        procs.chillly("gateway")
        yield WebStack(procs, env, tmp_path)
    finally:
        procs.cleanup()
        print(procs.dump_logs()[-6000:])


def in_netns(ns: str, tmp: Path) -> str:
    """A chromium that starts inside the namespace (Playwright talks to it over pipes)."""
    wrapper = tmp / "chromium-in-netns"
    wrapper.write_text(f"#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


async def post(page: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """An action request from the page's own script, carrying whatever token the page has."""
    return dict(await page.evaluate(
        """async ([path, body]) => {
             const csrf = document.querySelector('meta[name="csrf"]').content || "forged";
             const r = await fetch(path, {method: "POST", body: JSON.stringify(body),
               headers: {"Content-Type": "application/json", "X-Chillly-CSRF": csrf}});
             return {status: r.status, body: await r.json()};
           }""", [path, body]))


async def test_off_loopback_the_page_needs_the_token_and_acts_on_nothing(
        netns: str, stack: WebStack, tmp_path: Path) -> None:
    stack.procs.spawn(["ip", "netns", "exec", netns, sys.executable, "-m", "chillly.cli", "web"],
                      name="web-remote", env={"WEB_HOST": ADDRESS, "WEB_TOKEN": TOKEN})
    remote = f"http://{ADDRESS}:{stack.env['WEB_PORT']}/"
    await stack.gateway_ready()
    account = (await stack.cli("account"))["account_id"]
    contract = stack.venue("/api/Contract/available", {"live": False})["contracts"][0]["id"]
    placed = stack.venue("/api/Order/place", {"accountId": account, "contractId": contract,
                                              "type": 2, "side": 0, "size": 1})
    assert placed["success"], placed

    def held() -> int:
        return sum(p["size"] for p in stack.positions(account))
    await aeventually(lambda: held() == 1, 10, what="a position at the venue")

    async with browser(in_netns(netns, tmp_path)) as ctx:
        page = await ctx.new_page()

        async def answering() -> bool:
            try:
                return (await page.goto(remote)) is not None
            except Exception:
                return False
        await aeventually(answering, 60, interval=0.5, what="the page in the namespace")
        first = await page.goto(remote)
        assert first is not None and first.status == 401        # no token, nothing to read
        await page.goto(remote + f"?token={TOKEN}")
        await page.wait_for_function("() => window.chillly && window.chillly.panels.risk "
                                     "&& window.chillly.panels.positions", timeout=60_000)
        # Live off the bus, and read-only: no buttons at all.
        assert await page.is_visible("#read-only-note")
        assert not await page.is_visible("#btn-halt")
        assert await page.query_selector("#positions button") is None
        # Every action refused (the peer is 192.0.2.10, the page is read-only) and the venue
        # keeps its position.
        for path, body in (("/api/action/flatten", {"all": True}), ("/api/action/halt", {})):
            out = await post(page, path, body)
            assert out["status"] == 403, out
            assert "read-only" in out["body"]["error"], out
        await screenshot(page, tmp_path, "remote-read-only")
    assert held() == 1
    assert (await stack.cli("risk"))["state"] != "HALTED"

    # The control: the same request through a page on loopback flattens.
    # (the same port number: the namespace has a network stack of its own)
    stack.web(WEB_HOST="127.0.0.1")
    await _flatten_on_loopback(stack, tmp_path)
    await aeventually(lambda: held() == 0, 30, what="flattened through the loopback page")


async def _flatten_on_loopback(stack: WebStack, tmp: Path) -> None:
    url = stack.url
    async with browser() as ctx:
        page = await ctx.new_page()

        async def answering() -> bool:
            try:
                return (await page.goto(url)) is not None
            except Exception:
                return False
        await aeventually(answering, 60, interval=0.5, what="the page on loopback")
        out = await post(page, "/api/action/flatten", {"all": True})
        assert out["status"] == 200 and out["body"]["ok"], out
        await screenshot(page, tmp, "loopback-flattened")

