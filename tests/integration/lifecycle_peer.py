"""A process that gets its lifecycle into trouble on purpose, for tests/integration/test_lifecycle.py.

PEER_TROUBLE=break: a handler on `test.break.` raises a BaseException (not an Exception),
which the bus's per-handler guard does not catch: the receive task ends with it, as it would on
a bug or a socket error in the loop itself (defect 5).
PEER_TROUBLE=block: `on_start` waits on a blocking call in a worker thread (a warm-up read that
takes long) that does not end for a minute (defect 3).
"""

from __future__ import annotations

import asyncio
import sys
import time

from chillly.codec import Envelope
from chillly.process import Service, run_service
from chillly.settings import Settings


class TroubleSettings(Settings):
    peer_trouble: str = "break"


class Breakdown(BaseException):
    pass


class Troubled(Service):
    name = "troubled"
    settings_cls = TroubleSettings
    settings: TroubleSettings

    async def on_start(self) -> None:
        self.bus.on("test.break.", self._break)
        await self.bus.ready(timeout=20)
        if self.settings.peer_trouble == "block":
            print("BLOCKING", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, time.sleep, 60)

    def _break(self, env: Envelope) -> None:
        raise Breakdown("receive loop broken on purpose")


if __name__ == "__main__":
    sys.exit(run_service(Troubled))
