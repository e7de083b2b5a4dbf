"""The trusted parent of one strategy host (`chillly strategy-host NAME`, program `strategy-NAME`).

Our code only: it never imports the strategy's. It holds the instance's bus client and starts
the sandboxed child (`python -m strategy_host NAME`: the engine and the strategy) with one end
of a socketpair, the child's only way out (its sandbox refuses every new socket). Over it
(strategy_host/pipe.py), the parent:
- puts on the bus, under the instance's name (`src` `strategy-NAME` is this process's own), only
  what strategy_host/policy.py allows: commands about the instance's own orders, the reads the
  host needs, its alarms and its probe; the child's heartbeat is merged into the parent's;
- subscribes, for the child, only to the instance's own topics, and passes those on;
- refuses anything else, counts it (`refused_publish`, `refused_subscribe`, `refused_command`
  in the heartbeat), raises the alarm `refused` naming the last one, and keeps running.
The child's exit ends the parent with the child's exit code (supervisord restarts on 1, stops on
2); a stop of the parent stops the child (SIGTERM, then SIGKILL of its process group), and the
parent is a child subreaper, so nothing the child started outlives the host.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any, ClassVar

from chillly import topics
from chillly.codec import DecodeError, decode, pack_frame
from chillly.messages import Alarm, Command, Heartbeat, Probe, Reply
from chillly.process import Service, run_with_settings
from chillly.settings import load_settings
from strategy_host import cgroups
from strategy_host.pipe import ALARM_FD_ENV, FD_ENV, MSG, PUB, SUB, UNSUB, Writer, frame
from strategy_host.pipe import receive_frames
from strategy_host.policy import Policy
from strategy_host.settings import HostSettings
from strategy_host.strategies_file import read_instance
from trading.strategy.config_file import LoadError
from trading.strategy.instance import Instance

log = logging.getLogger("host")

SECRET_FD = "CHILLLY_SECRET_FD"
PR_SET_CHILD_SUBREAPER = 36
STOP_WAIT_S = 1.2          # for the child's own clean stop, inside the parent's stop budget


class Parent(Service):
    name = "strategy-host"
    settings_cls = HostSettings
    settings: HostSettings
    inst: ClassVar[Instance]
    exit_code: ClassVar[int | None] = None

    @property
    def process_name(self) -> str:
        return self.settings.process_name

    async def on_start(self) -> None:
        s = self.settings
        _subreaper()
        self.policy = Policy(self.inst.name, self.process_name, list(self.inst.contracts),
                             list(self.inst.timeframes))
        self.counters.update(refused_publish=0, refused_subscribe=0, refused_command=0,
                             relayed_out=0, relayed_in=0)
        self.child_hb: dict[str, Any] | None = None
        self.granted: set[str] = set()
        self.tasks: list[asyncio.Task[Any]] = []
        self.sock, child_end = socket.socketpair()
        self.alarm_sock, child_alarm = socket.socketpair()
        self.writer = Writer(self.sock, self._count)
        env = {k: v for k, v in os.environ.items() if k != SECRET_FD}
        self.cgroup = cgroups.prepare(self.process_name, s.strategy_max_procs,
                                      s.strategy_cpu_weight)
        env.update({FD_ENV: str(child_end.fileno()), ALARM_FD_ENV: str(child_alarm.fileno()),
                    "STRATEGY_PARENT_PID": str(os.getpid()),
                    "STRATEGY_CGROUP": cgroups.encode(self.cgroup)})
        self.child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "strategy_host", self.inst.name, env=env,
            pass_fds=(child_end.fileno(), child_alarm.fileno()), start_new_session=True,
            stdin=asyncio.subprocess.DEVNULL)
        child_end.close()
        child_alarm.close()
        log.info("child %d started (%s)", self.child.pid, self.cgroup.line())
        loop = asyncio.get_running_loop()
        self.tasks += [loop.create_task(receive_frames(self.sock, self._from_child)),
                       loop.create_task(receive_frames(self.alarm_sock, self._from_child))]
        self.tasks.append(loop.create_task(self._pass_stop()))
        # The child may end first (a mistake in its configuration: exit 2, with or without a
        # broker): its exit code is what the host reports, not the bus's.
        ended = loop.create_task(self.child.wait())
        ready = loop.create_task(self.bus.ready(timeout=15))
        await asyncio.wait({ended, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            ready.cancel()
            return
        ended.cancel()
        ready.result()

    async def _pass_stop(self) -> None:
        """SIGTERM reaches the child at once, so its own clean stop (state saved, marked
        clean) runs beside ours instead of after it."""
        await self.stopping.wait()
        if self.child.returncode is None:
            self.child.send_signal(signal.SIGTERM)

    async def run(self) -> None:
        code = await self.child.wait()
        type(self).exit_code = code if code >= 0 else 1
        log.info("child exited with %d", code)

    async def on_stop(self) -> None:
        child = getattr(self, "child", None)
        if child is not None and child.returncode is None:
            child.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.wait(), STOP_WAIT_S)
            except asyncio.TimeoutError:
                log.warning("child %d did not stop within %.1f s: killed", child.pid,
                            STOP_WAIT_S)
        if child is not None:
            _kill_group(child.pid)
        _reap_descendants()
        for t in getattr(self, "tasks", []):
            t.cancel()
        if getattr(self, "cgroup", None) is not None:
            self.cgroup.remove()

    # ------------------------------------------------------------------ child -> bus

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _refuse(self, counter: str, why: str) -> None:
        self._count(counter)
        n = self.counters[counter]
        if n <= 20 or n % 1000 == 0:
            log.warning("refused (%s %d): %s", counter, n, why)
        self.alarm("refused", True, f"the strategy tried: {why}")

    def _from_child(self, kind: int, topic: str, payload: bytes) -> None:
        if kind == SUB:
            self._subscribe(topic)
        elif kind == UNSUB:
            if topic in self.granted:
                self.granted.discard(topic)
                self.bus.unsubscribe(topic)
        elif kind == PUB:
            self._publish(topic, payload)
        else:
            self._refuse("refused_publish", f"a frame of kind {kind}")

    def _subscribe(self, prefix: str) -> None:
        why = self.policy.subscription(prefix)
        if why is not None:
            self._refuse("refused_subscribe", why)
            return
        if prefix not in self.granted:
            self.granted.add(prefix)
            self.bus.on(prefix, self._to_child)

    def _publish(self, topic: str, payload: bytes) -> None:
        try:
            env = decode([topic.encode(), payload])
        except DecodeError as exc:
            self._refuse("refused_publish", f"an undecodable message on {topic!r} ({exc})")
            return
        msg = env.message()
        if isinstance(msg, Command):
            if topic != topics.command(msg.service, msg.name):
                self._refuse("refused_command", f"{msg.service}.{msg.name} on topic {topic!r}")
                return
            args, why = self.policy.command(msg.service, msg.name, dict(msg.args),
                                            msg.reply_to, msg.rid)
            if args is None:
                self._refuse("refused_command", why or "?")
                return
            self.bus.publish(topic, dataclasses.replace(msg, args=args))
        elif isinstance(msg, Heartbeat) and topic == topics.heartbeat(self.process_name):
            self._child_beat(env.payload)
            return
        elif isinstance(msg, Alarm) and topic == topics.alarm(self.process_name):
            self.bus.publish(topic, dataclasses.replace(msg, name=self.process_name))
        elif isinstance(msg, Probe) and self.policy.own_topic(topic):
            self.bus.publish(topic, msg)
        else:
            self._refuse("refused_publish", f"a {env.type!r} message on {topic!r}")
            return
        self.counters["relayed_out"] += 1

    def _child_beat(self, payload: dict[str, Any]) -> None:
        """Kept for the parent's heartbeat; new sockets or processes the strategy asked for
        (refused by the child's seccomp, counted by its audit hook) raise the alarm here."""
        before = self.child_hb.get("counters", {}) if self.child_hb else {}
        self.child_hb = payload
        now = payload.get("counters", {})
        for key in ("socket_attempts", "process_attempts"):
            if isinstance(now.get(key), int) and now[key] > before.get(key, 0):
                self.alarm("refused", True, f"the strategy tried: {now[key]} new "
                           f"{key.split('_')[0]}(s), refused by its sandbox")

    # ------------------------------------------------------------------ bus -> child

    def _to_child(self, env: Any) -> None:
        if env.cls is Reply:
            p = env.payload
            self.policy.reply(p.get("rid"), p.get("ok"), p.get("result"))
        self.writer.write(frame(MSG, env.topic, pack_frame(env.payload)))
        self.counters["relayed_in"] += 1

    # ------------------------------------------------------------------ heartbeat

    def heartbeat(self) -> Heartbeat:
        hb = super().heartbeat()
        child = getattr(self, "child_hb", None)
        if child is None:
            return hb
        counters = {**hb.counters, **child.get("counters", {}),
                    **{k: v for k, v in self.counters.items()}}
        state = child.get("state", hb.state) if hb.state == "RUNNING" else hb.state
        return dataclasses.replace(hb, state=state, counters=counters,
                                   alarms={**child.get("alarms", {}), **hb.alarms})


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _subreaper() -> None:
    """Orphans of the child (a grandchild that called setsid) become ours, not init's."""
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)   # the child leads its own process group
    except (ProcessLookupError, PermissionError):
        pass


