"""The sim's Topstep rules and its referee, on the pure engine (fake market, manual clock).

A 50K Combine: 5 lots (a micro counts 1/10), MLL allowance 2,000 trailing end of day and
locking at the starting balance, flat by 15:10 CT. Each rule at its boundary, enforced, and
the same case on a lax venue (nothing enforced) where only the referee notices.
"""

from __future__ import annotations

from chillly.clock import iso_to_ms
from sim.exchange.accounts import AccountConfig, parse_accounts
from sim.exchange.rules import resolve
from tests.unit.sim.exchange.engine_rig import ACCOUNT, ES, MES, Rig


def risk(rig: Rig) -> dict:
    r = rig.engine.risk(ACCOUNT)
    assert r is not None
    return r


def rules_of(rig: Rig) -> list[str]:
    return [b["rule"] for b in rig.engine.breaches()]


def rig_at(last: float = 6000.0, **kw) -> Rig:
    rig = Rig(**kw)
    rig.market_at(last)
    rig.market_at(last, MES)
    rig.take()
    return rig


def test_the_demo_account_is_a_50k_combine() -> None:
    r = risk(rig_at())
    assert (r["program"], r["size"], r["max_lots"], r["floor"]) == ("combine", "50k", 5, 48000.0)
    assert r["high_water"] == 50000.0 and r["can_trade"] is True and r["lots_in_use"] == 0


def test_max_position_at_its_boundary_micros_weigh_a_tenth() -> None:
    rig = rig_at()
    assert rig.place(type=2, side=0, size=4)["success"]
    for _ in range(10):
        assert rig.place(contract=MES, type=2, side=0, size=1)["success"]
    assert risk(rig)["lots_in_use"] == 5.0
    eleventh = rig.place(contract=MES, type=2, side=0, size=1)
    assert (eleventh["success"], eleventh["errorCode"]) == (False, 2)
    assert "maximum position" in eleventh["errorMessage"]
    fifth = rig.place(type=2, side=0, size=1)
    assert (fifth["success"], fifth["errorCode"]) == (False, 2)
    # reducing is always allowed, and then there is room again
    assert rig.place(type=2, side=1, size=1)["success"]
    assert rig.place(contract=MES, type=2, side=0, size=10)["success"]
    assert rules_of(rig) == []


def test_six_lots_from_flat_are_rejected_and_working_entries_count() -> None:
    rig = rig_at()
    r = rig.place(type=2, side=0, size=6)
    assert (r["success"], r["errorCode"]) == (False, 2)
    assert rig.order(r["orderId"])["status"] == 5
    assert rig.place(type=1, side=0, size=5, limitPrice=5990.0)["success"]   # working, 5 lots
    assert rig.place(type=1, side=0, size=1, limitPrice=5980.0)["errorCode"] == 2
    assert rig.place(type=1, side=1, size=1, limitPrice=6010.0)["success"]   # either side: 5


def test_a_lax_venue_fills_six_lots_and_the_referee_records_it() -> None:
    rig = rig_at(enforce=())
    assert rig.place(type=2, side=0, size=6)["success"]
    [breach] = rig.engine.breaches()
    assert breach["rule"] == "max_position" and breach["account"] == ACCOUNT
    assert breach["figures"] == {"lots": 6.0, "max_lots": 5, "contract": ES.id}
    assert breach["enforced"] is False and breach["iso"].endswith("Z")


def test_equity_through_the_floor_liquidates_and_locks_the_account() -> None:
    rig = rig_at()
    assert rig.place(type=2, side=0, size=2)["success"]      # long 2 at 6000.25, $100 a point
    rig.take()
    rig.market_at(5981.0)                                    # open P&L -1,925 -fees: above
    assert rig.positions() and rules_of(rig) == []
    rig.market_at(5980.0)                                    # bid 5980: -2,025 +: at the floor
    assert rig.positions() == []
    assert [o["status"] for o in rig.orders()][-1] == 2      # the closing market order
    r = risk(rig)
    assert r["can_trade"] is False and r["lost"] is True
    [breach] = rig.engine.breaches()
    assert breach["rule"] == "mll" and breach["enforced"] is True
    assert breach["figures"]["floor"] == 48000.0 and breach["figures"]["equity"] <= 48000.0
    assert breach["figures"]["lots"] == 2.0 and breach["figures"]["contract"] == ES.id
    names = [n for n, _ in rig.take()]
    assert names[-1] == "GatewayUserAccount"
    accounts = rig.call("/api/Account/search", {})["accounts"]
    assert accounts[0]["canTrade"] is False
    assert rig.place(type=2, side=0, size=1)["errorCode"] == 4


def test_a_lax_venue_records_the_mll_breach_once_and_keeps_the_position() -> None:
    rig = rig_at(enforce=())
    rig.place(type=2, side=0, size=2)
    rig.market_at(5970.0)
    rig.market_at(5960.0)
    assert rules_of(rig) == ["mll"] and rig.positions()
    assert risk(rig)["can_trade"] is True and risk(rig)["lost"] is True


