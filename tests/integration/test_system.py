"""The deployment itself: supervisord.conf starts every program, each heartbeats on the bus,
a program restarts on its own with `supervisorctl restart`, and stopping supervisord stops all.

The real supervisord.conf is used, rewritten only so that its run directory (logs, control
socket) lives in the test's tmp dir; the bus, the sim and the database are moved to this test's
ports and files through the environment, as an operator would.
"""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

import pytest

from chillly.bus import Bus
from chillly.codec import Envelope
from chillly import topics
from tests.support import ROOT, Procs, aeventually


def programs(conf: Path) -> list[str]:
    cp = configparser.RawConfigParser()
    cp.read(conf)
    return [s.split(":", 1)[1] for s in cp.sections() if s.startswith("program:")]


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    text = (ROOT / "supervisord.conf").read_text()
    run = tmp_path / "run"
    (run / "log").mkdir(parents=True)
    text = text.replace("%(here)s/run", str(run))
    text = text.replace("%(here)s", str(ROOT))
    out = tmp_path / "supervisord.conf"
    out.write_text(text)
    return out


def ctl(conf: Path, *args: str) -> str:
    return subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(conf), *args],
                          capture_output=True, text=True, timeout=30).stdout


async def test_supervisord_runs_every_program_and_restarts_one(procs: Procs, conf: Path,
                                                                bus_env: dict[str, str]) -> None:
    names = programs(conf)
    assert "broker" in names
    sup = procs.spawn([str(ROOT / ".venv/bin/supervisord"), "-n", "-c", str(conf)],
                      name="supervisord")
    bus = Bus(bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"], "test")
    beats: dict[str, dict] = {}  # type: ignore[type-arg]

    def on_hb(env: Envelope) -> None:
        beats[env.payload["name"]] = env.payload

    bus.on(topics.HEARTBEATS, on_hb)
    try:
        await bus.ready(timeout=60)

        def all_running() -> bool:
            status = ctl(conf, "status")
            return all(re.search(rf"^{re.escape(n)}\s+RUNNING", status, re.M) for n in names)

        await aeventually(all_running, 60, interval=0.5, what=f"all of {names} RUNNING")
        expected = set(names)
        await aeventually(lambda: expected <= {n for n, b in beats.items()
                                               if b["state"] == "RUNNING"},
                          60, interval=0.2, what=f"heartbeats from {names}")
        # Restart one program alone: it comes back with a new pid, the others keep theirs.
        victim = "broker"
        others = {n: beats[n]["pid"] for n in names if n != victim}
        old_pid = beats[victim]["pid"]
        ctl(conf, "restart", victim)
        await aeventually(lambda: beats[victim]["pid"] != old_pid, 60, interval=0.2,
                          what="restarted broker heartbeating")
        await aeventually(lambda: all(beats[n]["pid"] == pid and beats[n]["state"] == "RUNNING"
                                      for n, pid in others.items()), 30,
                          what="other programs still up after the broker restart")
    finally:
        await bus.close()
    assert sup.terminate(30) == 0
    log_dir = conf.parent / "run" / "log"
    for n in names:
        text = (log_dir / f"{n}.log").read_text(errors="replace")
        assert "stopped (STOPPED)" in text, f"{n} did not stop cleanly:\n{text[-2000:]}"
