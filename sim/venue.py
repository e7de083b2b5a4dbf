"""Every part of the sim wired together (`Venue`), and its market step.

The sim service (sim/server.py) owns one Venue and runs its loops; in-process tests and benches
may build one on a ManualClock. The parts, by concept: its market (sim/market/: the tape, its
history, the live market), its exchange (sim/exchange/: the trading engine, with its accounts,
rules and referee), its API surface (sim/api/: both hubs, REST with auth, rate limits and
faults; sim/api/app.py puts them and the admin endpoint on one application) and, with
SIM_STATE_PATH, the state file (sim/persistence.py). A market step
feeds the prints to the engine first and then to the hubs, in one synchronous step, which is
what keeps fills, hub events and history in the same order a client would see on the venue.
"""

from __future__ import annotations

import asyncio
import logging

from chillly.clock import DAY_MS, Clock
from chillly.process import StartupError
from sim.exchange.accounts import AccountConfig, parse_accounts
from sim.api.auth import Claims, Tokens
from sim.market.contracts import Catalogue
from sim.api.faults import Faults
from sim.market.history import History
from sim.api.hubs import MarketHub, UserHub
from sim.market.live import Market
from sim.persistence import StateError, StateFile
from sim.market.tape import Drift, Tape
from sim.api.rest import Api
from sim.settings import SimSettings
from sim.exchange.engine import TradingEngine
from sim.api.trading import build_handlers

log = logging.getLogger("sim")

#: A market step covers at most this many nominal steps (SIM_TICK_INTERVAL_S of real time).
MAX_STEP_TICKS = 2
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
        self.counters: dict[str, int] = {"ticks": 0, "prints": 0, "engine_errors": 0,
                                         "hub_drops": 0, "catch_up_steps": 0,
                                         "market_lag_ms": 0}
        self.max_step_ms = max(1000, int(MAX_STEP_TICKS * settings.sim_tick_interval_s
                                         * clock.speed * 1000))
        self.lag_ms = 0     # market time the last step left undone (the market behind the clock)
        self._lag_warned = False

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

    async def save_state(self, stopping: bool = False) -> None:
        """Write the trading state when it changed (no-op without SIM_STATE_PATH). `stopping`:
        write it whatever changed, so the state says the market time the sim stopped at, not
        that of its last change (a restart must not go back before either)."""
        if self.state is not None:
            if stopping:
                self.engine.dirty = True
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
        from sim.api.hubs import event
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


