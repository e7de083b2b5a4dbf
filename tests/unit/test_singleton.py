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
