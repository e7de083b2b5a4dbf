"""`chillly web`: the page's process (supervisord program `web`).

It starts its HTTP server before anything else answers, so the page is up, and says what is
missing, while the broker, the gateway or the database are not; it reads only the bus, the
gateway's and the series cache's answers and the market database, and never talks to the
venue. Its heartbeat carries its own counters: pages open (`clients`), messages pushed
and dropped (replaced by a newer one or cut at a stalled page's bound), actions taken and
refused.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from aiohttp import web

from chillly.messages import Heartbeat
from chillly.process import Service, run_service
from chillly.errors import StartupError
from web.board import Board
from web.live import Live
from web.outbox import Hub
from web.server import Page
from web.settings import WebSettings

log = logging.getLogger("web")


class Web(Service):
    name = "web"
    settings_cls = WebSettings
    settings: WebSettings

    async def on_start(self) -> None:
        s = self.settings
        self.hub = Hub(s.web_client_queue, s.web_quote_interval)
        self.board = Board({"read_only": s.read_only, "venue": s.venue,
                            "clock_speed": s.clock_speed, "clock_anchor_ms": s.clock_anchor_ms,
                            "heartbeat_interval": s.heartbeat_interval,
                            "account": s.topstep_account_id})
        self.live = Live(s, self.bus, self.hub, self.board, self.counters)
        self.live.subscribe()
        self.page = Page(s, self.bus, self.hub, self.board, self.live, self.counters)
        self.runner = web.AppRunner(self.page.app(), access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, s.web_host, s.web_port, reuse_address=True).start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {s.web_host}:{s.web_port} (WEB_HOST, "
                               f"WEB_PORT): {exc.strerror or exc}") from None
        self.live.start()
        shown = s.web_host if ":" not in s.web_host else f"[{s.web_host}]"
        log.info("the page is on http://%s:%d/%s", shown, s.web_port,
                 " (read-only: WEB_HOST is not loopback)" if s.read_only else "")

    def heartbeat(self) -> Heartbeat:
        hub = getattr(self, "hub", None)
        if hub is not None:
            self.counters.update(hub.counters())
        return super().heartbeat()

    async def on_stop(self) -> None:
        live: Any = getattr(self, "live", None)
        if live is not None:
            await live.stop()
        runner: Any = getattr(self, "runner", None)
        if runner is not None:
            try:
                await asyncio.wait_for(runner.cleanup(), 1.0)
            except asyncio.TimeoutError:
                log.warning("the HTTP server did not close within 1 s")


def cli(args: argparse.Namespace) -> int:
    return run_service(Web)
