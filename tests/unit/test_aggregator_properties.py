"""Property tests: aggregation composes, never double counts, and ignores arrival order."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chillly.calendar import is_market_open, session_start_ms
from chillly.clock import MINUTE_MS, ManualClock
from chillly.messages import Bar
from chillly.timeframes import BucketSpec
from trading.aggregator import BarAggregator, aggregate

C = "CON.F.US.EP.Z26"
# Thursdays 12:00 UTC before each DST change: windows of up to four days cross the weekend,
# the change itself (Sunday 02:00 CT, 2026-03-08 and 2026-11-01) and the Sunday session open.
STARTS = [int(datetime(2026, 3, 5, 12, tzinfo=timezone.utc).timestamp() * 1000),
          int(datetime(2026, 10, 29, 12, tzinfo=timezone.utc).timestamp() * 1000)]
T0 = STARTS[0]


@st.composite
def minute_bars(draw: st.DrawFn, max_minutes: int = 6000) -> list[Bar]:
    """Final 1m bars at distinct, sorted, market-open minutes with consistent OHLC."""
    t0 = draw(st.sampled_from(STARTS))
    offsets = draw(st.lists(st.integers(0, max_minutes), min_size=1, max_size=120, unique=True))
    out = []
    for off in sorted(offsets):
        t = t0 + off * MINUTE_MS
        if not is_market_open(t):
            continue
        o = draw(st.integers(1000, 1100)) / 4
        c = draw(st.integers(1000, 1100)) / 4
        h = max(o, c) + draw(st.integers(0, 8)) / 4
        low = min(o, c) - draw(st.integers(0, 8)) / 4
        out.append(Bar(contract=C, tf="1m", t=t, o=o, h=h, l=low, c=c,
                       volume=draw(st.integers(0, 500)), final=True))
    return out


def key(b: Bar) -> tuple:
    return (b.t, b.o, b.h, b.l, b.c, b.volume)


@settings(max_examples=60, deadline=None)
@given(minute_bars())
def test_1m_to_5m_to_15m_equals_1m_to_15m(bars: list[Bar]) -> None:
    m5, m15 = BucketSpec.of("5m"), BucketSpec.of("15m")
    assert [key(b) for b in aggregate(aggregate(bars, m5), m15)] == \
        [key(b) for b in aggregate(bars, m15)]


@settings(max_examples=60, deadline=None)
@given(minute_bars())
def test_1h_to_4h_and_4h_to_1d_compose_inside_sessions(bars: list[Bar]) -> None:
    h1, h4, d1 = BucketSpec.of("1h"), BucketSpec.of("4h"), BucketSpec.of("1d")
    assert [key(b) for b in aggregate(aggregate(bars, h1), h4)] == \
        [key(b) for b in aggregate(bars, h4)]
    assert [key(b) for b in aggregate(aggregate(bars, h4), d1)] == \
        [key(b) for b in aggregate(bars, d1)]


@settings(max_examples=60, deadline=None)
@given(minute_bars(), st.randoms(use_true_random=False), st.sampled_from(["5m", "1h", "4h", "1d"]))
def test_streaming_with_resends_never_counts_volume_twice(bars: list[Bar], rnd, tf: str) -> None:
    """Feed the bars in time order, re-sending random earlier ones: the last bar emitted per
    bucket equals the batch aggregation, and no final is ever emitted twice unchanged."""
    spec = BucketSpec.of(tf)
    got: dict[int, Bar] = {}
    finals: list[tuple] = []

    def sink(b: Bar, resend: bool) -> None:
        assert not resend
        prev = got.get(b.t)
        assert prev is None or b.rev == prev.rev + 1
        assert prev is None or not prev.final or b.final   # never a partial after a final
        got[b.t] = b
        if b.final:
            assert key(b) not in finals
            finals.append(key(b))

    agg = BarAggregator(C, spec, sink, ManualClock(0))
    seen: list[Bar] = []
    for b in bars:
        agg.handle_bar(b)
        seen.append(b)
        if rnd.random() < 0.3:
            agg.handle_bar(rnd.choice(seen))
    expected = aggregate(bars, spec)
    assert [key(got[b.t]) for b in expected] == [key(b) for b in expected]
    assert sum(got[b.t].volume for b in expected) == sum(b.volume for b in bars)


@settings(max_examples=40, deadline=None)
@given(minute_bars(max_minutes=600), st.data())
def test_late_bar_revises_the_finished_bucket(bars: list[Bar], data: st.DataObject) -> None:
    assume(bars)
    spec = BucketSpec.of("15m")
    out: list[Bar] = []
    agg = BarAggregator(C, spec, lambda b, r: out.append(b), ManualClock(0))
    for b in bars:
        agg.handle_bar(b)
    victim = data.draw(st.sampled_from(bars))
    revised = Bar(contract=C, tf="1m", t=victim.t, o=victim.o, h=victim.h + 1, l=victim.l,
                  c=victim.c, volume=victim.volume + 1, final=True, rev=1)
    before = [b for b in out if b.t == spec.bounds(victim.t)[0]][-1]
    agg.handle_bar(revised)
    after = out[-1]
    assert after.t == before.t and after.rev == before.rev + 1
    assert after.volume == before.volume + 1 and after.h >= before.h
    assert after.final == before.final


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STARTS), st.integers(0, 4 * 24 * 60), st.sampled_from(["4h", "1d", "2h"]))
def test_session_buckets_stay_inside_their_session(t0: int, off: int, tf: str) -> None:
    """Across a weekend and a DST change: a session bucket holds its minute, starts on the
    session's grid at or after its open and ends at or before the next open; the daily bucket
    is exactly the session."""
    t = t0 + off * MINUTE_MS
    spec = BucketSpec.of(tf, session_tfs=("4h", "1d", "2h"))
    start, end = spec.bounds(t)
    s_open = session_start_ms(t)
    s_next = session_start_ms(s_open + 25 * 3_600_000)
    assert s_open <= start <= t < end <= s_next
    assert (start - s_open) % spec.ms == 0
    if tf == "1d":
        assert (start, end) == (s_open, s_next)
        assert end - start in (23 * 3_600_000, 24 * 3_600_000, 25 * 3_600_000)
