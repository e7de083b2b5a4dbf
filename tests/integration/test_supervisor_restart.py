"""Defects 8 and 19 together, as an operator meets them: supervisord is SIGKILLed and started
again. Its programs die with it (parent-death signal), so the new supervisord starts one of
each, not a second set beside the first; the store's database lock holds either way."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.integration.test_config_mistakes import status, trimmed_conf
from tests.integration.test_orphans import alive
from tests.support import ROOT, Procs, eventually


def pids(conf: Path) -> dict[str, int]:
    out = subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(conf), "status"],
                         capture_output=True, text=True, timeout=30).stdout
    return {name: int(pid) for name, pid in re.findall(r"^(\S+)\s+RUNNING\s+pid (\d+)", out, re.M)}


def both_running(conf: Path) -> dict[str, int] | None:
    p = pids(conf)
    return p if len(p) == 2 else None


def test_killing_supervisord_leaves_no_second_set(procs: Procs, tmp_path) -> None:
    conf = trimmed_conf(tmp_path, {"broker", "store"})
    sup = procs.spawn([str(ROOT / ".venv/bin/supervisord"), "-n", "-c", str(conf)],
                      name="supervisord")
    first = eventually(lambda: both_running(conf), 60, interval=0.5,
                       what="broker and store RUNNING")
    sup.popen.send_signal(signal.SIGKILL)
    sup.popen.wait()
    try:
        eventually(lambda: not any(alive(p) for p in first.values()), 10,
                   what="the old programs to exit with their supervisord")
    finally:   # if they did not, they are orphans of this test: end them
        for pid in first.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    (tmp_path / "run" / "supervisor.sock").unlink(missing_ok=True)
    procs.spawn([str(ROOT / ".venv/bin/supervisord"), "-n", "-c", str(conf)],
                name="supervisord-2")
    second = eventually(lambda: both_running(conf), 60, interval=0.5,
                        what="broker and store RUNNING again")
    assert not set(first.values()) & set(second.values())
    assert status(conf) == {"broker": "RUNNING", "store": "RUNNING"}
