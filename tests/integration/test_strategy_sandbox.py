"""A strategy that tries to reach the venue key, the network or a new process finds nothing and
is refused.

The same probes run unsandboxed in the test process first (they succeed there: the unsafe case
is real), then inside a host started as an operator would (`chillly strategy-host NAME`) with
the venue key in its launcher's environment and a key file beside its code. The strategy runs
in the host's sandboxed child, which has no socket but the one to its trusted parent: not even
the bus ports answer it.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.integration.strategy_rig import start_system, system_env
from tests.support import Procs, eventually

PROBE = textwrap.dedent('''
    import json, os, socket
    from strategy_host.api import Config, Strategy

    class Params(Config):
        victim_pid: int
        secret_file: str
        forbidden_port: int
        bus_port: int

    def probes(p):
        out = {"env_key": os.environ.get("TOPSTEP_API_KEY")}
        for name, path in (("proc_environ", f"/proc/{p.victim_pid}/environ"),
                           ("self_environ", "/proc/self/environ"),
                           ("secret_file", p.secret_file), ("dotenv", ".env")):
            try:
                with open(path, "rb") as f:
                    out[name] = "READ " + f.read().decode(errors="replace")[:200]
            except OSError as exc:
                out[name] = f"refused {type(exc).__name__}"
        for name, port in (("tcp_forbidden", p.forbidden_port), ("tcp_bus", p.bus_port)):
            try:
                with socket.socket() as s:
                    s.settimeout(2)
                    s.connect(("127.0.0.1", port))
                out[name] = "connected"
            except OSError as exc:
                out[name] = f"refused {type(exc).__name__}"
        try:
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
            out["udp"] = "opened"
        except OSError as exc:
            out["udp"] = f"refused {type(exc).__name__}"
        try:
            socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
            out["inet6"] = "opened"
        except OSError as exc:
            out["inet6"] = f"refused {type(exc).__name__}"
        try:
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
            out["unix"] = "opened"
        except OSError as exc:
            out["unix"] = f"refused {type(exc).__name__}"
        try:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            out["fork"] = "forked"
        except OSError as exc:
            out["fork"] = f"refused {type(exc).__name__}"
        out["uid"] = os.getuid()
        return out

    class Probe(Strategy):
        Config = Params

        def on_start(self):
            self.log.info("PROBE %s", json.dumps(probes(self.config)))
''')


@pytest.mark.timeout(240)
async def test_sandbox_hides_the_key_and_refuses_the_network(procs: Procs, bus_env: dict[str, str],
                                                             tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    secret = tmp_path / "venue.key"
    secret.write_text("TOPSTEP_API_KEY=sekrit-from-file\n")
    victim = subprocess.Popen(["sleep", "120"], env={"TOPSTEP_API_KEY": "sekrit-in-environ"})
    bus_port = int(bus_env["BUS_PUBLISH_ADDR"].rsplit(":", 1)[1])
    sim_port = int(bus_env["SIM_PORT"])
    toml = textwrap.dedent(f'''
        [strategies.probe]
        class = "probe.py:Probe"
        contracts = ["ES"]
        run_on = ["sim", "4242"]
        warmup = 0
        [strategies.probe.params]
        victim_pid = {victim.pid}
        secret_file = "{secret}"
        forbidden_port = {sim_port}
        bus_port = {bus_port}
    ''')
    env = system_env(tmp_path, toml)
    try:
        start_system(procs, bus_env, env, gateway=False, only=("store", "series", "feed-bars"))
        # Unprotected, the same probes reach everything (run in this test process).
        ns: dict = {}
        exec(compile(PROBE, "probe", "exec"), ns)
        params = ns["Params"](victim_pid=victim.pid, secret_file=str(secret),
                              forbidden_port=sim_port, bus_port=bus_port)
        bare = ns["probes"](params)
        assert bare["proc_environ"].startswith("READ") and "sekrit" in bare["proc_environ"]
        assert bare["secret_file"].startswith("READ")
        assert bare["tcp_forbidden"] == "connected" and bare["udp"] == "opened"
        assert bare["tcp_bus"] == "connected" and bare["fork"] == "forked"
        # The host: the venue key set in its launcher's environment (a live configuration
        # naming account 4242, which the instance lists).
        host_env = {**env, "TOPSTEP_API_KEY": "sekrit-in-parent", "TOPSTEP_USERNAME": "u",
                    "TOPSTEP_ACCOUNT_ID": "4242", "STRATEGY_SANDBOX_REQUIRE":
                    "env,rlimits,no_new_privs,user,pdeathsig,landlock,landlock_net,seccomp"}
        host = procs.chillly("strategy-host", "probe", name="strategy-probe", env=host_env)
        line = eventually(lambda: re.search(r"PROBE (\{.*\})", host.log()), 60,
                          what="the probe's report")
        got = json.loads(line.group(1))
        for pid in (host.pid, *children(host.pid)):    # the parent and its sandboxed child
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"sekrit" not in environ and b"TOPSTEP_" not in environ
        assert got["env_key"] is None
        for name in ("proc_environ", "self_environ", "secret_file", "dotenv", "tcp_forbidden",
                     "tcp_bus", "udp", "inet6", "unix", "fork"):
            assert got[name].startswith("refused"), (name, got[name])
        assert got["uid"] != 0
        # Every layer applied (the cgroup where the machine lets root write one).
        assert re.search(r"unavailable: (none|cgroup \([^)]*\))$", host.log(), re.M), host.log()
    finally:
        victim.kill()
        victim.wait()


def test_live_credentials_without_explicit_account_refuse_to_start(procs: Procs,
                                                                   tmp_path: Path) -> None:
    """The shipped strategies.toml with venue credentials set: the host refuses (exit 2) and
    sync generates no program; on the sim the same file gives programs."""
    from tests.support import ROOT

    env = {"STRATEGIES_FILE": str(ROOT / "strategies.toml"), "TOPSTEP_API_KEY": "k",
           "TOPSTEP_USERNAME": "u", "TOPSTEP_ACCOUNT_ID": "777", "RUN_DIR": str(tmp_path / "run")}
    host = procs.chillly("strategy-host", "ema_es", env=env)
    assert host.wait(60) == 2
    assert "run_on: not enabled for live account 777" in host.log()
    conf = tmp_path / "none.conf"
    sync = procs.chillly("strategies", "sync", "--conf", str(conf), env=env)
    assert sync.wait(90) == 0
    assert not list((tmp_path / "run" / "supervisor.d").glob("*.conf")), sync.log()
    sim_env = {k: v for k, v in env.items() if not k.startswith("TOPSTEP_")}
    sim_env["TOPSTEP_API_KEY"] = ""
    sync = procs.chillly("strategies", "sync", "--conf", str(conf), env=sim_env)
    assert sync.wait(90) == 0
    assert [p.name for p in (tmp_path / "run" / "supervisor.d").glob("*.conf")] == \
        ["strategy-ema_es.conf"], sync.log()


def test_bad_parameter_stops_the_host_with_one_line(procs: Procs, tmp_path: Path) -> None:
    (tmp_path / "strategies.toml").write_text(textwrap.dedent('''
        [strategies.ema]
        class = "strategy_host.examples.ema_cross:EmaCross"
        contracts = ["ES"]
        [strategies.ema.params]
        fast = "quick"
    '''))
    env = {"STRATEGIES_FILE": str(tmp_path / "strategies.toml"), "RUN_DIR": str(tmp_path / "run")}
    host = procs.chillly("strategy-host", "ema", env=env)
    assert host.wait(60) == 2
    lines = [ln for ln in host.log().splitlines() if "chillly strategy-host:" in ln]
    assert len(lines) == 1 and "[strategies.ema] params.fast" in lines[0], host.log()
    # The same check happens after the sandbox is up: the class was imported under it.
    assert "sandbox: applied" in host.log()


def test_a_required_layer_that_cannot_apply_is_fatal(procs: Procs, tmp_path: Path) -> None:
    """STRATEGY_SANDBOX_REQUIRE: the user layer cannot apply (no such user): exit 2 naming it;
    not required, the host logs it as unavailable and goes on."""
    (tmp_path / "strategies.toml").write_text(
        '[strategies.ema]\nclass = "strategy_host.examples.ema_cross:EmaCross"\n'
        'contracts = ["ES"]\n')
    env = {"STRATEGIES_FILE": str(tmp_path / "strategies.toml"), "RUN_DIR": str(tmp_path / "run"),
           "STRATEGY_USER": "no-such-user-here", "STRATEGY_SANDBOX_REQUIRE": "user,landlock"}
    host = procs.chillly("strategy-host", "ema", env=env)
    assert host.wait(60) == 2
    assert "required sandbox layer(s) unavailable: user (no user 'no-such-user-here'" \
        in host.log(), host.log()
    env.pop("STRATEGY_SANDBOX_REQUIRE")
    host = procs.chillly("strategy-host", "ema", env=env)
    eventually(lambda: "unavailable: user (no user 'no-such-user-here'" in host.log(), 30,
               what="the sandbox line")
    assert host.alive()


@pytest.mark.timeout(240)
async def test_a_contract_the_venue_does_not_know_stops_the_host(procs: Procs,
                                                                 bus_env: dict[str, str],
                                                                 tmp_path: Path) -> None:
    toml = ('[strategies.typo]\nclass = "strategy_host.examples.ema_cross:EmaCross"\n'
            'contracts = ["ZZQ"]\n')
    env = system_env(tmp_path, toml)
    start_system(procs, bus_env, env, gateway=False, only=())
    host = procs.chillly("strategy-host", "typo", env=env)
    assert host.wait(90) == 2
    assert "[strategies.typo] contracts: unknown contract 'ZZQ'" in host.log(), host.log()


@pytest.mark.timeout(120)
async def test_curve_bus_keys_reach_the_host_by_pipe_not_environment(procs: Procs,
                                                                     tmp_path: Path) -> None:
    """With CURVE on the bus, the host still proves its path through the broker (it needs the
    client secret), yet no BUS_CURVE_* is in its /proc/<pid>/environ."""
    keys = procs.chillly("keys", stdout_pipe=True)
    out, _ = keys.popen.communicate(timeout=30)
    curve = dict(line.split("=", 1) for line in out.decode().split())
    procs.spawn(["-m", "broker"], name="broker", env=curve)
    (tmp_path / "strategies.toml").write_text(
        '[strategies.ema]\nclass = "strategy_host.examples.ema_cross:EmaCross"\n'
        'contracts = ["ES"]\n')
    env = {**curve, "STRATEGIES_FILE": str(tmp_path / "strategies.toml"),
           "RUN_DIR": str(tmp_path / "run"), "STRATEGY_ACCOUNT": "1"}
    host = procs.chillly("strategy-host", "ema", env=env)
    # Past bus.ready (through the CURVE broker), it asks the series cache, which is not there.
    eventually(lambda: "no reply from series" in host.log() or "no reply from subscriptions"
               in host.log(), 60, what="the host talking through the CURVE bus")
    assert "no broker" not in host.log()
    pids = (host.pid, *children(host.pid))
    assert len(pids) == 2, pids          # the parent (on the bus) and its child (no socket)
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"BUS_CURVE" not in environ
        assert curve["BUS_CURVE_CLIENT_SECRET"].encode() not in environ


def children(pid: int) -> list[int]:
    """The direct children of `pid` (a host's parent has one: its sandboxed child)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                out.append(int(p.name))
    return out
