"""chillly.singleton: one holder per file, the holder named, the lock gone with its process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chillly.errors import StartupError
from chillly.singleton import acquire, lock_path

HOLD = """
import sys, time
from chillly.singleton import acquire
acquire(sys.argv[1], "holder-test")
print("held", flush=True)
time.sleep(60)
"""


def test_second_acquire_is_refused_naming_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    first = acquire(db, "store")
    with pytest.raises(StartupError) as err:
        acquire(db, "store")
    assert f"pid {os.getpid()}" in str(err.value)
    assert "store" in str(err.value)
    first.release()
    again = acquire(db, "store")  # released: free for the next one
    again.release()
    assert lock_path(db).exists()


def test_lock_dies_with_its_holder(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "journal.db"
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"held"
        with pytest.raises(StartupError, match=f"holder-test \\(pid {child.pid}\\)"):
            acquire(db, "gateway")
        child.kill()
        child.wait()
        acquire(db, "gateway").release()  # no stale lock after a SIGKILL
    finally:
        child.kill()
        child.wait()


def test_wait_takes_a_lock_its_holder_lets_go_of_in_time(tmp_path: Path) -> None:
    """An old instance still stopping: the newcomer waits for it instead of giving up."""
    import threading
    import time

    db = tmp_path / "market.db"
    old = acquire(db, "store")
    threading.Timer(0.3, old.release).start()
    started = time.monotonic()
    new = acquire(db, "store", wait=3.0)
    assert 0.2 < time.monotonic() - started < 3.0
    new.release()


def test_wait_gives_up_on_a_holder_that_stays(tmp_path: Path) -> None:
    import time

    db = tmp_path / "market.db"
    held = acquire(db, "store")
    started = time.monotonic()
    with pytest.raises(StartupError, match=f"pid {os.getpid()}"):
        acquire(db, "store", wait=0.3)
    assert time.monotonic() - started >= 0.3
    held.release()
