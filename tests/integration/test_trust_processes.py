"""Nothing a strategy starts outlives its host, and a host gets a bounded share (issue 20 item 9).

The same code runs twice: first in a plain process (what a strategy's code could do before the
host's child forbade new processes): a burst of forks (a fork bomb cut at 30) and a forked child
that calls `setsid`, which survives the process that started it; and a burst of threads. Then
as a strategy in its real sandboxed host: not one fork (seccomp refuses), threads stop at the
host's cgroup task limit (STRATEGY_MAX_PROCS) where the kernel offers one, the child's CPU
weight is the configured one, and once the host is stopped no process of it is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import ROOT, Procs, eventually

CODE = textwrap.dedent('''
    import json, os, threading, time
    from strategy_host.api import Strategy

    def quiet():
        """A forked child lets go of its parent's output (a pipe someone waits on)."""
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)

    def forks(n):
        made = 0
        try:
            for _ in range(n):
                if os.fork() == 0:
                    quiet()
                    time.sleep(20)
                    os._exit(0)
                made += 1
        except OSError as exc:
            return made, f"{type(exc).__name__}: {exc}"
        return made, ""

    def escapee(path):
        """A child that leaves the process group and session, and records its pid."""
        try:
            pid = os.fork()
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        if pid == 0:
            quiet()
            os.setsid()
            with open(path, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(600)
            os._exit(0)
        return pid

    def threads(n):
        made = 0
        try:
            for _ in range(n):
                threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
                made += 1
        except RuntimeError as exc:
            return made, str(exc)
        return made, ""

    def everything(state_dir, n_forks, n_threads):
        return {"forks": forks(n_forks), "escapee": escapee(os.path.join(state_dir, "escapee")),
                "threads": threads(n_threads)}

    # On import: a strategy's module code runs in the host's child once its sandbox is up.
    print("PROCS " + json.dumps(everything(os.environ["STRATEGY_STATE_DIR"], 30,
                                           int(os.environ.get("SPAWN_THREADS", "300")))),
          flush=True)

    class Spawner(Strategy):
        pass
''')


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def in_cgroup(name: str) -> list[int]:
    """Pids whose cgroup path names this host's group."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if f"chillly/{name}" in (p / "cgroup").read_text():
                    out.append(int(p.name))
            except OSError:
                continue
    return out


@pytest.mark.timeout(180)
def test_a_strategys_processes_are_bounded_and_die_with_its_host(procs: Procs,
                                                                 tmp_path: Path) -> None:
    code = tmp_path / "spawn.py"
    code.write_text(CODE)
    # 1. Unprotected: 30 forks, an escapee that outlives its parent, 200 threads.
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u, os, sys; "
         "s = u.spec_from_file_location('spawn', sys.argv[1]); "
         "s.loader.exec_module(u.module_from_spec(s)); os._exit(0)", str(code)],
        cwd=str(ROOT), capture_output=True, text=True, timeout=60,
        env={**os.environ, "STRATEGY_STATE_DIR": str(plain_dir), "SPAWN_THREADS": "200"})
    plain = json.loads(re.search(r"PROCS (\{.*\})", run.stdout).group(1))  # type: ignore[union-attr]
    escapee = int(eventually(lambda: (plain_dir / "escapee").exists()
                             and (plain_dir / "escapee").read_text(), 10, what="escapee pid"))
    try:
        assert plain["forks"] == [30, ""] and plain["threads"] == [200, ""], plain
        assert alive(escapee), "the setsid'd child outlived the process that started it"
    finally:
        os.kill(escapee, signal.SIGKILL)

    # 2. The same code as a strategy in its sandboxed host (no bus needed: the module's code
    # runs when the child imports the class, after its sandbox is up).
    (tmp_path / "strategies.toml").write_text(
        '[strategies.spawner]\nclass = "spawn.py:Spawner"\ncontracts = ["ES"]\nwarmup = 0\n')
    env = {"STRATEGIES_FILE": str(tmp_path / "strategies.toml"),
           "RUN_DIR": str(tmp_path / "run"), "STRATEGY_ACCOUNT": "1",
           "STRATEGY_MAX_PROCS": "40", "STRATEGY_CPU_WEIGHT": "10"}
    host = procs.chillly("strategy-host", "spawner", name="strategy-spawner", env=env)
    line = eventually(lambda: re.search(r"child (\d+) started \((.*)\)", host.log()), 30,
                      what="the child started")
    child, placement = int(line.group(1)), line.group(2)
    got = json.loads(eventually(lambda: re.search(r"PROCS (\{.*\})", host.log()), 30,
                                what="the strategy's report").group(1))
    made, why = got["forks"]
    assert made == 0 and "PermissionError" in why, got        # not one fork
    assert "PermissionError" in str(got["escapee"]), got       # so no escapee either
    if placement.startswith("cgroup"):
        assert "cgroup" in host.log().split("sandbox: applied", 1)[1].split(";")[0]
        groups = [Path(g) for g in placement[len("cgroup "):].split(", ")]
        for g in groups:
            if (g / "cpu.shares").exists():
                assert (g / "cpu.shares").read_text().strip() == str(10 * 1024 // 100)
            if (g / "cpu.weight").exists():
                assert (g / "cpu.weight").read_text().strip() == "10"
        threads, why = got["threads"]
        assert threads < 40 and "can't start new thread" in why, got
        assert child in in_cgroup("strategy-spawner")
    else:
        print(f"FIGURE no cgroup on this machine ({placement}): threads {got['threads']}")
    # Stopped, the host leaves nothing behind.
    host.terminate()
    host.wait(15)
    eventually(lambda: not alive(child) and not in_cgroup("strategy-spawner"), 10,
               what="no process of the host left")
