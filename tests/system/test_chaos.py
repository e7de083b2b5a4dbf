"""The chaos run, short form: every program but the sim SIGKILLed once, in turn, while the
strategies trade and bars form (tests/system/chaos.py); then nothing lost, nothing doubled,
positions and bars equal to the venue's, and `chillly status` says all is well.
bench/chaos.py is the long form with figures."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import PYTHON, ROOT, Procs
from tests.system.chaos import Chaos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


async def test_kill_every_program_once_nothing_lost_nothing_doubled(
        procs: Procs, tmp_path: Path, bus_env: dict[str, str]) -> None:
    chaos = Chaos(procs, tmp_path, bus_env)
    try:
        await chaos.start()
        for program in chaos.victims():
            k = await chaos.kill(program)
            print(f"{program}: healthy again after {k.seconds_to_healthy:.1f}s")
        await chaos.settle()
        verdict = await chaos.compare()
        print(f"venue orders {verdict.venue_orders}, fills {verdict.venue_fills}, "
              f"bars checked {verdict.bars_checked}")
        assert verdict.problems() == {}
        assert verdict.bars_checked > 0
        for k in chaos.kills:
            if k.program.startswith("strategy-"):
                assert k.strategy_recovered, k
        out = subprocess.run([PYTHON, "-m", "chillly.cli", "status", "--conf",
                              str(chaos.dep.conf)], cwd=str(ROOT),
                             env={**os.environ, **chaos.env}, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        await chaos.close()
