"""`chillly sim`: the local TopstepX-compatible venue, one aiohttp server on one port.

aiohttp (already installed as a dependency of pysignalr) serves plain HTTP and WebSockets from
the same port and the same event loop, so the REST handlers, both SignalR hubs and the market
loop share state without locks or threads: a print is fed to the trading engine and then
fanned out to the hubs in one synchronous step (sim/venue.py wires the parts and runs the
step), which is what keeps fills, hub events and history in the same order a client would see
on the live venue.

The sim is a `Service` like every process (heartbeats with its counters on the bus; when no
broker runs the heartbeats are simply dropped). Routes:
- /api/...                REST (sim/api/rest.py), GET /api/Status/ping
- /hubs/user, /hubs/market  + /negotiate (sim/api/hubs.py)
- /admin/...  (sim/api/admin.py; loopback tooling, no auth)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import datetime, timezone

from aiohttp import web

from chillly.process import Service, StartupError, run_service
from sim.api.app import build_app
from sim.settings import SimSettings
from sim.venue import Venue

log = logging.getLogger("sim")

#: Behind the clock, the loop sleeps this share of a step's duration (at least MIN_YIELD_S)
#: before the next step, so the hubs and REST keep a fifth of it.
CATCH_UP_YIELD = 0.25
MIN_YIELD_S = 0.005


class SimService(Service):
    name = "sim"
    settings_cls = SimSettings

    async def on_start(self) -> None:
        settings: SimSettings = self.settings  # type: ignore[assignment]
        self.venue = Venue(settings, self.clock)
        self.venue.market.start(self.clock.now_ms())
        self.runner = web.AppRunner(build_app(self.venue), access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, settings.sim_host, settings.sim_port,
                           reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            raise StartupError(f"cannot listen on {settings.sim_host}:{settings.sim_port}: "
                               f"{exc.strerror or exc}") from None
        now = datetime.fromtimestamp(self.clock.now_ms() / 1000, tz=timezone.utc)
        log.info("venue on http://%s:%d (market time %s, speed %g, seed %d, %s)",
                 settings.sim_host, settings.sim_port, now.isoformat(timespec="seconds"),
                 self.clock.speed, settings.sim_seed,
                 "always open" if settings.sim_always_open else "CME hours")

    async def run(self) -> None:
        await asyncio.gather(self._market_loop(), self._housekeeping())

    async def _market_loop(self) -> None:
        interval = self.settings.sim_tick_interval_s  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                self.venue.tick()
            except Exception:
                log.exception("market step failed")
            try:
                await self.venue.save_state()     # fills made by the market, within one step
            except OSError:
                log.exception("saving the trading state failed")
            self.counters.update(self.venue.all_counters())
            elapsed = loop.time() - started
            if self.venue.lag_ms:
                # Behind the clock: the next step soon, but the hubs' writers and the REST
                # handlers get a share of the loop first (a bare sleep(0) runs one callback
                # each, and a hub write or a request needs several to finish).
                await asyncio.sleep(max(MIN_YIELD_S, elapsed * CATCH_UP_YIELD))
            else:
                await asyncio.sleep(max(0.0, interval - elapsed))

    async def _housekeeping(self) -> None:
        """Hub pings, periodic drop faults, closing expired hub sessions: once a second."""
        loop = asyncio.get_running_loop()
        settings: SimSettings = self.settings  # type: ignore[assignment]
        last_ping = last_drop = loop.time()
        while True:
            await asyncio.sleep(0.25)
            now = loop.time()
            if now - last_ping >= settings.sim_hub_ping_s:
                for hub in self.venue.hubs():
                    hub.ping()
                last_ping = now
            every = self.venue.faults.drop_hubs_every_s
            if every > 0 and now - last_drop >= every:
                last_drop = now
                await self.venue.drop_hubs()
            elif every <= 0:
                last_drop = now
            if settings.sim_hub_close_on_expiry:
                for hub in self.venue.hubs():
                    await hub.close_expired()

    async def on_stop(self) -> None:
        venue = getattr(self, "venue", None)
        if venue is None:
            return
        try:
            await asyncio.wait_for(asyncio.gather(
                *(hub.close_all() for hub in venue.hubs()), return_exceptions=True), 0.5)
        except asyncio.TimeoutError:
            for hub in venue.hubs():
                hub.abort_all()
        await self.runner.cleanup()
        try:
            await venue.save_state(stopping=True)
        except OSError:
            log.exception("saving the trading state failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (SIM_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (SIM_PORT, default 7110)")
    parser.add_argument("--seed", type=int, help="price process seed (SIM_SEED)")
    parser.add_argument("--history-days", type=int, help="days of history (SIM_HISTORY_DAYS)")
    parser.add_argument("--always-open", action="store_true", default=None,
                        help="ignore CME hours: the market never closes (SIM_ALWAYS_OPEN)")
    parser.add_argument("--username", help="required userName (SIM_USERNAME; empty = demo)")
    parser.add_argument("--api-key", help="required apiKey (SIM_API_KEY; empty = demo)")
    parser.add_argument("--token-lifetime", type=float,
                        help="token lifetime in market seconds (SIM_TOKEN_LIFETIME_S)")
    parser.add_argument("--accounts",
                        help="accounts id:name[:balance[:flags]],... (SIM_ACCOUNTS)")
    parser.add_argument("--state-path",
                        help="keep the trading state in this file across restarts, 'auto' = "
                             "RUN_DIR/sim/sim-state.json (SIM_STATE_PATH; default in memory)")
    parser.add_argument("--fill-model", choices=("prints", "touch"),
                        help="how resting limits fill (SIM_FILL_MODEL, default prints)")
    parser.add_argument("--enforce",
                        help="Topstep rules enforced: max_position,mll,flat_by,daily_loss, "
                             "all or none (SIM_ENFORCE, default all)")
    parser.add_argument("--bracket-mode", choices=("auto_oco", "position"),
                        help="bracket mode of the default account (SIM_BRACKET_MODE)")
    parser.add_argument("--fault-drop-hubs-every", type=float,
                        help="drop hub connections every N seconds (SIM_FAULT_DROP_HUBS_EVERY_S)")
    parser.add_argument("--fault-rest-fail-rate", type=float,
                        help="fraction of REST calls answered 500 (SIM_FAULT_REST_FAIL_RATE)")
    parser.add_argument("--fault-rest-delay-ms", type=int,
                        help="delay added to REST calls (SIM_FAULT_REST_DELAY_MS)")
    parser.add_argument("--fault-force-429", action="store_true", default=None,
                        help="answer every REST call 429 (SIM_FAULT_FORCE_429)")


_OPTION_TO_SETTING = {
    "host": "sim_host", "port": "sim_port", "seed": "sim_seed",
    "history_days": "sim_history_days", "always_open": "sim_always_open",
    "username": "sim_username", "api_key": "sim_api_key",
    "token_lifetime": "sim_token_lifetime_s", "bracket_mode": "sim_bracket_mode",
    "accounts": "sim_accounts", "enforce": "sim_enforce", "fill_model": "sim_fill_model",
    "state_path": "sim_state_path",
    "fault_drop_hubs_every": "sim_fault_drop_hubs_every_s",
    "fault_rest_fail_rate": "sim_fault_rest_fail_rate",
    "fault_rest_delay_ms": "sim_fault_rest_delay_ms", "fault_force_429": "sim_fault_force_429",
}


def cli(args: argparse.Namespace) -> int:
    overrides = {setting: getattr(args, option) for option, setting in _OPTION_TO_SETTING.items()
                 if getattr(args, option, None) is not None}
    return run_service(SimService, **overrides)
