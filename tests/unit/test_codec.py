"""The codec seam: what goes out comes back the same; what is malformed is rejected cleanly."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chillly.codec import DecodeError, decode, encode
from chillly import topics
from chillly.messages import Bar, Command, Heartbeat, Quote, Reply, registry

BAR = Bar(contract="CON.F.US.EP.Z26", tf="1m", t=1_795_000_000_000, o=6000.25, h=6001.0,
          l=5999.5, c=6000.75, volume=1234, final=True, rev=2)


def test_bar_round_trip_keeps_every_field_and_stamps_envelope() -> None:
    frames = encode(topics.bar("1m", BAR.contract), BAR, "feed-bars", 7, 1_795_000_000_123)
    env = decode(frames)
    assert env.topic == "bar.1m.CON.F.US.EP.Z26."
    assert (env.src, env.seq, env.payload["ts"], env.payload["v"]) == (
        "feed-bars", 7, 1_795_000_000_123, 1)
    assert env.message() == BAR


@pytest.mark.parametrize("msg", [
    Quote(contract="CON.F.US.ENQ.Z26", bid=20000.25, ask=20000.5, last=None),
    Heartbeat(name="store", pid=42, state="RUNNING", uptime_ms=5, counters={"rows": 3}),
    Command(rid="r-1", service="feeds", name="backfill", reply_to="reply.x.", args={"days": 2}),
    Reply(rid="r-1", ok=False, error="no such contract"),
])
def test_every_kind_of_message_round_trips(msg) -> None:  # type: ignore[no-untyped-def]
    assert decode(encode("t.", msg, "src", 1, 2)).message() == msg


def test_integer_prices_are_accepted_as_floats() -> None:
    frames = encode("bar.1m.X.", BAR, "s", 1, 1)
    payload = msgpack.unpackb(frames[1])
    payload["o"] = 6000
    env = decode([frames[0], msgpack.packb(payload)])
    assert env.message().o == 6000


@pytest.mark.parametrize("mutate, reason", [
    (lambda p: p.pop("c"), "missing field 'c'"),
    (lambda p: p.update(volume="many"), "field 'volume' has type str"),
    (lambda p: p.update(final=None), "field 'final' is null"),
    (lambda p: p.update(volume=2.5), "field 'volume' has type float"),
    (lambda p: p.update({"type": "nosuch"}), "unknown message type"),
    (lambda p: p.pop("seq"), "bad envelope"),
    (lambda p: p.update(ts="now"), "bad envelope"),
])
def test_schema_violations_raise_decode_error_naming_the_problem(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    frames = encode("bar.1m.X.", BAR, "s", 1, 1)
    payload = msgpack.unpackb(frames[1])
    mutate(payload)
    with pytest.raises(DecodeError, match=reason):
        decode([frames[0], msgpack.packb(payload)])


@pytest.mark.parametrize("mutate, reason", [
    (lambda p: None, None),
    (lambda p: p.update(x=p.pop("c")), "missing field 'c'"),      # as many keys, one wrong
    (lambda p: p.update(x=p.pop("src")), "bad envelope"),
    (lambda p: p.update(volume="many"), "field 'volume' has type str"),
    (lambda p: p.update(inst=7), "inst is not a string"),
    (lambda p: p.update(v=True), "schema version True"),
])
def test_the_full_shape_fast_path_refuses_what_the_field_by_field_check_does(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    # Every field and the whole envelope, `inst` included: the shape every publisher sends.
    frames = encode("bar.1m.X.", BAR, "s", 1, 1, "s-1-abc")
    payload = msgpack.unpackb(frames[1])
    mutate(payload)
    if reason is None:
        assert decode([frames[0], msgpack.packb(payload)]).message() == BAR
        return
    with pytest.raises(DecodeError, match=reason):
        decode([frames[0], msgpack.packb(payload)])


def test_wrong_schema_version_is_rejected() -> None:
    frames = encode("bar.1m.X.", BAR, "s", 1, 1)
    payload = msgpack.unpackb(frames[1])
    payload["v"] = 99
    with pytest.raises(DecodeError, match="schema version 99"):
        decode([frames[0], msgpack.packb(payload)])


def test_bool_is_not_accepted_where_an_int_is_expected() -> None:
    frames = encode("bar.1m.X.", BAR, "s", 1, 1)
    payload = msgpack.unpackb(frames[1])
    payload["volume"] = True
    with pytest.raises(DecodeError):
        decode([frames[0], msgpack.packb(payload)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=4))
def test_arbitrary_frames_never_crash_the_decoder(frames: list[bytes]) -> None:
    try:
        decode(frames)
    except DecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "v", "src", "seq", "ts", "contract", "tf", "t",
                                        "o", "h", "l", "c", "volume", "final", "x"]),
                       st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                                 st.text(max_size=5), st.booleans()), max_size=14))
def test_arbitrary_maps_are_either_valid_or_rejected(payload: dict) -> None:  # type: ignore[type-arg]
    try:
        env = decode([b"bar.", msgpack.packb(payload)])
    except DecodeError:
        return
    env.message()  # a payload that passed validation must build its typed message


def test_registry_knows_every_documented_type() -> None:
    assert {"bar", "quote", "trade", "depth", "contract", "clock", "subs", "hb", "alarm",
            "probe", "cmd", "reply", "order", "fill", "position", "account"} <= set(registry())


def test_every_message_class_compiles_its_checker_and_codec() -> None:
    """The checker and codec are generated on a class's first use: every class generates them
    (its annotations resolve), and afterwards the type table holds the generated check itself."""
    from chillly.messages import CHECKERS
    for mtype, cls in registry().items():
        cls._compile()
        assert CHECKERS[mtype] is cls._check, mtype
        assert len(cls._spec) == len(cls._fields), mtype


FIRST_USE = """
from chillly.codec import decode, encode
from chillly.messages import CHECKERS, Quote, Trade, SchemaError
stub = CHECKERS["quote"]
q = Quote(contract="X", bid=1.0)
frames = encode("quote.X.", q, "s", 1, 2)                 # Quote.body: first use
assert CHECKERS["quote"] is not stub                       # compiled in place
env = decode(frames)
assert env.message() == q
t = decode(encode("trade.X.", Trade(contract="X", price=1.0, size=1, aggressor=0, t=5), "s", 1, 2))
assert Trade.from_payload(t.payload).price == 1.0          # Trade.from_payload after the check
try:
    CHECKERS["bar"]({"type": "bar", "v": 1, "src": "s", "seq": 1, "ts": 2})  # a stub refuses too
except SchemaError as e:
    print(e)
"""


def test_a_fresh_process_compiles_each_class_on_its_first_use() -> None:
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", FIRST_USE], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "bar: missing field 'contract'"


def test_messages_are_immutable() -> None:
    with pytest.raises(AttributeError):
        BAR.c = 1.0  # type: ignore[misc]
