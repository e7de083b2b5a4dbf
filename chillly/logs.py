"""Logging for every process: one line per event on stdout, tagged with the process name.

supervisord captures stdout per program, so a line needs no more than time, process, level,
component and text. Secrets never reach a log line: settings hold them as SecretStr.
"""

from __future__ import annotations

import logging
import sys
import time


class _Formatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"
        line = f"{stamp} {self.process} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(process: str, level: str = "INFO") -> None:
    """Route all logging to stdout with the process name; idempotent."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter(process))
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter (websockets frames, httpx requests) only when debugging.
    for noisy in ("websockets", "httpx", "httpcore", "aiohttp.access", "pysignalr"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
