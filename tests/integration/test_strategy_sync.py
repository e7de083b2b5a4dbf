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


MISTAKES = {
    # a parameter below its Field(ge=2)
    "low": ('class = "strategy_host.examples.ema_cross:EmaCross"\n', "slow = 1\n",
            "[strategies.low] params.slow: Input should be greater than or equal to 2"),
    # a misspelt parameter
    "typo": ('class = "strategy_host.examples.ema_cross:EmaCross"\n', "fsat = 3\n",
             "[strategies.typo] params.fsat: unknown field"),
    # a wrong class name
    "cls": ('class = "strategy_host.examples.ema_cross:EmaCros"\n', "",
            "[strategies.cls] class: unknown class 'strategy_host.examples.ema_cross:EmaCros'"),
}


def mistake(name: str) -> str:
    cls, params, _ = MISTAKES[name]
    return (f'[strategies.{name}]\n{cls}contracts = ["ES"]\n'
            + (f"[strategies.{name}.params]\n{params}" if params else "") + "\n")


def run_sync(procs: Procs, toml: Path, run: Path, *extra: str) -> tuple[int, str]:
    p = procs.chillly("strategies", "sync", *extra, "--conf", str(toml.parent / "none.conf"),
                      env={"STRATEGIES_FILE": str(toml), "RUN_DIR": str(run)},
                      name="sync" + "".join(extra))
    return p.wait(120), p.log()


@pytest.mark.timeout(300)
def test_sync_checks_each_instance_as_its_host_will_and_refuses_naming_the_field(
        procs: Procs, tmp_path: Path) -> None:
    """Issue 21 item 1: each of these gave exit 0 and "program (enabled for the sim)"."""
    run = tmp_path / "run"
    toml = tmp_path / "strategies.toml"
    toml.write_text(inst("fine") + "".join(mistake(name) for name in MISTAKES))
    rc, out = run_sync(procs, toml, run, "--check")
    assert rc == 2 and "strategy-fine: valid" in out, out
    for name, (_, _, said) in MISTAKES.items():
        assert f"chillly strategies sync: {toml}: {said}" in out, out
    rc, out = run_sync(procs, toml, run)
    assert rc == 2 and "nothing changed (3 instance(s) to fix" in out, out
    assert all(said in out for _, _, said in MISTAKES.values()), out
    assert not list((run / "supervisor.d").glob("*.conf")), "a refused sync wrote programs"
    # The shipped file passes, and --check writes nothing.
    shipped = ROOT / "strategies.toml"
    rc, out = run_sync(procs, shipped, run, "--check")
    assert rc == 0 and "strategy-ema_es: valid" in out, out
    assert not (run / "supervisor.d").exists() or not list((run / "supervisor.d").iterdir())


@pytest.mark.timeout(300)
def test_sync_restarts_exactly_the_instances_whose_definition_changed(
        procs: Procs, broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 21 item 2: an edited parameter kept the old one running, with no hint."""
    run = tmp_path / "run"
    (run / "log").mkdir(parents=True)
    conf = tmp_path / "supervisord.conf"
    conf.write_text(CONF.format(run=run))
    toml = tmp_path / "strategies.toml"
    toml.write_text(inst("a") + inst("b"))
    env = {"STRATEGIES_FILE": str(toml), "RUN_DIR": str(run)}

    def ctl(*args: str) -> str:
        return subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(conf), *args],
                              capture_output=True, text=True, timeout=60).stdout

    def sync() -> str:
        p = procs.chillly("strategies", "sync", "--conf", str(conf), env=env)
        assert p.wait(120) == 0, p.log()
        return p.log()

    sync()
    procs.spawn([str(ROOT / ".venv/bin/supervisord"), "-n", "-c", str(conf)], name="supervisord",
                env=env)
    for prog in ("strategy-a", "strategy-b"):    # up and waiting for the feeds (a broker only)
        eventually(lambda p=prog: "RUNNING" in ctl("status", p), 60, interval=0.2,
                   what=f"{prog} running")
    pids = {p: ctl("pid", p).strip() for p in ("strategy-a", "strategy-b")}
    out = sync()                                    # nothing changed: nothing restarted
    assert "restarted" not in out, out
    toml.write_text(inst("a") + "[strategies.a.params]\nfast = 3\n\n" + inst("b"))
    out = sync()
    assert "strategy-a: restarted, its definition changed (params)" in out, out
    assert "strategy-b: restarted" not in out, out
    eventually(lambda: ctl("pid", "strategy-a").strip() not in ("", "0", pids["strategy-a"]),
               60, interval=0.2, what="strategy-a restarted")
    assert ctl("pid", "strategy-b").strip() == pids["strategy-b"]
    assert '"fast": 3' in (run / "supervisor.d" / "strategy-a.conf").read_text()
