"""The real deployment in a test: supervisord.conf, rewritten only so its run directory (logs,
control socket, generated includes) lives in the test's tmp dir; ports, database and clock come
from the environment (`bus_env` plus whatever the test adds), as an operator would set them.

Used by the whole-system tests (orphans, rogue input, chaos) and by bench/chaos.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chillly import topics
from chillly.bus import Bus
from chillly.codec import Envelope
from chillly.health import expected_programs
from chillly.messages import Alarm, Heartbeat
from tests.support import ROOT, Procs, Proc, aeventually


def write_conf(tmp: Path, keep: Callable[[str], bool] | None = None) -> Path:
    """The real supervisord.conf under `tmp` (run/ moved there); `keep` may drop programs."""
    text = (ROOT / "supervisord.conf").read_text()
    run = tmp / "run"
    (run / "log").mkdir(parents=True, exist_ok=True)
    text = text.replace("%(here)s/run", str(run)).replace("%(here)s", str(ROOT))
    if keep is not None:
        parts = re.split(r"(?m)^(?=\[)", text)
        text = "".join(p for p in parts if not (
            p.startswith("[program:") and not keep(p[len("[program:"):p.index("]")])))
    out = tmp / "supervisord.conf"
    out.write_text(text)
    return out


def ctl(conf: Path, *args: str) -> str:
    return subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(conf), *args],
                          capture_output=True, text=True, timeout=30).stdout


class Deployment:
    """supervisord running `conf`, and a bus client recording every heartbeat and alarm."""

    def __init__(self, procs: Procs, conf: Path, env: dict[str, str]) -> None:
        self.procs = procs
        self.conf = conf
        self.env = env
        self.names = expected_programs(conf)
        self.beats: dict[str, dict[str, Any]] = {}
        self.alarms: list[dict[str, Any]] = []
        self.sup: Proc | None = None
        self.bus = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], "test")
        self.bus.on(topics.HEARTBEATS, self._on_hb)
        self.bus.on(topics.ALARMS, lambda e: self.alarms.append(e.payload)
                    if e.cls is Alarm else None)

    def _on_hb(self, env: Envelope) -> None:
        if env.cls is Heartbeat:    # a rogue may send anything on hb.
            self.beats[env.payload["name"]] = env.payload

    async def start(self, timeout: float = 90) -> None:
        self.sup = self.procs.spawn([str(ROOT / ".venv/bin/supervisord"), "-n", "-c",
                                     str(self.conf)], name="supervisord")
        await self.bus.ready(timeout=timeout)
        await self.all_running(timeout)

    def running(self) -> bool:
        return all(n in self.beats and self.beats[n]["state"] == "RUNNING" for n in self.names)

    async def all_running(self, timeout: float = 60) -> None:
        await aeventually(self.running, timeout, interval=0.1,
                          what=f"heartbeats RUNNING from {self.names}")

    def children(self) -> dict[int, str]:
        """Every live descendant of supervisord: pid -> command line."""
        assert self.sup is not None
        return descendants(self.sup.pid)

    async def close(self) -> None:
        """Stop supervisord the operator's way (every program through SIGTERM), then the bus."""
        if self.sup is not None and self.sup.alive():
            self.sup.terminate(30)
        await self.bus.close()


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a live process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields[0]


def alive(pid: int) -> bool:
    """Running (a zombie has exited: it only waits for a parent to reap it)."""
    st = _stat(pid)
    return st is not None and st[1] != "Z"


def descendants(root: int) -> dict[int, str]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] != "Z":
                parents[int(entry)] = st[0]
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except FileNotFoundError:
                    continue
                found[pid] = cmd.decode(errors="replace").strip()
                frontier.append(pid)
    return found


def reap_all(pids: list[int]) -> None:
    """Last resort for the test's own cleanup: SIGKILL whatever survived."""
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
