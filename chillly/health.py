"""What "healthy" means, computed from heartbeats and alarms: shared by `chillly status` (one
look) and `chillly metrics` (always watching), so the two never disagree.

A program is healthy when exactly one instance of it heartbeats, recently, in state RUNNING,
with no active alarm. Everything here is pure: the caller feeds heartbeats and alarms with the
(monotonic, real-time) moment it received them and asks for the view at a moment of its choice.

Why receipt time and not the envelope's `ts`: `ts` is market time, which runs `CLOCK_SPEED`
times faster in a test or replay; a heartbeat's age is a question about the real process.

The programs a deployment expects come from supervisord.conf (its `[program:x]` sections and
the files its `[include]` section names, such as the generated strategy programs), so a
program that never heartbeats at all is reported missing instead of silently absent.
"""

from __future__ import annotations

import configparser
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STALE_AFTER = 2.5   # heartbeat intervals without a beat before an instance is stale
GONE_AFTER = 30.0   # intervals after which an unexpected, silent program is forgotten
STATES = ("STARTING", "RUNNING", "STOPPING", "STOPPED", "FAULTED")
# Counters worth a trader's eye in the one-line view even when others are hidden.
KEY_COUNTERS = ("malformed", "lost", "gaps", "handler_errors", "rejected", "write_errors",
                "rejected_commands", "bad_requests", "recovery_failures", "emit_errors")


@dataclass
class Instance:
    """One process (pid) heartbeating under a program name."""

    pid: int
    state: str
    uptime_ms: int
    counters: dict[str, Any]
    alarms: dict[str, str]
    first_seen: float
    last_seen: float
    beats: int = 1


@dataclass
class Row:
    """The view of one program at one moment."""

    name: str
    expected: bool
    instance: Instance | None
    age: float | None                  # seconds since its last heartbeat
    alarms: dict[str, str]             # code -> text, active only
    duplicates: list[int] = field(default_factory=list)   # other live pids under this name
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def state(self) -> str:
        return self.instance.state if self.instance else "MISSING"

    def as_dict(self) -> dict[str, Any]:
        inst = self.instance
        return {
            "name": self.name, "expected": self.expected, "healthy": self.healthy,
            "state": self.state, "pid": inst.pid if inst else None,
            "uptime_s": inst.uptime_ms / 1000 if inst else None,
            "age_s": None if self.age is None else round(self.age, 3),
            "alarms": self.alarms, "duplicates": self.duplicates, "problems": self.problems,
            "counters": inst.counters if inst else {},
        }


