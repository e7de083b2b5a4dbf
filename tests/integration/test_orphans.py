"""Defect 8: every program exits when its parent dies. A parent (standing in for supervisord)
starts a broker and a store and is SIGKILLed: both children stop on their own (the
parent-death signal is SIGTERM, so they go through the clean stop path)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, eventually

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
                   timeout=20, what="broker and store running")
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
