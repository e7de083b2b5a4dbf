"""The sim's catalogue: TopstepX ids, tick data, front months from the sim date."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chillly.clock import ManualClock
from sim.market.contracts import Catalogue, parse_id, third_friday


def at(text: str) -> Catalogue:
    ms = int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)
    return Catalogue(ManualClock(ms))


def test_front_months_follow_the_sim_date() -> None:
    cat = at("2026-11-24T12:00:00")
    fronts = {c.symbol: c.id for c in cat.front()}
    assert fronts == {
        "ES": "CON.F.US.EP.Z26", "NQ": "CON.F.US.ENQ.Z26", "MES": "CON.F.US.MES.Z26",
        "MNQ": "CON.F.US.MNQ.Z26", "RTY": "CON.F.US.RTY.Z26", "YM": "CON.F.US.YM.Z26",
        "CL": "CON.F.US.CLE.F27", "GC": "CON.F.US.GCE.Z26", "6E": "CON.F.US.EU6.Z26"}


def test_quarterly_roots_roll_eight_days_before_the_third_friday() -> None:
    assert third_friday(2026, 12).isoformat() == "2026-12-18"
    assert at("2026-12-09T23:00:00").get("CON.F.US.EP.Z26").active  # type: ignore[union-attr]
    assert {c.id for c in at("2026-12-10T00:00:00").front()} >= {"CON.F.US.EP.H27"}


def test_monthly_crude_and_bimonthly_gold_roll() -> None:
    fronts = {c.symbol: c.id for c in at("2026-11-19T23:00:00").front()}
    assert fronts["CL"] == "CON.F.US.CLE.Z26"
    fronts = {c.symbol: c.id for c in at("2026-11-20T00:00:00").front()}
    assert fronts["CL"] == "CON.F.US.CLE.F27"
    fronts = {c.symbol: c.id for c in at("2026-11-25T00:00:00").front()}
    assert fronts["GC"] == "CON.F.US.GCE.G27"


def test_contract_model_matches_the_venue() -> None:
    es = at("2026-11-24T12:00:00").get("CON.F.US.EP.Z26")
    assert es is not None
    assert es.to_api() == {"id": "CON.F.US.EP.Z26", "name": "ESZ6",
                           "description": "E-mini S&P 500: December 2026", "tickSize": 0.25,
                           "tickValue": 12.5, "activeContract": True, "symbolId": "F.US.EP"}
    cat = at("2026-11-24T12:00:00")
    ticks = {c.symbol: (c.tick_size, c.tick_value) for c in cat.front()}
    assert ticks["NQ"] == (0.25, 5.0) and ticks["MNQ"] == (0.25, 0.5)
    assert ticks["MES"] == (0.25, 1.25) and ticks["RTY"] == (0.1, 5.0)
    assert ticks["YM"] == (1.0, 5.0) and ticks["CL"] == (0.01, 10.0)
    assert ticks["GC"] == (0.1, 10.0) and ticks["6E"] == (0.00005, 6.25)
    six_e = cat.get("CON.F.US.EU6.Z26")
    assert six_e is not None and six_e.name == "6EZ6"


def test_back_month_is_listed_inactive_and_old_months_resolve() -> None:
    cat = at("2026-11-24T12:00:00")
    back = cat.get("CON.F.US.EP.H27")
    assert back is not None and not back.active and back in cat.all()
    old = cat.get("CON.F.US.ENQ.H25")
    assert old is not None and not old.active and old.name == "NQH5"
    for bad in ("CON.F.US.EP.F27", "CON.F.US.XX.Z26", "ES", "CON.F.US.EP.Z40", ""):
        assert cat.get(bad) is None


@pytest.mark.parametrize("text,expect", [
    ("NQ", {"NQZ6", "MNQZ6"}),
    ("es", {"ESZ6", "MESZ6"}),
    ("crude", {"CLF7"}),
])
def test_search_is_a_case_insensitive_substring_match(text: str, expect: set[str]) -> None:
    assert {c.name for c in at("2026-11-24T12:00:00").search(text)} == expect


def test_search_caps_at_twenty() -> None:
    assert len(at("2026-11-24T12:00:00").search("")) == 9
    assert parse_id("CON.F.US.MNQ.H26") == ("MNQ", 2026, 3)


def test_search_lists_the_outgoing_month_only_inside_its_roll_window() -> None:
    def es(when: str) -> list[tuple[str, bool]]:
        return [(c.name, c.active) for c in at(when).search("E-mini S&P")
                if c.symbol == "ES"]

    assert es("2026-12-09T23:59:59") == [("ESZ6", True)]                  # before the roll
    assert es("2026-12-10T00:00:00") == [("ESH7", True), ("ESZ6", False)]  # roll date
    assert es("2026-12-18T12:00:00") == [("ESH7", True), ("ESZ6", False)]  # expiry day
    assert es("2026-12-19T00:00:00") == [("ESH7", True)]                  # expired
    cat = at("2026-12-12T00:00:00")
    assert cat.get("CON.F.US.EP.Z26") in cat.all()                          # still streamed
    place = cat.get("CON.F.US.EP.Z26")
    assert place is not None and not place.active
