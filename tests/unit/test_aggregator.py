"""The aggregator core: bucket alignment, partial/final/revision emission, recovery."""

from __future__ import annotations

from datetime import datetime, time, timezone

import pytest

from chillly.clock import HOUR_MS, MINUTE_MS, ManualClock
from chillly.messages import Bar
from chillly.timeframes import BucketSpec, bar_problem, tf_ms
from trading.aggregator import Aggregators, BarAggregator, aggregate

C = "CON.F.US.EP.Z26"


def ms(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=timezone.utc).timestamp() * 1000)


def bar(t: int, price: float = 100.0, volume: int = 1, **kw: object) -> Bar:
    fields = dict(contract=C, tf="1m", t=t, o=price, h=price + 1, l=price - 1, c=price + 0.5,
                  volume=volume, final=True, rev=0, origin="poll")
    fields.update(kw)
    return Bar(**fields)  # type: ignore[arg-type]


class Sink:
    def __init__(self) -> None:
        self.bars: list[Bar] = []
        self.resent: list[Bar] = []

    def __call__(self, b: Bar, resend: bool) -> None:
        (self.resent if resend else self.bars).append(b)

    def finals(self) -> list[Bar]:
        return [b for b in self.bars if b.final]


def make(tf: str, clock: ManualClock | None = None, **kw: object) -> tuple[BarAggregator, Sink]:
    sink = Sink()
    agg = BarAggregator(C, BucketSpec.of(tf), sink, clock or ManualClock(0), **kw)  # type: ignore[arg-type]
    return agg, sink


def test_timeframe_strings() -> None:
    assert tf_ms("5m") == 5 * MINUTE_MS
    assert tf_ms("4h") == 4 * HOUR_MS
    assert tf_ms("1d") == 24 * HOUR_MS
    for bad in ("0m", "5", "1.5h", "2d", "25h", "m5", ""):
        with pytest.raises(ValueError):
            tf_ms(bad)
    with pytest.raises(ValueError):
        BucketSpec.of("1m")


def test_minute_buckets_align_to_the_utc_hour() -> None:
    spec = BucketSpec.of("15m")
    assert spec.bounds(ms(2026, 1, 14, 15, 44)) == (ms(2026, 1, 14, 15, 30), ms(2026, 1, 14, 15, 45))
    assert BucketSpec.of("1h").bounds(ms(2026, 1, 14, 15, 59)) == (ms(2026, 1, 14, 15),
                                                                    ms(2026, 1, 14, 16))


def test_partial_on_every_bar_and_final_with_the_last_minute() -> None:
    agg, sink = make("5m")
    t0 = ms(2026, 1, 14, 15)
    for i in range(5):
        agg.handle_bar(bar(t0 + i * MINUTE_MS, 100 + i, volume=10))
    assert [b.final for b in sink.bars] == [False] * 4 + [True]
    assert [b.rev for b in sink.bars] == [0, 1, 2, 3, 4]
    last = sink.bars[-1]
    assert (last.t, last.o, last.h, last.l, last.c, last.volume) == (t0, 100, 105, 99, 104.5, 50)
    assert last.origin == "agg" and last.tf == "5m"


def test_a_later_bucket_finishes_an_earlier_one_with_a_missing_minute() -> None:
    agg, sink = make("5m")
    t0 = ms(2026, 1, 14, 15)
    agg.handle_bar(bar(t0))
    agg.handle_bar(bar(t0 + 2 * MINUTE_MS))          # minutes 3 and 4 never traded
    agg.handle_bar(bar(t0 + 5 * MINUTE_MS))
    finals = sink.finals()
    assert [(b.t, b.volume) for b in finals] == [(t0, 2)]
    assert sink.bars[-1].t == t0 + 5 * MINUTE_MS and not sink.bars[-1].final


