"""`chillly strategies sync` against a running supervisord: programs are added, changed and
removed with the instances of strategies.toml, and only strategy programs are touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, Procs, eventually

CONF = """
[unix_http_server]
file={run}/supervisor.sock
[supervisord]
logfile={run}/log/supervisord.log
pidfile={run}/supervisord.pid
childlogdir={run}/log
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{run}/supervisor.sock
[program:bystander]
command=sleep 600
[include]
files = {run}/supervisor.d/*.conf
"""


def inst(name: str, enabled: bool = True) -> str:
    return (f'[strategies.{name}]\nclass = "strategy_host.examples.ema_cross:EmaCross"\n'
            f'contracts = ["ES"]\nenabled = {str(enabled).lower()}\n\n')


@pytest.mark.timeout(180)
def test_sync_adds_and_removes_only_strategy_programs(procs: Procs, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "log").mkdir(parents=True)
    conf = tmp_path / "supervisord.conf"
    conf.write_text(CONF.format(run=run))
    toml = tmp_path / "strategies.toml"
    toml.write_text(inst("a"))
    env = {"STRATEGIES_FILE": str(toml), "RUN_DIR": str(run)}

    def ctl(*args: str) -> str:
        return subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(conf), *args],
                              capture_output=True, text=True, timeout=60).stdout

    def sync() -> str:
        p = procs.chillly("strategies", "sync", "--conf", str(conf), env=env)
        assert p.wait(60) == 0, p.log()
        return p.log()

    sync()
    procs.spawn([str(ROOT / ".venv/bin/supervisord"), "-n", "-c", str(conf)], name="supervisord",
                env=env)
    eventually(lambda: "bystander" in ctl("status") and "strategy-a" in ctl("status"), 60,
               interval=0.2, what="supervisord up with strategy-a")
    eventually(lambda: "RUNNING" in ctl("status", "bystander"), 30, interval=0.2,
               what="bystander running")
    pid = ctl("pid", "bystander").strip()
    toml.write_text(inst("a", enabled=False) + inst("b"))
    out = sync()
    assert "strategy-a: skipped" in out and "strategy-b: program" in out, out
    status = ctl("status")
    assert "strategy-b" in status and "strategy-a" not in status, status
    assert ctl("pid", "bystander").strip() == pid, "sync restarted a non-strategy program"
