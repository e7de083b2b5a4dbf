"""What a strategy's sandboxed child may have its trusted parent do on the bus."""

from __future__ import annotations

from chillly import topics
from strategy_host.pipe import MSG, PUB, Frames, frame
from strategy_host.policy import Policy

ES = "CON.F.US.EP.Z26"


def policy() -> Policy:
    return Policy("alpha", "strategy-alpha", ["ES"], ["5m"])


def test_subscriptions_are_the_instances_own_topics_only() -> None:
    p = policy()
    assert p.subscription("reply.strategy-alpha-12-abc.") is None
    assert p.subscription("_probe.strategy-alpha-12-abc.") is None
    assert p.subscription(topics.order_event(1001, "alpha")) is None
    assert p.subscription(topics.fill_event(1001, "alpha")) is None
    assert p.subscription(topics.position_event(1001, "alpha")) is None
    for refused in ("reply.strategy-beta-1-x.", "reply.", "quote.", "bar.", "cmd.",
                    topics.order_event(1001, "beta"), topics.position_event(1001),
                    topics.bar("5m", ES), topics.quote(ES), topics.bar("1m", "ES"), "hb."):
        assert p.subscription(refused) is not None, refused
    # the id the series cache resolves for ES becomes the instance's
    args, why = p.command("series", "window", {"contract": "ES", "tf": "5m", "last": 1},
                          "reply.strategy-alpha-12-abc.", "r1")
    assert why is None and args is not None
    p.reply("r1", True, {"contract": ES, "bars": []})
    assert p.subscription(topics.bar("5m", ES)) is None
    assert p.subscription(topics.quote(ES)) is None and p.subscription(topics.trade(ES)) is None
    assert p.subscription(topics.bar("1m", ES)) is not None        # not its timeframe


def test_the_id_the_subscriptions_service_resolves_becomes_the_instances() -> None:
    """The host asks the series cache by the id the subscriptions service answered (the cache
    knows a symbol only once the store holds its metadata)."""
    p = policy()
    mine = "reply.strategy-alpha-12-abc."
    assert p.command("series", "window", {"contract": ES}, mine, "r0")[0] is None
    assert p.command("subscriptions", "subscribe", {"contract": "ES"}, mine, "r1")[1] is None
    p.reply("r1", True, {"contract": ES, "changed": False})
    assert p.command("series", "window", {"contract": ES}, mine, "r2")[1] is None
    assert p.subscription(topics.bar("5m", ES)) is None
    # a failed answer teaches nothing
    q = policy()
    q.command("subscriptions", "subscribe", {"contract": "ES"}, mine, "r1")
    q.reply("r1", False, {"contract": ES})
    assert q.command("series", "window", {"contract": ES}, mine, "r2")[0] is None


def test_commands_are_its_own_orders_and_reads_under_its_name() -> None:
    p = policy()
    mine = "reply.strategy-alpha-12-abc."
    for name in ("submit", "cancel", "modify", "cancel_all", "flatten", "account"):
        assert p.command("gateway", name, {"x": 1}, mine, "r") == ({"x": 1}, None)
    assert p.command("gateway", "orders", {"owner": "beta"}, mine, "r")[0] == {"owner": "alpha"}
    assert p.command("gateway", "positions", {}, mine, "r")[0] == {"owner": "alpha"}
    assert p.command("subscriptions", "subscribe", {"contract": "ES"}, mine, "r")[1] is None
    for service, name, args in (("gateway", "halt", {}), ("gateway", "resume", {}),
                                ("gateway", "risk", {"set_high_water": 1.0}),
                                ("gateway", "risk", {}),
                                # the account's day, every owner's: the trader's and web's
                                ("gateway", "fills", {}), ("gateway", "refusals", {}),
                                ("gateway", "refusals", {"owner": "alpha"}),
                                ("subscriptions", "subscribe", {"contract": "NQ"}),
                                ("subscriptions", "unsubscribe", {"contract": "ES"}),
                                ("series", "window", {"contract": "NQ"}),
                                ("feeds", "backfill", {"contract": "ES"})):
        args_out, why = p.command(service, name, args, mine, "r")
        assert args_out is None and why, (service, name)
    # a reply sent anywhere but to the child itself
    assert p.command("gateway", "submit", {}, "reply.strategy-beta-1-x.", "r")[0] is None
    assert p.command("gateway", "submit", {}, "bar.1m.ES.", "r")[0] is None


def test_frames_split_a_stream_at_any_boundary() -> None:
    data = frame(PUB, "cmd.gateway.submit.", b"\x81\xa1a\x01") + frame(MSG, "quote.X.", b"")
    for cut in range(len(data) + 1):
        f = Frames()
        got = list(f.feed(data[:cut])) + list(f.feed(data[cut:]))
        assert got == [(PUB, "cmd.gateway.submit.", b"\x81\xa1a\x01"), (MSG, "quote.X.", b"")]
