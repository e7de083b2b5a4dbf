"""`chillly sim`: the local TopstepX-compatible venue, one aiohttp server on one port.

aiohttp (already installed as a dependency of pysignalr) serves plain HTTP and WebSockets from
the same port and the same event loop, so the REST handlers, both SignalR hubs and the market
loop share state without locks or threads: a print is fed to the trading engine and then
fanned out to the hubs in one synchronous step, which is what keeps fills, hub events and
history in the same order a client would see on the live venue.

The sim is a `Service` like every process (heartbeats with its counters on the bus; when no
broker runs the heartbeats are simply dropped). Routes:
- /api/...                REST (sim/rest.py), GET /api/Status/ping
- /hubs/user, /hubs/market  + /negotiate (sim/hubs.py)
- /admin/faults, /admin/counters, /admin/state  (sim/admin.py; loopback tooling, no auth)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import datetime, timezone

from aiohttp import web

from chillly.clock import DAY_MS, Clock
from chillly.process import Service, StartupError, run_service
from sim.accounts import AccountConfig, parse_accounts
from sim.admin import Admin
from sim.auth import Claims, Tokens
from sim.contracts import Catalogue
from sim.faults import Faults
from sim.history import History
from sim.hubs import MarketHub, UserHub
from sim.market import Market
from sim.persistence import StateError, StateFile
from sim.prices import Drift, Tape
from sim.rest import Api
from sim.settings import SimSettings
from sim.trading import TradingEngine
from sim.trading_api import build_handlers

log = logging.getLogger("sim")

#: A market step covers at most this many nominal steps (SIM_TICK_INTERVAL_S of real time).
MAX_STEP_TICKS = 2
#: Behind the clock, the loop sleeps this share of a step's duration (at least MIN_YIELD_S)
#: before the next step, so the hubs and REST keep a fifth of it.
CATCH_UP_YIELD = 0.25
MIN_YIELD_S = 0.005
#: Warn when the market is this many real seconds' worth of market time behind the clock.
LAG_WARN_S = 1.0


def _history_start(now_ms: int, days: int) -> int:
    """The history horizon: UTC midnight `days` days before now."""
    start = now_ms - days * DAY_MS
    return start - start % DAY_MS


def engine_accounts(text: str) -> list[AccountConfig] | None:
    """SIM_ACCOUNTS parsed (None = the engine's default account)."""
    if not text.strip():
        return None
    try:
        return parse_accounts(text)
    except ValueError as exc:
        raise StartupError(f"bad setting SIM_ACCOUNTS: {exc}") from None


class Venue:
    """Every part of the sim, wired; owned by the service (and by in-process tests/benches)."""

    def __init__(self, settings: SimSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        now = clock.now_ms()
        self.faults = Faults(
            rest_fail_rate=settings.sim_fault_rest_fail_rate,
            rest_delay_ms=settings.sim_fault_rest_delay_ms,
            force_429=settings.sim_fault_force_429,
            drop_hubs_every_s=settings.sim_fault_drop_hubs_every_s)
        self.tokens = Tokens(clock, settings.sim_token_secret, settings.sim_token_lifetime_s)
        self.catalogue = Catalogue(clock, settings.sim_roots)
        self.tape = Tape(settings.sim_seed, settings.sim_always_open,
                         _history_start(now, settings.sim_history_days))
        self.history = History(self.tape, int(settings.sim_revise_after_final * 1000))
        self.market = Market(clock, self.catalogue, self.tape, self.history,
                             settings.sim_always_open, settings.sim_seed)
        self.market_hub = MarketHub(self.tokens, self.market, clock, settings.sim_hub_ping_s)
        self.user_hub = UserHub(self.tokens, settings.sim_hub_ping_s)
        self.api = Api(settings, clock, self.tokens, self.catalogue, self.history, self.faults,
                       on_logout=self._on_logout)
        self.engine = TradingEngine(clock, self.catalogue, self.market,
                                    emit=self.user_hub.broadcast,
                                    accounts=engine_accounts(settings.sim_accounts),
                                    bracket_mode=settings.sim_bracket_mode,
                                    enforce=settings.sim_enforce,
                                    sessions=not settings.sim_always_open,
                                    fill_model=settings.sim_fill_model)
        self.api.add_engine_handlers(build_handlers(self.engine))
        self.user_hub.accounts = self.engine.accounts
        self.state: StateFile | None = None
        path = settings.state_file
        if path is not None:
            self.state = StateFile(path, self.engine, self.tape)
            try:
                self.state.prepare()
                restored = self.state.load()
            except (OSError, StateError) as exc:
                raise StartupError(f"SIM_STATE_PATH: {exc}") from None
            self.api.after_trading = self.save_state
            log.info("trading state %s %s", "restored from" if restored else "kept in", path)
            if restored and self.engine.enforce != set(settings.sim_enforce):
                log.warning("enforcing %s as saved in %s (SIM_ENFORCE says %s)",
                            ",".join(sorted(self.engine.enforce)) or "none", path,
                            ",".join(sorted(settings.sim_enforce)) or "none")
        self.admin = Admin(self)
        self.counters: dict[str, int] = {"ticks": 0, "prints": 0, "engine_errors": 0,
                                         "hub_drops": 0, "catch_up_steps": 0,
                                         "market_lag_ms": 0}
        self.max_step_ms = max(1000, int(MAX_STEP_TICKS * settings.sim_tick_interval_s
                                         * clock.speed * 1000))
        self.lag_ms = 0     # market time the last step left undone (the market behind the clock)
        self._lag_warned = False

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        for hub, path in ((self.user_hub, "/hubs/user"), (self.market_hub, "/hubs/market")):
            app.router.add_post(path + "/negotiate", hub.negotiate)
            app.router.add_get(path, hub.websocket)
        self.admin.routes(app)
        app.router.add_route("*", "/api/{tail:.*}", self.api.handle)
        return app

    # ---- the market loop --------------------------------------------------------------------
    def tick(self) -> int:
        """One market step: prints to the engine first, then to the hubs. Returns print count.

        A step covers at most `max_step_ms` of market time (MAX_STEP_TICKS nominal steps). At
        a fast clock the busiest hours of the tape (US cash hours) can hold more prints than
        one core takes in real time; a step covering everything since the last one would then
        take longer each time, the event loop would stop answering (REST calls and pings
        timing out: `bench/sim.py` at CLOCK_SPEED=3600 failed to start that way) and never
        recover. Bounded, the market falls behind the clock instead (`lag_ms`, counter
        `market_lag_ms`), requests are answered between steps, and it catches up when the
        tape gets quieter."""
        clock_now = self.clock.now_ms()
        now = clock_now
        cursor = self.market.cursor_ms
        if cursor is not None and now - cursor > self.max_step_ms:
            now = cursor + self.max_step_ms
            self.counters["catch_up_steps"] += 1
        lagging = clock_now - now
        if lagging > LAG_WARN_S * 1000 * self.clock.speed and not self._lag_warned:
            self._lag_warned = True
            log.warning("market %.1f market s behind the clock: more prints than the CPU "
                        "takes at speed %g; catching up", lagging / 1000, self.clock.speed)
        elif self._lag_warned and not lagging:
            self._lag_warned = False
            log.info("market caught up with the clock")
        self.lag_ms = lagging
        self.counters["market_lag_ms"] = lagging
        engine = self.engine
        try:
            engine.on_clock(now)     # the day roll and the flat-by deadline come first
        except Exception:
            self.counters["engine_errors"] += 1
            log.exception("trading engine failed on the clock")
        updates = self.market.step(now)
        n = 0
        for up in updates:
            n += len(up.prints)
            cid = up.contract_id
            to_price = self.tape.to_price
            try:
                for t, p, size, _side in up.prints:
                    engine.on_trade(cid, to_price(cid, p), size, t)
                bid, ask = self.market.best_bid(cid), self.market.best_ask(cid)
                if bid is not None and ask is not None:
                    engine.on_quote(cid, bid, ask, up.prints[-1][0])
            except Exception:
                self.counters["engine_errors"] += 1
                log.exception("trading engine failed on %s", cid)
        self.market_hub.publish(updates)
        self.counters["ticks"] += 1
        self.counters["prints"] += n
        return n

    async def save_state(self) -> None:
        """Write the trading state when it changed (no-op without SIM_STATE_PATH)."""
        if self.state is not None:
            await self.state.save()

    def add_drift(self, contract_id: str, ticks: float, over_s: float,
                  volatility: float) -> Drift:
        """POST /admin/market: bend the contract family's prices from the next minute on."""
        drift = self.tape.add_drift(contract_id, ticks, over_s, volatility, self.clock.now_ms())
        self.engine.dirty = True
        log.info("drift on %s: %+g ticks over %gs, volatility x%g from %s", contract_id, ticks,
                 over_s, volatility, drift.start_minute)
        return drift

    # ---- faults -----------------------------------------------------------------------------
    def hubs(self) -> tuple[UserHub, MarketHub]:
        return self.user_hub, self.market_hub

    async def drop_hubs(self) -> int:
        n = 0
        for hub in self.hubs():
            n += len(hub.connections)
            if self.faults.drop_mode == "close":
                await hub.close_all("Connection closed with an error.", True)
            else:
                hub.abort_all()
        self.counters["hub_drops"] += 1
        return n

    async def expire_tokens(self) -> None:
        self.tokens.expire_all_now()
        if self.settings.sim_hub_close_on_expiry:
            for hub in self.hubs():
                await hub.close_expired()

    async def logout_all(self) -> int:
        """GatewayLogout on every connection, every token revoked, connections closed."""
        from sim.hubs import event
        n = 0
        for hub in self.hubs():
            n += len(hub.connections)
            hub.send_all(event("GatewayLogout", []))
        self.tokens.expire_all_now()
        for hub in self.hubs():
            await hub.close_all("The session was logged out.", False)
        return n

    def _on_logout(self, claims: Claims) -> None:
        """Auth/logout: the hub connections opened with that token go too."""
        for hub in self.hubs():
            for conn in list(hub.connections):
                if conn.claims.jti == claims.jti:
                    asyncio.get_running_loop().create_task(
                        conn.close("The session was logged out.", False))

    def all_counters(self) -> dict[str, int]:
        out = dict(self.counters)
        out.update({k: int(v) for k, v in self.api.counters.items()})
        for hub in self.hubs():
            out[f"{hub.name}_connections"] = len(hub.connections)
            for k, v in hub.counters.items():
                out[f"{hub.name}_{k}"] = v
        out["tokens_issued"] = self.tokens.issued
        for k, v in self.engine.counters.items():
            out[f"engine_{k}"] = v
        return out


class SimService(Service):
    name = "sim"
    settings_cls = SimSettings

    async def on_start(self) -> None:
        settings: SimSettings = self.settings  # type: ignore[assignment]
        self.venue = Venue(settings, self.clock)
        self.venue.market.start(self.clock.now_ms())
        self.runner = web.AppRunner(self.venue.app(), access_log=None, shutdown_timeout=0.5)
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
            await venue.save_state()
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


def main() -> int:
    return run_service(SimService)
