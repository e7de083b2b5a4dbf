"""The account message's throttle (gateway/publishing.py ChangeThrottle): the times its
readers see, stamped by the bus inside the publish, are never closer than the minimum gap, even
when the process is descheduled between the throttle's check and the stamp."""

from __future__ import annotations

from gateway.publishing import ChangeThrottle


class SlowClock:
    """A clock read by the throttle; `stall` is how long each publish takes to stamp."""

    def __init__(self) -> None:
        self.now = 0.0
        self.stall = 0.0

    def __call__(self) -> float:
        return self.now


def test_stamps_stay_a_gap_apart_when_a_publish_is_descheduled_before_its_stamp() -> None:
    clock = SlowClock()
    out = ChangeThrottle(min_gap_s=0.25, refresh_s=5.0, clock=clock)
    stamps: list[float] = []

    def publish() -> None:
        clock.now += clock.stall          # descheduled between the check and the stamp
        stamps.append(clock.now)

    clock.stall = 0.03                    # the first one waits 30 ms for the CPU
    assert out.send("a", publish)
    clock.stall = 0.0
    for step in range(1, 60):             # a change every 17 ms (one market s at 60x)
        clock.now = 0.017 * step
        out.send(("b", step), publish)
    assert len(stamps) >= 3
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    # Checked at its start, the throttle sent the second at 0.255 s, 0.225 s after the first
    # stamp.
    assert min(gaps) >= 0.25, gaps


def test_unchanged_content_goes_out_again_only_after_the_refresh() -> None:
    clock = SlowClock()
    out = ChangeThrottle(min_gap_s=0.25, refresh_s=5.0, clock=clock)
    sent: list[float] = []
    assert out.send("same", lambda: sent.append(clock.now))
    clock.now = 4.99
    assert not out.send("same", lambda: sent.append(clock.now))
    clock.now = 5.0
    assert out.send("same", lambda: sent.append(clock.now))
    clock.now = 5.1
    assert not out.send("new", lambda: sent.append(clock.now))   # within the minimum gap
    clock.now = 5.25
    assert out.send("new", lambda: sent.append(clock.now))
    assert sent == [0.0, 5.0, 5.25]
