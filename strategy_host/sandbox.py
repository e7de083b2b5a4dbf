"""The strategy host's sandbox, applied before any strategy code is imported and before the bus
starts its threads (Landlock binds the calling thread and the threads it creates later).

Layers, each reported in one log line as applied or unavailable (and why):
- `cgroup`: the host's own cgroup, prepared by its parent (strategy_host/cgroups.py): a task
  limit and a CPU weight; joined first, before any other thread exists.
- `env`: the host was exec'd with a scrubbed environment (strategy_host/launcher.py), so no
  venue credential or bus secret is in /proc/<pid>/environ. Checked here, done by the launcher.
- `rlimits`: address space (STRATEGY_MEMORY_MB), open files, file size, no core files, and
  a lower scheduling priority (STRATEGY_NICE) than the system's own processes.
- `no_new_privs`: prctl(PR_SET_NO_NEW_PRIVS): no setuid binary can give privileges back.
- `user`: started as root, the host drops to an unprivileged user (STRATEGY_USER, `nobody`);
  its state directory is handed to that user first.
- `pdeathsig`: SIGKILL when the parent (supervisord) dies; set after the user change, which
  clears it. No orphan keeps trading.
- `landlock`: read-only access to the code, the virtualenv and the system libraries; write
  access only to the instance's state directory; nothing else (not .env, not /proc).
- `landlock_net`: no TCP connect and no TCP bind at all (Landlock ABI >= 4): the child's bus is
  the socketpair to its trusted parent (strategy_host/pipe.py).
- `seccomp`: no new socket of any family, no new process (threads only), no exec, no ptrace,
  no process_vm_*, no bpf, no mounts, namespaces or keyrings (libseccomp through `pyseccomp`,
  imported with a guard).

Landlock is called through ctypes: the `landlock` package on PyPI is a development release that
knows only the ABI 1 file-system rules, not the TCP rules that refuse every connect.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pwd
import resource
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from strategy_host import cgroups
from strategy_host.settings import LAYER_NAMES as LAYERS  # noqa: F401  (re-exported)

# Names that must never reach a strategy host's environment (prefix match, upper case).
SECRET_PREFIXES = ("TOPSTEP_", "BUS_CURVE_", "GATEWAY_", "RISK_", "AWS_", "GITHUB_", "SSH_")
SCRUBBED_MARK = "CHILLLY_SCRUBBED"

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # x86_64 and aarch64
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_ABI1 = (1 << 13) - 1
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2


class SandboxError(Exception):
    """A layer named in STRATEGY_SANDBOX_REQUIRE could not be applied (exit code 2)."""


@dataclass
class Plan:
    """What to apply; built by the host entry from its settings."""

    state_dir: Path
    read_paths: list[Path]
    bus_ports: list[int]
    memory_mb: int = 1024
    max_files: int = 256
    max_file_mb: int = 64
    user: str = "nobody"
    nice: int = 5
    parent_pid: int | None = None
    cgroup: str = ""          # STRATEGY_CGROUP, from the parent (strategy_host/cgroups.py)
    require: set[str] = field(default_factory=set)


@dataclass
class Report:
    applied: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        missing = ", ".join(f"{k} ({v})" for k, v in self.unavailable.items()) or "none"
        return f"sandbox: applied {', '.join(self.applied) or 'none'}; unavailable: {missing}"


def scrubbed_env(env: dict[str, str], keep: dict[str, str]) -> dict[str, str]:
    """The environment a host is exec'd with: a fixed minimum plus `keep` (already filtered
    by the launcher); nothing secret, whatever the parent had."""
    out = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": env.get("LANG", "C.UTF-8"),
           "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", SCRUBBED_MARK: "1"}
    for k, v in keep.items():
        if not k.upper().startswith(SECRET_PREFIXES):
            out[k] = v
    return out


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> None:
    if _libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def apply(plan: Plan) -> Report:
    """Apply every layer it can, in an order where each still has the rights it needs."""
    rep = Report()

    def layer(name: str, fn: object) -> None:
        try:
            reason = fn()  # type: ignore[operator]
        except Exception as exc:  # a layer that fails is reported, never half-silently skipped
            reason = f"{type(exc).__name__}: {exc}"
        if reason:
            rep.unavailable[name] = str(reason)
        else:
            rep.applied.append(name)

    layer("cgroup", lambda: _cgroup(plan))
    layer("env", _check_env)
    layer("rlimits", lambda: _rlimits(plan))
    layer("no_new_privs", lambda: _prctl(PR_SET_NO_NEW_PRIVS, 1))
    seccomp_mod = _import_seccomp()  # loaded while every path is still readable
    # Landlock's rules are built while we can still open every path (as root), enforced after
    # the user change.
    abi = _landlock_abi()
    ruleset: int | str = abi if isinstance(abi, str) else _landlock_rules(plan, abi, rep)
    layer("user", lambda: _drop_user(plan, keep_read=isinstance(ruleset, int)))
    layer("pdeathsig", lambda: _pdeathsig(plan))
    if isinstance(ruleset, str):
        rep.unavailable["landlock"] = ruleset
        rep.unavailable.setdefault("landlock_net", ruleset)
    else:
        layer("landlock", lambda: _landlock_enforce(ruleset))
        if "landlock" in rep.applied and "landlock_net" not in rep.unavailable:
            rep.applied.append("landlock_net")
    layer("seccomp", lambda: _seccomp(seccomp_mod, plan))
    missing = sorted(plan.require & set(rep.unavailable))
    if missing:
        raise SandboxError("required sandbox layer(s) unavailable: "
                           + ", ".join(f"{m} ({rep.unavailable[m]})" for m in missing))
    return rep


def _cgroup(plan: Plan) -> str | None:
    placement = cgroups.decode(plan.cgroup)
    if not placement.dirs:
        return placement.why_not
    cgroups.join(placement.dirs)
    return None


def _check_env() -> str | None:
    if os.environ.get(SCRUBBED_MARK) != "1":
        return "not started through `chillly strategy-host` (environment not scrubbed)"
    bad = [k for k in os.environ if k.upper().startswith(SECRET_PREFIXES)]
    return f"secret-looking variables present: {bad}" if bad else None


def _rlimits(plan: Plan) -> None:
    mem = plan.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_NOFILE, (plan.max_files, plan.max_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    size = plan.max_file_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    if plan.nice:
        os.nice(plan.nice)


PR_SET_KEEPCAPS = 8
CAP_DAC_READ_SEARCH = 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _readable_by_others(path: Path) -> bool:
    """Whether every directory above `path` can be searched by any user (mode o+x)."""
    for p in [path, *path.parents]:
        try:
            if not os.stat(p).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _drop_user(plan: Plan, keep_read: bool) -> str | None:
    """setuid to `plan.user`. When the interpreter lives where that user cannot read (a
    Python under /root), the one capability CAP_DAC_READ_SEARCH is kept so imports still work;
    only when Landlock confines what may be read (`keep_read`), never without it."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(plan.user)
    except KeyError:
        return f"no user {plan.user!r} (STRATEGY_USER)"
    need_read = not all(_readable_by_others(Path(p)) for p in (sys.base_prefix, sys.prefix))
    if need_read and not keep_read:
        return (f"{sys.base_prefix} is not readable by {plan.user} and Landlock is not there "
                "to confine a read capability")
    plan.state_dir.mkdir(parents=True, exist_ok=True)
    for p in [plan.state_dir, *plan.state_dir.iterdir()]:
        os.chown(p, pw.pw_uid, pw.pw_gid)
    if need_read:
        _prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    if need_read:
        head = _CapHeader(0x20080522, 0)          # _LINUX_CAPABILITY_VERSION_3
        data = (_CapData * 2)()
        data[0].effective = data[0].permitted = 1 << CAP_DAC_READ_SEARCH
        if _libc().capset(ctypes.byref(head), data) != 0:
            return f"capset: {os.strerror(ctypes.get_errno())}"
        _prctl(PR_SET_KEEPCAPS, 0)
    if os.getuid() == 0 or os.geteuid() == 0:
        return "setuid did not take"
    return None


