"""A strategy host's own cgroup, where the kernel offers one: a task limit and a CPU weight.

The parent places its sandboxed child in `chillly/strategy-NAME` under cgroup v2 (`pids.max`,
`cpu.weight`) or v1's `pids` and `cpu` hierarchies (`pids.max`, `cpu.shares` = weight scaled
from v2's default of 100 to v1's 1024). Everything the child starts (threads included) is in it
and counted against STRATEGY_MAX_PROCS, and under load it gets its weight of the CPU against
the broker, the feeds and the gateway (100 each), whatever its threads do.

Not `RLIMIT_NPROC`: that counts every task of the user, and every host runs as the same
unprivileged user, so one host could use up the others' share. Without a cgroup (no root, no
writable hierarchy) the child's address-space limit still bounds its threads (each reserves a
stack), its nice value yields the CPU, and its seccomp filter refuses new processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "chillly"


@dataclass
class Placement:
    dirs: list[Path] = field(default_factory=list)
    why_not: str = ""

    def line(self) -> str:
        if self.dirs:
            return "cgroup " + ", ".join(str(d) for d in self.dirs)
        return f"no cgroup ({self.why_not})"

    def remove(self) -> None:
        """Remove the (empty, once the child is gone) groups."""
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def place(pid: int, name: str, max_procs: int, cpu_weight: int,
          root: Path = ROOT) -> Placement:
    """Put `pid` in its own cgroup with these limits; a Placement saying where, or why not."""
    try:
        if (root / "cgroup.controllers").exists():          # v2, unified
            d = root / GROUP / name
            d.mkdir(parents=True, exist_ok=True)
            controllers = (root / "cgroup.controllers").read_text().split()
            wanted = [c for c in ("pids", "cpu") if c in controllers]
            if wanted:
                _write(root / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
                _write(root / GROUP / "cgroup.subtree_control",
                       " ".join(f"+{c}" for c in wanted))
            if (d / "pids.max").exists():
                _write(d / "pids.max", str(max_procs))
            if (d / "cpu.weight").exists():
                _write(d / "cpu.weight", str(cpu_weight))
            _write(d / "cgroup.procs", str(pid))
            return Placement([d])
        dirs = []
        for ctl, knob, value in (("pids", "pids.max", str(max_procs)),
                                 ("cpu", "cpu.shares", str(max(2, cpu_weight * 1024 // 100)))):
            base = root / ctl
            if not base.is_dir():
                continue
            d = base / GROUP / name
            d.mkdir(parents=True, exist_ok=True)
            _write(d / knob, value)
            _write(d / "cgroup.procs", str(pid))
            dirs.append(d)
        if not dirs:
            return Placement(why_not=f"no cgroup hierarchy under {root}")
        return Placement(dirs)
    except OSError as exc:
        return Placement(why_not=f"{exc.strerror or exc}: {getattr(exc, 'filename', '')}")


def tasks_of(placement: Placement) -> int | None:
    """How many tasks the group holds now (for the heartbeat), or None."""
    for d in placement.dirs:
        p = d / "pids.current"
        if p.exists():
            try:
                return int(p.read_text())
            except (OSError, ValueError):
                return None
    return None
