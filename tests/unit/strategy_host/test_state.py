"""A strategy's saved state and the crash-loop back-off marker, on a temporary directory."""

from __future__ import annotations

from pathlib import Path

from strategy_host.state import RunMarker, StateFile


def test_state_round_trip_and_a_torn_file_set_aside(tmp_path: Path) -> None:
    store = StateFile(tmp_path)
    store.save({"next_n": 42, "strategy": {"n": 0}})
    assert store.load() == {"next_n": 42, "strategy": {"n": 0}}
    (tmp_path / "state.json").write_text("{torn")
    assert store.load() == {} and (tmp_path / "state.bad").exists()


def test_crash_loop_backs_off_and_a_clean_stop_resets(tmp_path: Path) -> None:
    m = RunMarker(tmp_path)
    assert m.start(1000.0) == 0.0           # first start
    assert m.start(1010.0) == 1.0           # the last run died 10 s in: back off
    assert m.start(1020.0) == 2.0
    assert m.start(1030.0) == 4.0
    m.clean_stop()
    assert m.start(1040.0) == 0.0           # a clean stop (restart, SIGTERM) does not count
    assert m.start(1200.0) == 0.0           # a run of over a minute does not count either