def _pdeathsig(plan: Plan) -> str | None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if plan.parent_pid is not None and os.getppid() != plan.parent_pid:
        os._exit(1)  # the parent died before the signal was armed: do not run orphaned
    return None


def _landlock_abi() -> int | str:
    if not sys.platform.startswith("linux"):
        return "not Linux"
    libc = _libc()
    abi = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 0:
        err = ctypes.get_errno()
        return {errno.ENOSYS: "kernel built without Landlock",
                errno.EOPNOTSUPP: "Landlock disabled at boot (lsm=)"}.get(
                    err, os.strerror(err))
    return int(abi)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def _landlock_rules(plan: Plan, abi: int, rep: Report) -> int | str:
    """Build the ruleset (an fd) while every path can still be opened; or why not."""
    libc = _libc()
    fs_all = _FS_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0) \
        | (_FS_IOCTL_DEV if abi >= 5 else 0)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = _RulesetAttr(fs_all, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    fd = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                      ctypes.c_uint32(0))
    if fd < 0:
        return f"create_ruleset: {os.strerror(ctypes.get_errno())}"
    read_dir = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    read_file = _FS_EXECUTE | _FS_READ_FILE
    system = [Path(p) for p in ("/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache",
                                "/etc/localtime", "/dev/urandom", "/dev/random")]
    plan.state_dir.mkdir(parents=True, exist_ok=True)
    grants = [(p, read_dir if p.is_dir() else read_file) for p in [*system, *plan.read_paths]]
    grants.append((Path("/dev/null"), _FS_READ_FILE | _FS_WRITE_FILE))
    grants.append((plan.state_dir, fs_all))
    try:
        for path, access in grants:
            if not path.exists():
                continue
            if not path.is_dir():
                access &= _FS_EXECUTE | _FS_READ_FILE | _FS_WRITE_FILE | _FS_TRUNCATE
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneath(access & fs_all, pfd)
                if libc.syscall(_SYS_ADD_RULE, fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0):
                    raise OSError(ctypes.get_errno(), f"add_rule {path}")
            finally:
                os.close(pfd)
        if net:
            for port in plan.bus_ports:
                rule_n = _NetPort(_NET_CONNECT_TCP, port)
                if libc.syscall(_SYS_ADD_RULE, fd, _RULE_NET_PORT, ctypes.byref(rule_n), 0):
                    raise OSError(ctypes.get_errno(), f"add_rule port {port}")
        else:
            rep.unavailable["landlock_net"] = f"Landlock ABI {abi} < 4 has no TCP rules"
    except OSError as exc:
        os.close(fd)
        return f"{exc.strerror}: {exc}"
    return int(fd)