def test_flat_by_1510_ct_liquidates_and_blocks_new_entries() -> None:
    t = iso_to_ms("2026-11-24T21:09:00Z")                   # Tuesday 15:09 CT
    rig = rig_at(sessions=True, t0=t)
    assert rig.place(type=2, side=0, size=1)["success"]
    assert rig.place(type=1, side=0, size=1, limitPrice=5900.0)["success"]
    rig.engine.on_clock(t + 30_000)
    assert rig.positions() != []                             # 15:09:30: not yet
    rig.clock.set(t + 60_000)
    rig.engine.on_clock(t + 60_000)                          # 15:10:00
    assert rig.positions() == []
    assert all(o["status"] in (2, 3) for o in rig.orders())
    [breach] = rig.engine.breaches()
    assert breach["rule"] == "flat_by" and breach["enforced"] is True
    r = rig.place(type=2, side=0, size=1)
    assert (r["success"], r["errorCode"]) == (False, 5)
    assert risk(rig)["can_trade"] is True                    # no lock: only flat


def test_the_floor_trails_only_at_1700_ct_and_stops_at_the_start() -> None:
    t = iso_to_ms("2026-11-24T15:00:00Z")                   # Tuesday 09:00 CT
    rig = rig_at(t0=t)

    def win(points: float) -> None:
        rig.market_at(6000.0)
        rig.place(type=2, side=0, size=1)
        rig.market_at(6000.0 + points)
        rig.call("/api/Position/closeContract", {"accountId": ACCOUNT, "contractId": ES.id})

    win(30.0)                                                # about +1,497
    assert risk(rig)["floor"] == 48000.0                     # intraday: unchanged
    day2 = iso_to_ms("2026-11-24T23:00:01Z")                 # 17:00:01 CT
    rig.clock.set(day2)
    rig.engine.on_clock(day2)
    r = risk(rig)
    assert r["eod_balances"] == [{"day": "2026-11-24", "balance": r["balance"]}]
    assert r["high_water"] == r["balance"] and r["floor"] == round(r["balance"] - 2000.0, 2)
    win(40.0)
    day3 = day2 + 86_400_000
    rig.clock.set(day3)
    rig.engine.on_clock(day3)
    r = risk(rig)
    assert r["balance"] > 52000.0 and r["floor"] == 50000.0  # locked at the starting balance
    assert len(r["eod_balances"]) == 2


def test_personal_daily_loss_limit_blocks_until_the_next_day() -> None:
    accounts = parse_accounts("1001:50KTC-V2-1-1001:50000:dll=500")
    rig = rig_at(accounts=accounts)
    rig.place(type=2, side=0, size=1)
    rig.market_at(5990.0)                                    # -512.5 open
    assert rig.positions() == []
    r = risk(rig)
    assert r["can_trade"] is False and r["blocked"] is True and r["lost"] is False
    assert rules_of(rig) == ["daily_loss"]
    assert rig.engine.breaches()[0]["figures"]["limit"] == 500.0
    next_day = iso_to_ms("2026-11-24T23:00:00Z")
    rig.clock.set(next_day)
    rig.engine.on_clock(next_day)
    assert risk(rig)["can_trade"] is True and risk(rig)["day_pnl"] == 0.0


def test_xfa_scaling_plan_sets_the_cap_from_the_previous_eod() -> None:
    cfg = AccountConfig(ACCOUNT, "XFA-1001", 0.0, program=resolve("xfa", "50k", 0.0))
    rig = rig_at(accounts=[cfg])
    r = risk(rig)
    assert (r["max_lots"], r["floor"]) == (2, -2000.0)
    assert rig.place(type=2, side=0, size=3)["errorCode"] == 2
    rig.place(type=2, side=0, size=2)
    rig.market_at(6016.0)
    rig.call("/api/Position/closeContract", {"accountId": ACCOUNT, "contractId": ES.id})
    day2 = iso_to_ms("2026-11-24T23:00:00Z")
    rig.clock.set(day2)
    rig.engine.on_clock(day2)
    r = risk(rig)
    assert 1500.0 <= r["balance"] < 2000.0 and r["max_lots"] == 3
    assert r["floor"] == 0.0 or r["floor"] == round(min(0.0, r["balance"] - 2000.0), 2)


def test_live_counts_micros_one_to_one() -> None:
    cfg = AccountConfig(ACCOUNT, "LIVE-1001", 50000.0,
                        program=resolve("live", "50k", 50000.0))
    rig = rig_at(accounts=[cfg])
    assert rig.place(contract=MES, type=2, side=0, size=5)["success"]
    assert rig.place(contract=MES, type=2, side=0, size=1)["errorCode"] == 2
    assert risk(rig)["daily_loss_limit"] == 2000.0