def test_the_clock_finishes_a_bucket_after_the_grace() -> None:
    clock = ManualClock(0)
    agg, sink = make("5m", clock, grace_ms=MINUTE_MS)
    t0 = ms(2026, 1, 14, 15)
    clock.set(t0 + MINUTE_MS)
    agg.handle_bar(bar(t0))
    agg.on_time(t0 + 5 * MINUTE_MS)
    assert not sink.finals()
    agg.on_time(t0 + 6 * MINUTE_MS)
    assert [b.t for b in sink.finals()] == [t0]


def test_duplicate_bar_emits_nothing_and_late_revision_bumps_rev() -> None:
    agg, sink = make("5m")
    t0 = ms(2026, 1, 14, 15)
    for i in range(5):
        agg.handle_bar(bar(t0 + i * MINUTE_MS, volume=10))
    n = len(sink.bars)
    agg.handle_bar(bar(t0 + 2 * MINUTE_MS, volume=10))   # re-sent, identical
    assert len(sink.bars) == n
    agg.handle_bar(bar(t0 + 2 * MINUTE_MS, volume=13))   # venue corrected the minute
    rev = sink.bars[-1]
    assert rev.final and rev.rev == 5 and rev.volume == 53
    assert len(sink.finals()) == 2 and sink.finals()[0].volume == 50


def test_daily_bar_is_session_anchored_and_final_at_the_halt() -> None:
    agg, sink = make("1d")
    # Wednesday 2026-01-14 (CST): the session opened Tuesday 17:00 CT = 23:00 UTC.
    agg.handle_bar(bar(ms(2026, 1, 13, 23), volume=5))
    agg.handle_bar(bar(ms(2026, 1, 14, 21, 59), volume=7))   # 15:59 CT, the last minute
    final = sink.finals()
    assert [(b.t, b.volume) for b in final] == [(ms(2026, 1, 13, 23), 12)]


@pytest.mark.parametrize("when,open_utc", [
    (ms(2026, 3, 6, 15), ms(2026, 3, 5, 23)),     # Friday before the March change: CST
    (ms(2026, 3, 9, 15), ms(2026, 3, 8, 22)),     # Monday after it: Sunday 17:00 CDT
    (ms(2026, 10, 30, 15), ms(2026, 10, 29, 22)),  # Friday before the November change: CDT
    (ms(2026, 11, 2, 15), ms(2026, 11, 1, 23)),   # Monday after it: Sunday 17:00 CST
])
def test_session_buckets_across_both_dst_changes(when: int, open_utc: int) -> None:
    day = BucketSpec.of("1d")
    start, end = day.bounds(when)
    assert start == open_utc
    four = BucketSpec.of("4h")
    s4, e4 = four.bounds(when)
    assert (s4 - open_utc) % (4 * HOUR_MS) == 0 and s4 <= when < e4 and e4 <= end


def test_weekend_is_skipped_and_friday_session_closes_at_16_ct() -> None:
    agg, sink = make("4h")
    fri_last = ms(2026, 1, 16, 21, 59)      # Friday 15:59 CT
    sun_open = ms(2026, 1, 18, 23)          # Sunday 17:00 CT
    agg.covered_from = ms(2026, 1, 16, 19)  # as if every minute of the bucket was seen
    agg.handle_bar(bar(fri_last - 30 * MINUTE_MS))
    agg.handle_bar(bar(fri_last))
    assert [b.t for b in sink.finals()] == [ms(2026, 1, 16, 19)]   # 13:00 CT bucket
    agg.handle_bar(bar(sun_open))
    assert sink.bars[-1].t == sun_open and not sink.bars[-1].final
    day = BucketSpec.of("1d")
    assert day.bounds(sun_open)[0] == sun_open
    assert day.bounds(fri_last)[1] == ms(2026, 1, 16, 23)


def test_session_anchor_is_configurable() -> None:
    spec = BucketSpec.of("1d", session_open=time(18, 0))
    assert spec.bounds(ms(2026, 1, 14, 15))[0] == ms(2026, 1, 14, 0)   # 18:00 CT = 00:00 UTC
    utc = BucketSpec.of("1d", session_tfs=())
    assert utc.bounds(ms(2026, 1, 14, 15)) == (ms(2026, 1, 14, 0), ms(2026, 1, 15, 0))


