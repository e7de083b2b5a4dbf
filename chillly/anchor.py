"""The accelerated clock's anchor kept with the state it produced, so market time never runs
backwards over saved state.

Market time is `anchor + (real - anchor) * speed` (chillly/clock.py). Pinning the anchor to
"now" at every start (what `scripts/run` once did) sends market time back to the wall clock on
each restart: a sim that had run to Monday 05:54 CT came back at Sunday 06:52 CT with Monday's
positions. The anchor is therefore saved in RUN_DIR/<venue>/clock-anchor.json and chosen again
from it at the next start (`python -m chillly.anchor`, called by `scripts/run`):

- CLOCK_ANCHOR given: it is used as given (and saved); a process whose state is later refuses it;
- the same CLOCK_SPEED as saved: the saved anchor (market time went on while the system was
  down, at that speed);
- another CLOCK_SPEED: the anchor that makes market time go on from where the saved clock is now;
- nothing saved: now.

Every process that keeps state (the sim's SIM_STATE_PATH, the gateway's risk memory, feed-bars'
marks) also checks, at start, that market time is not earlier than its state's (`refuse_earlier`):
one line, exit 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from chillly.clock import ms_to_iso
from chillly.errors import StartupError
from chillly.files import write_atomic
from chillly.settings import Settings, load_settings

ANCHOR_FILE = "clock-anchor.json"


def market_ms(anchor_ms: int, speed: float, real_ms: float) -> float:
    """Market time of an accelerated clock at real time `real_ms` (chillly/clock.py)."""
    return anchor_ms + (real_ms - anchor_ms) * speed


def choose_anchor(saved: tuple[int, float] | None, speed: float, real_ms: int,
                  given_ms: int | None = None) -> int | None:
    """The anchor to start with (None: a speed-1 clock, plain wall time)."""
    if speed == 1.0:
        return None
    if given_ms is not None:
        return given_ms
    if not saved:
        return real_ms
    old_anchor, old_speed = saved
    if old_speed == speed:
        return old_anchor
    # Continue from the saved clock's market time now: a + (R - a) * s = M  =>  a = (M - R s) / (1 - s)
    now_market = market_ms(old_anchor, old_speed, real_ms)
    return int((now_market - real_ms * speed) / (1.0 - speed))


def read_saved(path: Path) -> tuple[int, float] | None:
    """The saved (anchor ms, speed), or None when there is none (a corrupt file: ValueError naming it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    try:
        return int(data["anchor_ms"]), float(data["speed"])
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"{path}: expected {{\"anchor_ms\": ms, \"speed\": number}}") from None


def save(path: Path, anchor_ms: int, speed: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"anchor_ms": anchor_ms, "anchor": ms_to_iso(anchor_ms),
                                   "speed": speed}, indent=1))


def refuse_earlier(what: str, state_ms: int | None, now_ms: int) -> None:
    """Stop the start (StartupError: one line, exit 2) when market time is before `state_ms`,
    the market time of the state `what` was saved at."""
    if state_ms is None or now_ms >= state_ms:
        return
    raise StartupError(
        f"{what} is from market time {ms_to_iso(state_ms)} but market time is now "
        f"{ms_to_iso(now_ms)}: refusing to run time backwards over saved state (start with "
        f"scripts/run, which keeps the clock's anchor in RUN_DIR/<venue>/{ANCHOR_FILE}, or "
        "set CLOCK_ANCHOR/CLOCK_SPEED to a later market time)")


def main() -> int:
    """Print the CLOCK_ANCHOR to export (an empty line for a wall clock) and save it."""
    # Settings refuse an accelerated clock without an anchor: read the speed with a stand-in
    # anchor, and the anchor given (environment or .env) with a stand-in speed.
    settings = load_settings(Settings, clock_anchor=ms_to_iso(int(time.time() * 1000)))
    given_ms = load_settings(Settings, clock_speed=1.0).clock_anchor_ms
    path = settings.venue_run_dir / ANCHOR_FILE
    try:
        saved = read_saved(path)
    except ValueError as exc:
        print(f"chillly anchor: {exc}", file=sys.stderr, flush=True)
        return 2
    speed = settings.clock_speed
    anchor = choose_anchor(saved, speed, int(time.time() * 1000), given_ms)
    if anchor is None:
        print("")
        return 0
    save(path, anchor, speed)
    print(ms_to_iso(anchor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
