"""The trader's tools socket: a unix stream socket that only the trader's own user can use.

The bus cannot say who sent a message (every publisher names itself), so what only the trader
may do (halt, resume, risk settings, orders of any owner) is not served on it. The gateway
serves those commands here instead: a socket in a directory of mode 0700 under the venue's run
directory, and each connection's peer credentials (SO_PEERCRED, given by the kernel, not by the
peer) must show the server's own uid. A strategy cannot get here at all (its sandbox refuses
every new socket, and it runs as another user); anyone else is refused, counted and alarmed.

Frames are a 4-byte big-endian length and a msgpack map (chillly/codec.py): a request
`{rid, name, args}` and its reply `{rid, ok, result, error}`. A request id seen before gets the
cached reply, as on the bus, so a tool may resend without a command running twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from chillly.codec import pack_frame, unpack_frame

log = logging.getLogger("tools-socket")

_LEN = struct.Struct(">I")
MAX_FRAME = 1 << 20
SOCKET_NAME = "gateway.sock"

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]
Refused = Callable[[int, int, int], None]


class ToolsError(Exception):
    """A handler's clean refusal (`ok: false` with this text), or a failed client call."""


def socket_path(venue_run_dir: Path) -> Path:
    """Where the gateway of a venue serves the trader's tools: RUN_DIR/<venue>/tools/."""
    return venue_run_dir / "tools" / SOCKET_NAME


@contextmanager
def _short(path: Path) -> Iterator[str]:
    """A path the kernel accepts for a unix socket (108 bytes at most): through an open
    descriptor of its directory when the full path is longer (a deep test directory)."""
    if len(os.fsencode(str(path))) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def peer_ids(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel recorded it."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


async def _read(reader: asyncio.StreamReader) -> Any:
    head = await reader.readexactly(_LEN.size)
    (n,) = _LEN.unpack(head)
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes")
    return unpack_frame(await reader.readexactly(n))


def _frame(obj: Any) -> bytes:
    data = pack_frame(obj)
    return _LEN.pack(len(data)) + data


class ToolsServer:
    """Serves `handler(name, args)` to connections from this process's own uid only."""

    def __init__(self, path: Path, handler: Handler, on_refused: Refused) -> None:
        self.path, self.handler, self.on_refused = path, handler, on_refused
        self.uid = os.geteuid()
        self.server: asyncio.AbstractServer | None = None
        self._ino = -1
        self.cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.counters = {"tools_connections": 0, "tools_commands": 0, "tools_refused": 0}

    async def start(self) -> None:
        d = self.path.parent
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)            # whatever the umask: only the trader's user gets in
        if d.stat().st_uid != self.uid:
            raise PermissionError(f"{d} belongs to uid {d.stat().st_uid}, not to us ({self.uid})")
        try:
            self.path.unlink()         # a socket left by a gateway that died (we hold the lock)
        except FileNotFoundError:
            pass
        with _short(self.path) as p:
            self.server = await asyncio.start_unix_server(self._conn, path=p)
        os.chmod(self.path, 0o600)
        self._ino = self.path.stat().st_ino

    def _ours(self) -> bool:
        try:
            return self.path.stat().st_ino == self._ino
        except OSError:
            return False

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            if self._ours():           # not a successor's socket, bound while we stopped
                try:
                    self.path.unlink()
                except OSError:
                    pass

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters["tools_connections"] += 1
        sock = writer.get_extra_info("socket")
        try:
            pid, uid, gid = peer_ids(sock)
            if uid != self.uid:
                self.counters["tools_refused"] += 1
                self.on_refused(pid, uid, gid)
                writer.write(_frame({"rid": None, "ok": False, "result": None,
                                     "error": f"uid {uid} may not use the trader's tools"}))
                await writer.drain()
                return
            while True:
                try:
                    req = await _read(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                writer.write(_frame(await self._answer(req)))
                await writer.drain()
        except Exception as exc:   # a broken client never takes the server down
            log.warning("tools connection ended: %r", exc)
        finally:
            writer.close()

    async def _answer(self, req: Any) -> dict[str, Any]:
        if not isinstance(req, dict) or not isinstance(req.get("name"), str) \
                or not isinstance(req.get("args", {}), dict):
            return {"rid": None, "ok": False, "result": None, "error": "malformed request"}
        rid = req.get("rid")
        rid = rid if isinstance(rid, str) and rid else None
        if rid is not None:
            if rid in self.cache:
                return self.cache[rid]
            if rid in self.inflight:
                return await asyncio.shield(self.inflight[rid])
        self.counters["tools_commands"] += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if rid is not None:
            self.inflight[rid] = fut
        try:
            try:
                result = await self.handler(req["name"], dict(req.get("args") or {}))
                reply = {"rid": rid, "ok": True, "result": result, "error": None}
            except ToolsError as exc:
                reply = {"rid": rid, "ok": False, "result": None, "error": str(exc)}
            except Exception as exc:
                log.exception("tools command %s failed", req["name"])
                reply = {"rid": rid, "ok": False, "result": None,
                         "error": f"internal error: {exc!r}"}
            fut.set_result(reply)
            if rid is not None:
                self.cache[rid] = reply
                while len(self.cache) > 10_000:
                    self.cache.popitem(last=False)
            return reply
        finally:
            if rid is not None:
                self.inflight.pop(rid, None)


async def ask(path: Path, name: str, args: dict[str, Any] | None = None, *,
              timeout: float = 10.0, rid: str | None = None) -> tuple[bool, Any, str | None]:
    """One command over the tools socket: (ok, result, error)."""
    rid = rid or f"tool-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        with _short(path) as p:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(p), timeout)
    except (FileNotFoundError, ConnectionRefusedError):
        return False, None, f"no gateway at {path}: is it running?"
    except PermissionError:
        return False, None, f"{path}: permission denied (the trader's tools are the trader's)"
    except asyncio.TimeoutError:
        return False, None, f"{path}: no answer within {timeout:.0f}s"
    try:
        writer.write(_frame({"rid": rid, "name": name, "args": args or {}}))
        await writer.drain()
        reply = await asyncio.wait_for(_read(reader), timeout)
    except asyncio.TimeoutError:
        return False, None, f"no reply from the gateway within {timeout:.0f}s"
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        return False, None, f"the gateway closed the tools socket ({exc.__class__.__name__})"
    finally:
        writer.close()
    if not isinstance(reply, dict):
        return False, None, "malformed reply"
    return bool(reply.get("ok")), reply.get("result"), reply.get("error")