class HealthView:
    """Heartbeats and alarms in, one `Row` per program out."""

    def __init__(self, interval: float, expected: list[str] | None = None) -> None:
        self.interval = interval
        self.expected = list(expected or [])
        self.instances: dict[str, dict[int, Instance]] = {}
        self.alarms: dict[str, dict[str, str]] = {}          # from alarm messages
        self.alarms_raised: dict[tuple[str, str], int] = {}  # (program, code) -> times raised

    def on_heartbeat(self, payload: dict[str, Any], now: float) -> None:
        name, pid = payload["name"], payload["pid"]
        alarms = payload.get("alarms") or {}
        counters = payload.get("counters") or {}
        insts = self.instances.setdefault(name, {})
        inst = insts.get(pid)
        if inst is None:
            if insts:   # a new instance starts with what its heartbeat says, not the old alarms
                self.alarms.pop(name, None)
            insts[pid] = Instance(pid, payload["state"], payload["uptime_ms"], counters,
                                  {str(k): str(v) for k, v in alarms.items()}, now, now)
        else:
            inst.state, inst.uptime_ms, inst.counters = payload["state"], payload["uptime_ms"], counters
            inst.alarms = {str(k): str(v) for k, v in alarms.items()}
            inst.last_seen = now
            inst.beats += 1

    def on_alarm(self, payload: dict[str, Any], now: float) -> None:
        name, code = payload["name"], payload["code"]
        active = self.alarms.setdefault(name, {})
        if payload["active"]:
            if code not in active:
                self.alarms_raised[(name, code)] = self.alarms_raised.get((name, code), 0) + 1
            active[code] = payload.get("text") or ""
        else:
            active.pop(code, None)

    def rows(self, now: float) -> list[Row]:
        names = sorted(set(self.expected) | set(self.instances))
        out = []
        for name in names:
            row = self._row(name, now)
            if row is not None:
                out.append(row)
        return out

    def healthy(self, now: float) -> bool:
        rows = self.rows(now)
        return bool(rows) and all(r.healthy for r in rows)

    def _row(self, name: str, now: float) -> Row | None:
        expected = name in self.expected
        stale_s = STALE_AFTER * self.interval
        insts = sorted(self.instances.get(name, {}).values(), key=lambda i: i.first_seen)
        if not expected and insts and now - insts[-1].last_seen > GONE_AFTER * self.interval:
            self.instances.pop(name, None)   # a tool or test peer that went away long ago
            return None
        if not insts:
            return Row(name, expected, None, None, dict(self.alarms.get(name, {})),
                       problems=["missing: expected by supervisord.conf, no heartbeat"])
        live = [i for i in insts if i.state not in ("STOPPED",) and now - i.last_seen <= stale_s]
        # Two live instances overlap when the older beat again after the newer first beat:
        # that is two processes, not a restart (which the older's silence shows).
        current = live[-1] if live else insts[-1]
        dups = [i.pid for i in live[:-1] if i.last_seen > current.first_seen]
        age = now - current.last_seen
        alarms: dict[str, str] = {}
        for inst in [*live, current]:   # every live instance's, a duplicate's too
            alarms.update(inst.alarms)
        alarms.update(self.alarms.get(name, {}))
        problems = []
        if dups:
            problems.append(f"duplicate: {len(dups) + 1} instances (pids "
                            f"{', '.join(str(p) for p in [*dups, current.pid])})")
        if age > stale_s:
            problems.append(f"stale: no heartbeat for {age:.1f}s")
        elif current.state == "STOPPED":
            if expected:
                problems.append("stopped")
        elif current.state != "RUNNING":
            problems.append(current.state.lower())
        if alarms:
            problems.append("alarm: " + ", ".join(sorted(alarms)))
        return Row(name, expected, current, age, alarms, dups, problems)


def expected_programs(conf: Path) -> list[str]:
    """Programs supervisord starts on its own: `[program:x]` of `conf` and of the files its
    `[include] files=` globs name (relative to `conf`'s directory, `%(here)s` expanded).
    A program with `autostart=false` is not expected, nor a `redis-server` (the redis bus
    backend's server sends no heartbeat). A missing `conf` expects nothing."""
    if not conf.is_file():
        return []
    here = str(conf.resolve().parent)
    main = _parse(conf)
    paths = [conf]
    if main.has_section("include"):
        for pattern in main.get("include", "files", fallback="").split():
            pattern = pattern.replace("%(here)s", here)
            if not os.path.isabs(pattern):
                pattern = os.path.join(here, pattern)
            paths.extend(Path(p) for p in sorted(glob.glob(pattern)))
    names: list[str] = []
    for path in paths:
        cp = main if path == conf else _parse(path)
        for section in cp.sections():
            if not section.startswith("program:"):
                continue
            if cp.get(section, "autostart", fallback="true").strip().lower() in ("false", "0", "no"):
                continue
            command = cp.get(section, "command", fallback="").split()
            if command and os.path.basename(command[0]) == "redis-server":
                continue   # BUS_BACKEND=redis's server: no CHILLLY process, so no heartbeat
            name = section.split(":", 1)[1].strip()
            if name not in names:
                names.append(name)
    return names


def _parse(path: Path) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser(strict=False)
    try:
        cp.read(path)
    except configparser.Error:
        pass   # a half-written generated file: its programs are simply not expected yet
    return cp