def _landlock_enforce(fd: int) -> str | None:
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        if _libc().syscall(_SYS_RESTRICT_SELF, fd, 0):
            return f"restrict_self: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(fd)
    return None


def _import_seccomp() -> object:
    try:
        import pyseccomp
    except Exception as exc:  # the package or libseccomp.so.2 missing
        return f"pyseccomp unavailable ({exc})"
    return pyseccomp


CLONE_THREAD = 0x00010000


def _seccomp(mod: object, plan: Plan) -> str | None:
    """No new socket of any family (the child's one way out is the socketpair it inherited),
    no new process (threads only: clone without CLONE_THREAD, fork, vfork and exec refused;
    clone3, whose flags a filter cannot read, answers ENOSYS so the C library falls back to
    clone), no ptrace or reading another process's memory, no bpf, mounts, namespaces,
    keyrings or kernel modules."""
    if isinstance(mod, str):
        return mod
    sc = mod
    eperm = sc.ERRNO(errno.EPERM)  # type: ignore[attr-defined]
    f = sc.SyscallFilter(defaction=sc.ALLOW)  # type: ignore[attr-defined]
    f.add_rule(eperm, "socket")
    f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))  # type: ignore[attr-defined]
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # type: ignore[attr-defined]
    for name in ("fork", "vfork", "execve", "execveat",
                 "ptrace", "process_vm_readv", "process_vm_writev", "bpf", "perf_event_open",
                 "mount", "umount2", "unshare", "setns", "add_key", "request_key", "keyctl",
                 "init_module", "finit_module", "kexec_load", "personality", "userfaultfd"):
        try:
            f.add_rule(eperm, name)
        except Exception:  # a syscall this architecture lacks (fork, vfork on aarch64)
            continue
    f.load()
    return None


# Python's audit events for what the seccomp layer refuses: counted, so that what a strategy
# tried shows in its host's heartbeat (the kernel refuses without telling anyone).
_SOCKET_EVENTS = frozenset({"socket.__new__"})
_PROCESS_EVENTS = frozenset({"os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn",
                             "os.system", "subprocess.Popen"})


class Attempts:
    """Counts new sockets and processes asked for once `arm`ed (after the host's own sockets
    exist): an audit hook cannot be removed, and every such call is refused by seccomp."""

    def __init__(self) -> None:
        self.armed = False
        self.sockets = 0
        self.processes = 0

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.armed:
            return
        if event in _SOCKET_EVENTS:
            self.sockets += 1
        elif event in _PROCESS_EVENTS:
            self.processes += 1


attempts = Attempts()
