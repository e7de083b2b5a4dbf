"""A refused close is tried again after a wait that doubles up to a cap; an accepted one
resets it (time given, never the wall clock)."""

from trading.backoff import Backoff


def test_refusals_double_the_wait_up_to_the_cap_and_a_success_resets() -> None:
    b = Backoff(first_ms=1_000, cap_ms=4_000)
    key = ("MES", None)
    assert b.ready(key, 0)
    assert [b.refused(key, t) for t in (0, 1_000, 3_000, 7_000)] == [1_000, 2_000, 4_000, 4_000]
    assert not b.ready(key, 10_999) and b.ready(key, 11_000)
    assert b.failing() == [key]
    # 45 s of passes 6 times a second: 10 tries, not 270
    b2 = Backoff(first_ms=1_000, cap_ms=4_000)
    tries = 0
    for t in range(0, 45_000, 166):
        if b2.ready(key, t):
            tries += 1
            b2.refused(key, t)
    assert tries <= 14
    assert b.accepted(key) and b.ready(key, 0) and b.failing() == []
    assert not b.accepted(key)
