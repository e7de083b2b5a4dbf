"""A strategy host's own cgroup, where the kernel offers one: a task limit and a CPU weight.

The parent prepares `chillly/strategy-NAME` under cgroup v2 (`pids.max`, `cpu.weight`) or v1's
`pids` and `cpu` hierarchies (`pids.max`, `cpu.shares` = weight scaled from v2's default of 100
to v1's 1024), and its sandboxed child joins it as the first layer of its sandbox, before any
other thread or any strategy code exists. Everything the child starts (threads included) is in it
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


def prepare(name: str, max_procs: int, cpu_weight: int, root: Path = ROOT) -> Placement:
    """Create this host's group(s) with their limits (the parent, before starting the child,
    which joins them itself before anything else runs: `join`); a Placement, or why not."""
    try:
        if (root / "cgroup.controllers").exists():          # v2, unified
            d = root / GROUP / name
            d.mkdir(parents=True, exist_ok=True)
            controllers = (root / "cgroup.controllers").read_text().split()
            wanted = " ".join(f"+{c}" for c in ("pids", "cpu") if c in controllers)
            if wanted:
                _write(root / "cgroup.subtree_control", wanted)
                _write(root / GROUP / "cgroup.subtree_control", wanted)
            if (d / "pids.max").exists():
                _write(d / "pids.max", str(max_procs))
            if (d / "cpu.weight").exists():
                _write(d / "cpu.weight", str(cpu_weight))
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
            dirs.append(d)
        if not dirs:
            return Placement(why_not=f"no cgroup hierarchy under {root}")
        return Placement(dirs)
    except OSError as exc:
        return Placement(why_not=f"{exc.strerror or exc}: {getattr(exc, 'filename', '')}")


def join(dirs: list[Path]) -> None:
    """Move the calling process into `dirs` (the child, first thing in its sandbox, while it
    still may): every thread and process it makes after is in them."""
    for d in dirs:
        _write(d / "cgroup.procs", "0")     # 0: the writing process itself


def encode(p: Placement) -> str:
    """For the child's environment (STRATEGY_CGROUP): the directories, or `!` and why not."""
    return ":".join(str(d) for d in p.dirs) if p.dirs else "!" + p.why_not


def decode(text: str) -> Placement:
    if text.startswith("!") or not text:
        return Placement(why_not=text[1:] or "not placed by the host's parent")
    return Placement([Path(t) for t in text.split(":")])


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
