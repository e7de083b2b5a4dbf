"""No orphans: when supervisord itself dies (SIGKILL: no chance to stop anyone), every program
it started exits on its own, so the next supervisord never meets a stale broker, a second
gateway or a strategy still trading. The parent-death signal (chillly/process.py) is what does
it; without it every child here is re-parented and keeps running, and this test fails.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.support import Procs, aeventually
from tests.system.deploy import Deployment, alive, reap_all, write_conf


async def test_every_child_exits_when_supervisord_is_killed(procs: Procs, tmp_path: Path,
                                                            bus_env: dict[str, str]) -> None:
    dep = Deployment(procs, write_conf(tmp_path), bus_env)
    try:
        await dep.start()
        children = dep.children()
        programs = {p["pid"]: n for n, p in dep.beats.items()}
        assert set(programs) <= set(children), (programs, children)
        assert len(programs) == len(dep.names)
        assert dep.sup is not None
        os.kill(dep.sup.pid, signal.SIGKILL)
        dep.sup.wait(10)

        def survivors() -> dict[int, str]:
            return {pid: cmd for pid, cmd in children.items() if alive(pid)}

        try:
            await aeventually(lambda: not survivors(), 15, interval=0.1,
                              what="every child of the killed supervisord to exit")
        except AssertionError:
            raise AssertionError(f"orphans still running: {survivors()}") from None
    finally:
        reap_all(list(dep.children()) if dep.sup and alive(dep.sup.pid) else [])
        reap_all(list(locals().get("children", {})))
        await dep.close()
