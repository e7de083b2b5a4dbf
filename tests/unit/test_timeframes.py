"""chillly/timeframes.py: the one timeframe parser, the one bar validation (defects 16, 17), and
the shared bucket settings (defect 2: market hours and the session anchor)."""

from __future__ import annotations

import math
from datetime import datetime, time, timezone

import pytest

from chillly.clock import DAY_MS, HOUR_MS, MINUTE_MS, ManualClock
from chillly.messages import Bar
from chillly.timeframes import (
    MAX_VOLUME, BucketSpec, TimeframeSettings, bar_problem, is_tf, parse_tf, row_problem, tf_ms,
)
from trading.aggregator import BarAggregator
from feeds.aggregator_process import AggregatorSettings
from feeds.bars import closing_buckets
from feeds.settings import FeedSettings
from topstepx.client import UNIT_DAY, UNIT_HOUR, UNIT_MINUTE, tf_to_unit

C = "CON.F.US.EP.Z26"
NOW = int(datetime(2026, 1, 14, 15, tzinfo=timezone.utc).timestamp() * 1000)


def good() -> dict:
    return Bar(contract=C, tf="1m", t=NOW - MINUTE_MS, o=100.0, h=101.0, l=99.0, c=100.5,
               volume=10, final=True, rev=1).body()


def test_one_parser_for_every_timeframe_user() -> None:
    assert parse_tf("5m") == (5, "m") and parse_tf("4h") == (4, "h") and parse_tf("1d") == (1, "d")
    assert tf_ms("90m") == 90 * MINUTE_MS and tf_ms("1d") == DAY_MS
    for bad in ("0m", "5x", "2d", "25h", "m", "", "05m5", " 5m"):
        assert not is_tf(bad), bad
    # The venue mapping and the feed settings use it (they parsed on their own before).
    assert tf_to_unit("15m") == (UNIT_MINUTE, 15) and tf_to_unit("2h") == (UNIT_HOUR, 2)
    assert tf_to_unit("1d") == (UNIT_DAY, 1)
    with pytest.raises(ValueError):
        tf_to_unit("25h")        # accepted by the old venue-side parser
    with pytest.raises(ValueError):
        FeedSettings(feed_clock_timeframes="1m,0m")   # accepted by the old _TF_RE


@pytest.mark.parametrize("change, why", [
    ({"o": math.nan}, "finite"), ({"h": math.inf}, "finite"), ({"l": -math.inf}, "finite"),
    ({"c": math.nan}, "finite"),
    ({"volume": 2**63}, "volume"), ({"volume": MAX_VOLUME + 1}, "volume"),
    ({"volume": -1}, "volume"),
    ({"o": 102.0}, "outside"), ({"c": 98.0}, "outside"),
    ({"l": -1.0, "o": -0.5, "c": -0.5}, "negative"),
    ({"l": 102.0}, "low above high"),
    ({"rev": 2**63}, "rev"), ({"rev": -1}, "rev"),
    ({"t": NOW + 1}, "minute"), ({"t": -MINUTE_MS}, "minute"),
    ({"tf": "7x"}, "timeframe"),
])
def test_bar_problem_rejects_what_cannot_be_stored_or_aggregated(change: dict, why: str) -> None:
    assert bar_problem(good(), NOW, 0) is None
    problem = bar_problem({**good(), **change}, NOW, 0)
    assert problem is not None and why in problem, problem


def test_a_bar_dated_beyond_market_time_plus_the_tolerance_is_rejected() -> None:
    ahead = {**good(), "t": NOW + 10 * DAY_MS}
    assert "future" in (bar_problem(ahead, NOW, 120_000) or "")
    near = {**good(), "t": NOW + 2 * MINUTE_MS}
    assert bar_problem(near, NOW, 120_000) is None          # within the tolerance
    assert "future" in (bar_problem(near, NOW, 60_000) or "")
    assert bar_problem(ahead) is None                         # no clock given: not judged
    assert TimeframeSettings().future_ms == 120_000
    assert TimeframeSettings(bar_future_tolerance=5).future_ms == 5_000


def test_row_problem_applies_the_same_checks_to_history_rows() -> None:
    t = NOW - MINUTE_MS
    assert row_problem([t, 100.0, 101.0, 99.0, 100.5, 10], NOW, 0) is None
    assert row_problem([t, 100.0, 101.0, 99.0, 100.5, 2**63], NOW, 0) is not None
    assert row_problem([t, math.nan, 101.0, 99.0, 100.5, 10], NOW, 0) is not None
    assert row_problem([t, 100.0, 101.0, 99.0, 102.0, 10], NOW, 0) is not None
    assert row_problem([NOW + DAY_MS, 100.0, 101.0, 99.0, 100.5, 10], NOW, 0) is not None
    assert row_problem([t, 100.0, 101.0, 99.0, 100.5], NOW, 0) is not None
    assert row_problem([t, "1", 101.0, 99.0, 100.5, 10], NOW, 0) is not None


def _run_day(spec: BucketSpec) -> list[Bar]:
    """Every minute of one always-open session (17:00 CT to 17:00 CT) through the core."""
    out: list[Bar] = []
    clock = ManualClock(0)
    agg = BarAggregator(C, spec, lambda b, resend: out.append(b), clock)
    start, end = spec.bounds(NOW)
    for t in range(start, end, MINUTE_MS):
        clock.set(t + MINUTE_MS)
        agg.handle_bar(Bar(contract=C, tf="1m", t=t, o=100.0, h=101.0, l=99.0, c=100.0,
                           volume=1, final=True))
    return [b for b in out if b.final and b.t == start]


def test_always_open_hours_make_daily_and_4h_buckets_final_once_at_their_real_end() -> None:
    always = AggregatorSettings(feed_market_hours="always")
    by_tf = {s.tf: s for s in always.specs()}
    finals = _run_day(by_tf["1d"])
    # CME hours would finish the day at 15:59 CT and then revise it 60 times.
    assert len(finals) == 1 and finals[0].volume == 24 * 60
    cme = {s.tf: s for s in AggregatorSettings(feed_market_hours="cme").specs()}
    assert len(_run_day(cme["1d"])) > 1   # why the setting matters on an always-open venue
    four = [b for b in _run_day(by_tf["4h"])]
    assert len(four) == 1


def test_clock_ticks_follow_the_configured_session_anchor() -> None:
    s = FeedSettings(aggregator_session_open="18:00", feed_market_hours="always")
    spec = s.spec("4h")
    assert spec.session_open == time(18, 0) and not spec.use_calendar
    start, end = spec.bounds(NOW)
    last_minute = end - MINUTE_MS
    got = closing_buckets(["4h"], last_minute, lambda ms: True, s.spec)
    assert got == [("4h", start)]
    # 18:00 CT anchoring: a 4h bucket starts at 18:00, 22:00, 02:00 ... CT, never at 17:00.
    assert (start - s.spec("1d").bounds(NOW)[0]) % (4 * HOUR_MS) == 0
    assert closing_buckets(["4h"], last_minute, lambda ms: True) == []  # 17:00 anchor: no tick


def test_the_tools_parse_tf_with_the_same_parser() -> None:
    import argparse

    from feeds.bars import add_backfill_arguments
    from store.cli import add_arguments

    for add in (add_arguments, add_backfill_arguments):
        p = argparse.ArgumentParser()
        add(p)
        assert p.parse_args(["ES", "--tf", "4h"]).tf == "4h"
        with pytest.raises(SystemExit) as exc:
            p.parse_args(["ES", "--tf", "25h"])
        assert exc.value.code == 2
