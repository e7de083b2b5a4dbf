"""The sandbox's pure parts (the layers themselves are tested in a real host:
tests/integration/test_strategy_sandbox.py)."""

from __future__ import annotations

from strategy_host.sandbox import SCRUBBED_MARK, scrubbed_env


def test_scrubbed_env_keeps_no_secret() -> None:
    parent = {"TOPSTEP_API_KEY": "k", "BUS_CURVE_CLIENT_SECRET": "s", "HOME": "/root",
              "AWS_SECRET_ACCESS_KEY": "a", "LANG": "C.UTF-8"}
    env = scrubbed_env(parent, {"BUS_PUBLISH_ADDR": "tcp://127.0.0.1:1", "TOPSTEP_X": "leak"})
    assert env[SCRUBBED_MARK] == "1" and env["BUS_PUBLISH_ADDR"] == "tcp://127.0.0.1:1"
    assert not [k for k in env if k.startswith(("TOPSTEP", "BUS_CURVE", "AWS", "HOME"))]
