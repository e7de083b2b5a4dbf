"""Shared test helpers: free ports, polling waits, real child processes.

Wait for conditions with `eventually`/`aeventually`, never with a bare sleep. Child processes
are started with `Procs.spawn`, their output goes to a file under the test's tmp dir, and every
child is stopped (SIGTERM, then SIGKILL) when the test ends; its log is printed on failure.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.sim_client import free_port  # noqa: F401  (one way to pick a port; re-exported)

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# How long a test waits for a process it started to come up (a broker, a bus loopback, a
# heartbeat saying RUNNING). A wait, never a judgement: an idle machine starts one in well under
# a second, but CI's 2 cores at nice 19 beside the serial phase took 10-15 s for a 9-process
# system, and a lone broker missed the old 15 s beside two CPU burners.
START_TIMEOUT = 60.0


def eventually(cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition") -> Any:
    """Poll `cond` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def aeventually(cond: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0,
                      interval: float = 0.02, what: str = "condition") -> Any:
    """Async `eventually`: `cond` may be sync or async."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


class Proc:
    """A child process with its log file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self, timeout: float = 5.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after `timeout`)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            return -9

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def wait(self, timeout: float = 10.0) -> int:
        return self.popen.wait(timeout)


class Procs:
    """Starts children for one test and cleans them all up."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.children: list[Proc] = []
        self._n = 0

    def spawn(self, args: list[str], name: str | None = None, env: dict[str, str] | None = None,
              stdout_pipe: bool = False) -> Proc:
        """Run `args` (e.g. ["-m", "broker"] is run with this Python) as a child process."""
        self._n += 1
        name = name or args[0]
        log_path = self.tmp / f"{self._n:02d}-{name.replace('/', '_')}.log"
        full_env = {**os.environ, **self.env, **(env or {})}
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        cmd = [PYTHON, *args] if args[0].startswith("-") or args[0].endswith(".py") else args
        out = open(log_path, "wb")
        popen = subprocess.Popen(cmd, cwd=str(ROOT), env=full_env,
                                 stdout=subprocess.PIPE if stdout_pipe else out,
                                 stderr=out if stdout_pipe else subprocess.STDOUT)
        out.close()
        proc = Proc(name, popen, log_path)
        self.children.append(proc)
        return proc

    def chillly(self, *args: str, name: str | None = None, env: dict[str, str] | None = None,
                stdout_pipe: bool = False) -> Proc:
        """Run a `chillly` subcommand as a child process."""
        return self.spawn(["-m", "chillly.cli", *args], name=name or args[0], env=env,
                          stdout_pipe=stdout_pipe)

    def cleanup(self) -> None:
        for p in reversed(self.children):
            if p.alive():
                p.terminate(3.0)

    def dump_logs(self) -> str:
        parts = []
        for p in self.children:
            parts.append(f"----- {p.name} (pid {p.pid}, rc {p.popen.poll()}) -----\n{p.log()[-4000:]}")
        return "\n".join(parts)


@contextmanager
def running_sim(tmp: Path, env: dict[str, str]) -> Iterator[str]:
    """A `chillly sim` child with `env` (see tests.sim_client.sim_env); yields its base URL once it
    answers, and stops it afterwards (its log tail is printed: pytest shows it on failure)."""
    from tests.sim_client import wait_ready

    procs = Procs(tmp, env)
    procs.chillly("sim", name="sim")
    try:
        base = f"http://127.0.0.1:{env['SIM_PORT']}"
        wait_ready(base)
        yield base
    finally:
        procs.cleanup()
        print(procs.dump_logs()[-3000:])


def market_at(target_ms: int) -> dict[str, str]:
    """CLOCK_SPEED/CLOCK_ANCHOR putting a process's market time at `target_ms` now (later than
    now), running from there at that speed: a test's way to be on a weekend or in a session
    whatever the day it runs. Anchored an hour back, a week ahead is a speed of about 170."""
    from datetime import datetime, timezone

    now = int(time.time() * 1000)
    anchor = now - 3_600_000
    speed = (target_ms - anchor) / (now - anchor)
    return {"CLOCK_SPEED": f"{speed:.9f}",
            "CLOCK_ANCHOR": datetime.fromtimestamp(anchor / 1000, timezone.utc).isoformat()}


def next_weekday_at(weekday: int, hour_utc: int, open_market: bool) -> int:
    """The first instant after tomorrow on `weekday` (0 = Monday) at `hour_utc`:00 UTC where
    the CME market is open (or closed) as asked."""
    from datetime import datetime, timedelta, timezone

    from chillly.calendar import is_market_open

    day = datetime.now(timezone.utc).replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    day += timedelta(days=2)
    while True:
        ms = int(day.timestamp() * 1000)
        if day.weekday() == weekday and is_market_open(ms) == open_market:
            return ms
        day += timedelta(days=1)


def tools_path(env: dict[str, str]) -> Path:
    """The gateway's tools socket for a test's environment (the sim venue under RUN_DIR)."""
    from chillly.tools_socket import socket_path
    return socket_path(Path(env["RUN_DIR"]) / "sim")