def test_recovery_load_emits_only_what_the_database_lacks() -> None:
    t0 = ms(2026, 1, 14, 15)
    minutes = [bar(t0 + i * MINUTE_MS, volume=1) for i in range(12)]
    stored_5m = aggregate(minutes[:5], BucketSpec.of("5m"))        # first bucket already stored
    agg, sink = make("5m")
    agg.seed([b for b in stored_5m])
    agg.load(minutes, now_ms=t0 + 12 * MINUTE_MS, covered_from=t0)   # a whole database window
    # The second bucket was missed (final now), the third is in progress (partial).
    assert [(b.t, b.final) for b in sink.bars] == [(t0 + 5 * MINUTE_MS, True),
                                                   (t0 + 10 * MINUTE_MS, False)]
    # A reader that lacks the first bucket gets it re-sent unchanged.
    agg.load(minutes[:5], now_ms=t0 + 12 * MINUTE_MS, reference={})
    assert [(b.t, b.rev, b.final) for b in sink.resent] == [(t0, 0, True)]
    # Live continues where the load left off: minute 12 is the third bucket's partial.
    agg.handle_bar(bar(t0 + 12 * MINUTE_MS))
    assert sink.bars[-1].t == t0 + 10 * MINUTE_MS and sink.bars[-1].rev == 1


def test_aggregators_ignore_partials_and_other_timeframes() -> None:
    sink = Sink()
    aggs = Aggregators([BucketSpec.of("5m"), BucketSpec.of("1h")], sink, ManualClock(0))
    t0 = ms(2026, 1, 14, 15)
    aggs.handle_bar(bar(t0, final=False))
    aggs.handle_bar(bar(t0, tf="5m"))
    assert not sink.bars
    aggs.handle_bar(bar(t0))
    assert sorted(b.tf for b in sink.bars) == ["1h", "5m"]
    assert aggs.counters()["partials"] == 2


def test_bar_problem_names_what_is_wrong() -> None:
    good = bar(ms(2026, 1, 14, 15)).body()
    assert bar_problem(good) is None
    assert "timeframe" in (bar_problem({**good, "tf": "7x"}) or "")
    assert "minute" in (bar_problem({**good, "t": good["t"] + 1}) or "")
    assert "low above high" in (bar_problem({**good, "l": good["h"] + 1}) or "")
    assert bar_problem({**good, "volume": -1}) is not None


def test_the_daily_bar_of_an_early_close_is_final_with_its_last_minute() -> None:
    """Defect 10: the day after Thanksgiving 2026 halts at 12:00 CT (18:00 UTC), so its daily
    bar is complete with the 11:59 CT bar, not held open until 15:59 CT, and the 4h bucket that
    the early close cuts short is complete too."""
    for tf in ("1d", "4h"):
        agg, sink = make(tf)
        start = ms(2026, 11, 27, 16)                       # 10:00 CT, inside the session
        agg.covered_from = agg.spec.bounds(start)[0]       # as if the session was seen whole
        for i in range(120):
            agg.handle_bar(bar(start + i * MINUTE_MS))      # ... to 11:59 CT
        assert sink.finals(), f"{tf}: no final at the early close"
        assert sink.finals()[-1].volume == 120 and not sink.finals()[:-1]