def test_holidays_and_early_closes_come_from_the_calendar() -> None:
    from chillly.clock import MINUTE_MS
    from sim.market.tape import Tape

    tape = Tape(7110, always_open=False)
    christmas = iso_to_ms("2026-12-25T16:00:00Z") // MINUTE_MS     # Friday 10:00 CT: closed
    assert tape.prints(ES.id, christmas) == []
    early = iso_to_ms("2026-11-27T17:59:00Z") // MINUTE_MS         # 11:59 CT before a 12:00 close
    assert tape.prints(ES.id, early) and tape.prints(ES.id, early + 1) == []
    # the flat-by deadline of an early close is 50 minutes before it: 11:10 CT
    t = iso_to_ms("2026-11-27T17:09:00Z")
    rig = rig_at(sessions=True, t0=t)
    assert rig.place(type=2, side=0, size=1)["success"]
    rig.clock.set(t + 60_000)
    rig.engine.on_clock(t + 60_000)
    assert rig.positions() == [] and rules_of(rig) == ["flat_by"]
    # the early-close day records its end-of-day balance; Thanksgiving (no session) none
    rig.clock.set(iso_to_ms("2026-11-27T23:00:00Z"))
    rig.engine.on_clock(rig.clock.now_ms())
    assert [e["day"] for e in risk(rig)["eod_balances"]] == ["2026-11-27"]
    thanksgiving = rig_at(sessions=True, t0=iso_to_ms("2026-11-26T16:00:00Z"))
    thanksgiving.clock.set(iso_to_ms("2026-11-26T23:00:00Z"))
    thanksgiving.engine.on_clock(thanksgiving.clock.now_ms())
    assert risk(thanksgiving)["eod_balances"] == []
    assert risk(thanksgiving)["trading_day"] == "2026-11-27"


def lose_at_the_floor(rig: Rig) -> None:
    assert rig.place(type=2, side=0, size=2)["success"]
    rig.market_at(5980.0)                                    # bid 5980: at the floor
    assert risk(rig)["lost"] is True and rig.place(type=2, side=0, size=1)["errorCode"] == 4


def test_an_account_lost_at_its_floor_trades_again_after_a_reset() -> None:
    rig = rig_at()
    lose_at_the_floor(rig)
    assert rig.balance() < 48000.0 and rules_of(rig) == ["mll"]
    rig.take()
    r = rig.engine.reset_account(ACCOUNT)
    assert r is not None
    assert (r["balance"], r["floor"], r["high_water"]) == (50000.0, 48000.0, 50000.0)
    assert (r["lost"], r["blocked"], r["can_trade"], r["breaches"]) == (False, False, True, 0)
    assert r["eod_balances"] == [] and r["day_pnl"] == 0.0 and r["lots_in_use"] == 0
    assert rig.engine.breaches() == []
    [(name, event)] = rig.take()
    assert name == "GatewayUserAccount" and event["data"]["canTrade"] is True
    assert event["data"]["balance"] == 50000.0
    rig.market_at(6000.0)
    assert rig.place(type=2, side=0, size=1)["success"]
    assert rig.positions()[0]["size"] == 1
    # the floor holds again for the fresh account, and is enforced again
    rig.market_at(5959.0)
    assert risk(rig)["lost"] is True and rules_of(rig) == ["mll"]


def test_a_reset_flattens_cancels_and_forgets_the_eod_history() -> None:
    t = iso_to_ms("2026-11-24T15:00:00Z")
    rig = rig_at(t0=t)
    assert rig.place(type=2, side=0, size=1)["success"]
    rig.market_at(6040.0)
    rig.call("/api/Position/closeContract", {"accountId": ACCOUNT, "contractId": ES.id})
    assert rig.place(type=2, side=0, size=1)["success"]      # a position left open
    day2 = iso_to_ms("2026-11-24T23:00:01Z")                 # 17:00 CT: an EOD above the start
    rig.clock.set(day2)
    rig.engine.on_clock(day2)
    assert risk(rig)["eod_balances"] and risk(rig)["floor"] > 48000.0
    working = rig.place(type=1, side=0, size=1, limitPrice=5900.0)["orderId"]
    r = rig.engine.reset_account(ACCOUNT, balance=51000.0)
    assert r is not None and rig.positions() == []           # closed at market
    assert rig.trades()[-1]["profitAndLoss"] is not None
    assert rig.order(working)["status"] == 3                 # cancelled
    assert r["balance"] == 51000.0 and r["eod_balances"] == []
    assert r["high_water"] == 51000.0 and r["floor"] == 49000.0   # a fresh 50K at 51,000
    assert rig.engine.counters["resets"] == 1
    assert rig.engine.reset_account(9999) is None


def test_a_reset_with_the_market_closed_drops_the_position_without_a_trade() -> None:
    rig = rig_at()
    assert rig.place(type=2, side=0, size=1)["success"]
    trades = len(rig.trades())
    rig.market.open = False
    rig.take()
    assert rig.engine.reset_account(ACCOUNT) is not None
    assert rig.positions() == [] and len(rig.trades()) == trades
    events = rig.take()
    assert [n for n, _ in events] == ["GatewayUserPosition", "GatewayUserAccount"]
    assert events[0][1]["action"] == 2 and events[0][1]["data"]["size"] == 0
