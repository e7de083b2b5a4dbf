"""Defect 8: every program exits when its parent dies. A parent (standing in for supervisord)
starts a broker and a store and is SIGKILLed: both children stop on their own (the
parent-death signal is SIGTERM, so they go through the clean stop path)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import START_TIMEOUT, ROOT, eventually

PARENT = """
import subprocess, sys, time
kids = [subprocess.Popen([sys.executable, "-m", "chillly.cli", name],
                         stdout=open(f"{sys.argv[1]}/{name}.log", "wb"), stderr=subprocess.STDOUT)
        for name in ("broker", "store")]
print(" ".join(str(k.pid) for k in kids), flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def running(log: Path) -> bool:
    return log.exists() and "running" in log.read_text(errors="replace")


def test_children_exit_when_their_parent_is_killed(tmp_path: Path, bus_env) -> None:
    env = {**os.environ, **bus_env, "PYTHONUNBUFFERED": "1", "STORE_RECOVER": "false"}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE)
    kids: list[int] = []
    try:
        assert parent.stdout is not None
        kids = [int(p) for p in parent.stdout.readline().split()]
        eventually(lambda: running(tmp_path / "broker.log") and running(tmp_path / "store.log"),
                   timeout=START_TIMEOUT, what="broker and store running")
        parent.kill()
        parent.wait()
        eventually(lambda: not any(alive(k) for k in kids), timeout=5,
                   what="the orphans to exit")
        assert "stopped (STOPPED)" in (tmp_path / "store.log").read_text()
    finally:
        parent.kill()
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)


LATE_CHILD = """
import os, sys, time
import chillly                                   # the process starts: its parent is noted
print("started", flush=True)
while os.getppid() == chillly.PARENT_PID:        # the parent dies before die_with_parent ...
    time.sleep(0.01)
from chillly.process import die_with_parent
die_with_parent()                                 # ... which must notice and stop us
time.sleep(30)
print("still running", flush=True)
"""

LATE_PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=open(sys.argv[2], "wb"))
print(child.pid, flush=True)
input()                                           # until the test kills us
"""


def test_a_parent_dead_before_the_prctl_is_noticed(tmp_path: Path) -> None:
    out = tmp_path / "child.out"
    parent = subprocess.Popen([sys.executable, "-c", LATE_PARENT, LATE_CHILD, str(out)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        eventually(lambda: out.exists() and b"started" in out.read_bytes(), timeout=20,
                   what="the child started")
        parent.kill()
        parent.wait()
        eventually(lambda: not alive(child), timeout=5, what="the late orphan to exit")
        assert b"still running" not in out.read_bytes()
    finally:
        parent.kill()
        if alive(child):
            os.kill(child, signal.SIGKILL)