def _reap_descendants() -> None:
    """SIGKILL whatever is still our child (orphans we inherited as subreaper), and reap it."""
    me = os.getpid()
    for _ in range(50):
        left = _children(me)
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in left:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.01)


def _children(ppid: int) -> list[int]:
    out: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for n in names:
        if not n.isdigit():
            continue
        try:
            with open(f"/proc/{n}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == ppid:
            out.append(int(n))
    return out


def _read_secrets() -> dict[str, str]:
    """The bus's CURVE keys, from the launcher's pipe (never the environment): the parent's
    alone, the child gets none."""
    fd = os.environ.pop(SECRET_FD, None)
    if fd is None:
        return {}
    with os.fdopen(int(fd), "rb") as f:
        data = f.read()
    return {k: v for k, v in json.loads(data or b"{}").items() if v}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m strategy_host.parent NAME (use `chillly strategy-host NAME`)",
              file=sys.stderr)
        return 2
    name = argv[0]
    settings = load_settings(HostSettings, _env_file=None, strategy_name=name,
                             process_name=f"strategy-{name}", **_read_secrets())
    try:
        inst = read_instance(settings.strategies_file, name)
    except LoadError as exc:
        print(f"chillly strategy-host: {exc}", file=sys.stderr, flush=True)
        return 2
    bound: type[Parent] = type("BoundParent", (Parent,), {"inst": inst})
    rc = run_with_settings(bound, settings)
    return bound.exit_code if bound.exit_code else rc


if __name__ == "__main__":
    sys.exit(main())