def test_a_bucket_whose_head_was_not_seen_waits_for_its_history_before_going_final() -> None:
    """Defect 18: the first 5m bar after a subscription went final with part of its data."""
    wanted: list[tuple[str, int, int]] = []
    sink = Sink()
    clock = ManualClock(0)
    agg = BarAggregator(C, BucketSpec.of("5m"), sink, clock,
                        need_history=lambda c, a, b: wanted.append((c, a, b)))
    t0 = ms(2026, 1, 14, 15)
    history = [bar(t0 + i * MINUTE_MS, volume=100) for i in range(3)]   # before the subscription
    live = [bar(t0 + i * MINUTE_MS, volume=1) for i in range(3, 7)]     # from 3 minutes in
    for b in live:
        clock.set(b.t + MINUTE_MS)
        agg.handle_bar(b)
    clock.set(t0 + 20 * MINUTE_MS)
    agg.on_time(clock.now_ms())                 # the clock alone does not finish it either
    first = [b for b in sink.bars if b.t == t0]
    assert first and not any(b.final for b in first)
    assert wanted == [(C, t0, t0 + 3 * MINUTE_MS)]
    # The bucket after it started with its first minute: final as usual once it is over.
    agg.fill(history, t0, clock.now_ms())
    finals = [b for b in sink.finals() if b.t == t0]
    assert len(finals) == 1 and finals[0].volume == 3 * 100 + 2 * 1
    assert finals[0].o == history[0].o
    # Nothing more asked for, and a second fill changes nothing.
    agg.fill(history, t0, clock.now_ms())
    assert len([b for b in sink.finals() if b.t == t0]) == 1 and len(wanted) == 1


def test_history_that_has_nothing_lets_the_partial_bucket_go_final() -> None:
    sink = Sink()
    agg = BarAggregator(C, BucketSpec.of("5m"), sink, ManualClock(0), need_history=lambda *a: None)
    t0 = ms(2026, 1, 14, 15)
    for i in range(2, 6):
        agg.handle_bar(bar(t0 + i * MINUTE_MS))
    assert not [b for b in sink.finals() if b.t == t0]
    agg.fill([], t0, t0 + 10 * MINUTE_MS)     # the venue had no bar before the subscription
    assert [b.volume for b in sink.finals() if b.t == t0] == [3]


def test_a_database_window_with_a_hole_does_not_finish_the_head_bucket() -> None:
    """Defect 18, the race: the store had written the first batch of the head's backfill and
    the live bars, not the batches between; a reconcile read that window. The oldest bar read
    is not proof that every later bar is held, so the daily bucket must stay partial until the
    history it asked for arrives (it went final with 60% of its volume)."""
    wanted: list[tuple[str, int, int]] = []
    sink = Sink()
    day = BucketSpec.of("1d")
    start, end = day.bounds(ms(2026, 1, 13, 15))              # Tuesday's session
    clock = ManualClock(end + 90 * MINUTE_MS)
    agg = BarAggregator(C, day, sink, clock, need_history=lambda c, a, b: wanted.append((c, a, b)))
    session = [bar(start + i * MINUTE_MS, volume=10) for i in range((end - start) // MINUTE_MS)]
    live = [bar(end + 60 * MINUTE_MS + i * MINUTE_MS) for i in range(30)]   # next session
    for b in live:
        agg.handle_bar(b)
    agg.load(session[:500] + live, clock.now_ms())           # batch 1 of 3, and the live bars
    assert not [b for b in sink.finals() if b.t == start]
    assert wanted and wanted[0][1] == start
    agg.fill(session, start, clock.now_ms())                  # the whole history arrives
    finals = [b for b in sink.finals() if b.t == start]
    assert [b.volume for b in finals] == [10 * len(session)]


def test_history_asked_before_any_live_bar_reaches_now() -> None:
    """With nothing live yet, the history asked for runs to now: the live stream continues it
    without a hole (asking only to the bucket's end would leave the minutes after it unproven)."""
    wanted: list[tuple[str, int, int]] = []
    t0 = ms(2026, 1, 14, 15)
    clock = ManualClock(t0 + 30 * MINUTE_MS)
    agg = BarAggregator(C, BucketSpec.of("5m"), Sink(), clock,
                        need_history=lambda c, a, b: wanted.append((c, a, b)))
    agg.load([bar(t0 + i * MINUTE_MS) for i in range(2, 12)], clock.now_ms())
    assert wanted[0] == (C, t0, t0 + 30 * MINUTE_MS)   # one per bucket; the feed coalesces
    assert {end for _, _, end in wanted} == {t0 + 30 * MINUTE_MS}
