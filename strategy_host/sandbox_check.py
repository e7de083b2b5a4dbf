"""`python -m strategy_host.sandbox_check`: which strategy sandbox layers this platform lacks,
in one line, for `scripts/run` to say before the system starts (silent when none is missing).

Landlock, seccomp and the parent-death signal are Linux's: on WSL2 they depend on its kernel,
on macOS there are none, and a Linux kernel may be built or booted without Landlock. A strategy
host still starts without them (unless STRATEGY_SANDBOX_REQUIRE names one: then it refuses,
exit 2), so the trader should know before trusting a strategy's code. Only queries here: the
layers are applied by strategy_host/sandbox.py in each host.
"""

from __future__ import annotations

import os
import platform
import sys

from strategy_host.sandbox import _import_seccomp, _landlock_abi


def missing() -> dict[str, str]:
    """Layer name -> why it is unavailable on this machine."""
    if not sys.platform.startswith("linux"):
        why = f"Linux only ({platform.system() or sys.platform})"
        return {"landlock": why, "landlock_net": why, "seccomp": why, "pdeathsig": why}
    out: dict[str, str] = {}
    abi = _landlock_abi()
    if isinstance(abi, str):
        out["landlock"] = out["landlock_net"] = abi
    elif abi < 4:
        out["landlock_net"] = f"Landlock ABI {abi} < 4 has no TCP rules"
    seccomp = _import_seccomp()
    if isinstance(seccomp, str):
        out["seccomp"] = seccomp
    return out


def line(gone: dict[str, str], required: list[str]) -> str | None:
    if not gone:
        return None
    fatal = [n for n in required if n in gone]
    then = (f"strategies requiring {', '.join(fatal)} (STRATEGY_SANDBOX_REQUIRE) will not start"
            if fatal else "strategies run with the other layers")
    return (f"run: strategy sandbox on {platform.system()} {platform.release()}: missing "
            + "; ".join(f"{name} ({why})" for name, why in gone.items())
            + f"; {then} (docs/going-live.md, where CHILLLY runs)")


def main() -> int:
    required = [n.strip() for n in os.environ.get("STRATEGY_SANDBOX_REQUIRE", "").split(",")
                if n.strip()]
    text = line(missing(), required)
    if text:
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
