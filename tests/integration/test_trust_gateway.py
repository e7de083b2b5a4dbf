"""The gateway decides who may do what from the door a command came through (issue 20 §1).

A real gateway on the real sim. Over the bus (where a sender's name is whatever it says) the
trader's commands are refused, counted and alarmed: halt, resume, `risk --set-high-water`, a
manual order, and a strategy's cancel of another strategy's order; the venue's order list and
the gate's state are the judges. The same commands over the tools socket, from the trader's
own user, work. A process of another user reaching the socket (its directory's mode loosened
by hand and the socket
reached through a descriptor of it, so that only the peer-credential check stands) is refused and counted.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from pathlib import Path

import pytest

from chillly.bus import Bus
from chillly.codec import pack_frame, unpack_frame
from tests.integration.test_gateway_support import Stack, Tap, stack_fixture
from tests.support import START_TIMEOUT, aeventually

stack = stack_fixture()

pytestmark = pytest.mark.timeout(150)



def foreign_resume(path: Path, uid: int, gid: int) -> str:
    """`resume` over the tools socket from a forked process running as `uid`: its directory is
    opened first (the test's temp directories are the trader's, mode 0700), the socket is
    reached through that descriptor, so only the gateway's peer-credential check stands."""
    r, w = os.pipe()
    dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(f"/proc/self/fd/{dirfd}/{path.name}")
            data = pack_frame({"rid": "foreign-1", "name": "resume", "args": {}})
            try:
                s.sendall(struct.pack(">I", len(data)) + data)
            except BrokenPipeError:
                pass    # the gateway refused at once and closed: its answer is still to read
            os.write(w, repr(unpack_frame(s.recv(65536)[4:])).encode())
        except BaseException as exc:
            os.write(w, repr(exc).encode())
        os._exit(0)
    os.close(w)
    os.close(dirfd)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return out.decode()


async def test_the_bus_refuses_the_traders_commands_and_the_tools_socket_serves_them(
        stack: Stack) -> None:
    acc = stack.new_account()
    stack.gateway(acc)
    env = stack.env
    alpha = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], "strategy-alpha")
    beta = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], "strategy-beta")
    alarms: list[dict] = []
    beta.on("alarm.gateway.", lambda e: alarms.append(e.payload))
    async with Tap(env) as tap:
        await alpha.ready(timeout=START_TIMEOUT)
        await beta.ready(timeout=START_TIMEOUT)
        await tap.ready()
        es = stack.venue.contract("EP")
        px, _ = stack.venue.quote(es["id"])
        tick = float(es["tickSize"])
        far = round(round(px / tick) * tick - 200 * tick, 2)
        # alpha's resting order, over the bus under its own name: served
        r = await alpha.request("gateway", "submit", {
            "client_id": "alpha-1", "contract": "ES", "side": "buy", "size": 1,
            "type": "limit", "limit_price": far}, timeout=10, attempts=1)
        assert r.ok and r.result["status"] == "accepted", r
        oid = r.result["order_id"]

        # beta (or anyone) over the bus: none of the trader's commands
        async def refused(bus: Bus, name: str, args: dict) -> str:
            reply = await bus.request("gateway", name, args, timeout=10, attempts=1)
            assert not reply.ok, (name, reply)
            return reply.error or ""
        assert "tools socket" in await refused(beta, "halt", {"reason": "forged"})
        assert "tools socket" in await refused(tap.bus, "halt", {})
        assert "tools socket" in await refused(beta, "resume", {})
        assert "tools socket" in await refused(beta, "risk", {"set_high_water": 48_000.0})
        assert "tools socket" in await refused(tap.bus, "submit", {
            "client_id": "manual-x1", "contract": "ES", "side": "buy", "size": 1})
        for name, args in (("cancel", {"order_id": oid}),
                           ("modify", {"order_id": oid, "limit_price": far - 4 * tick})):
            reply = await beta.request("gateway", name, args, timeout=10, attempts=1)
            assert reply.ok and reply.result["rule"] == "not_owner", reply.result
        # cancel_all / flatten from beta touch only beta's (none)
        reply = await beta.request("gateway", "cancel_all", {}, timeout=10, attempts=1)
        assert reply.ok and reply.result["cancelled"] == [], reply.result
        # reads are served to anyone on the bus
        reply = await beta.request("gateway", "risk", {}, timeout=10, attempts=1)
        assert reply.ok and reply.result["state"] == "ACTIVE", reply.result
        venue = [o for o in stack.venue.orders(acc) if o["status"] == 1]
        assert [(o["id"], o["limitPrice"]) for o in venue] == [(oid, far)], venue
        await aeventually(lambda: tap.counter("refused_bus") == 5
                          and tap.counter("refused_not_owner") == 2, 10,
                          what="refusals counted in the heartbeat")
        assert any(a["code"] == "refused_command" and a["active"] for a in alarms), alarms
        assert (await tap.ask("risk"))["state"] == "ACTIVE"

        # the trader's tools socket: served
        out = await tap.ask("cancel", {"order_id": oid})
        assert out["status"] == "cancelled", out
        await aeventually(lambda: not [o for o in stack.venue.orders(acc) if o["status"] == 1],
                          10, what="alpha's order cancelled at the venue by the trader")
        assert (await tap.ask("halt", {"reason": "news"}))["state"] == "HALTED"
        assert (await tap.ask("resume"))["state"] == "ACTIVE"

        # another user at the socket: refused by its peer credentials, counted
        if os.geteuid() != 0:
            pytest.skip("needs root to run a client as another user")
        nobody = pwd.getpwnam("nobody")
        os.chmod(tap.tools_path.parent, 0o755)
        os.chmod(tap.tools_path, 0o666)
        try:
            (await tap.ask("halt", {"reason": "again"}))
            out = foreign_resume(tap.tools_path, nobody.pw_uid, nobody.pw_gid)
        finally:
            os.chmod(tap.tools_path.parent, 0o700)
        assert "may not use the trader's tools" in out, out
        assert (await tap.ask("risk"))["state"] == "HALTED"
        await aeventually(lambda: tap.counter("refused_peer") == 1, 10,
                          what="the foreign peer counted")
        await tap.ask("resume")
    await alpha.close()
    await beta.close()
