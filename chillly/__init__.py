"""CHILLLY's kernel: what every process shares (bus, codec, lifecycle, settings, clock, topics).

`PARENT_PID` is the parent's pid as seen when this package is first imported, the earliest
moment our code runs in a process: `chillly.process.die_with_parent` compares against it, so a
parent that died while the interpreter was still importing is noticed too.
"""

import os as _os

PARENT_PID = _os.getppid()
