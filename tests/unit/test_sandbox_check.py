"""scripts/run says in one line which strategy sandbox layer this platform lacks (issue 21
item 15), rather than a host failing obscurely later."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "strategy_host.sandbox_check"], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_scripts_run_asks_before_starting_the_system() -> None:
    run = (ROOT / "scripts" / "run").read_text()
    assert run.index("-m strategy_host.sandbox_check") < run.index("exec .venv/bin/supervisord")


def test_a_missing_layer_is_one_line_naming_it_and_why(tmp_path: Path) -> None:
    # libseccomp not installed: the guarded import fails as it would on such a machine.
    (tmp_path / "pyseccomp.py").write_text(
        'raise ImportError("libseccomp.so.2: cannot open shared object file")\n')
    proc = check(tmp_path, PYTHONPATH=str(tmp_path))
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    assert "missing seccomp (pyseccomp unavailable (libseccomp.so.2" in lines[0]
    assert "strategies run with the other layers" in lines[0]
    required = check(tmp_path, PYTHONPATH=str(tmp_path), STRATEGY_SANDBOX_REQUIRE="seccomp")
    assert "strategies requiring seccomp (STRATEGY_SANDBOX_REQUIRE) will not start" \
        in required.stdout


def test_the_line_names_every_layer_a_platform_lacks() -> None:
    from strategy_host.sandbox_check import line, missing

    assert line({}, []) is None
    text = line({"landlock": "Linux only (Darwin)", "pdeathsig": "Linux only (Darwin)"}, [])
    assert text is not None and "missing landlock (Linux only (Darwin)); pdeathsig" in text
    if sys.platform.startswith("linux"):
        assert "pdeathsig" not in missing()      # prctl is there on every Linux
