"""The one serialization seam of the bus: `[topic, msgpack payload]` frames in and out.

Nothing else in the project calls msgpack for bus traffic. Decoding is strict: two frames, a
UTF-8 topic, a msgpack map that matches the schema of its `type` and version (chillly.messages).
Anything else raises `DecodeError`, which subscribers count and drop instead of dying.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import msgpack

_unpackb = msgpack.unpackb

from chillly.messages import CHECKERS as _checkers
from chillly.messages import Message, SchemaError, validate


class DecodeError(ValueError):
    """A frame set that is not a valid bus message."""


class Envelope(NamedTuple):
    """A decoded, validated message: its topic, its payload map and its message class.

    `sender` is who sent it as the bus backend vouches for it (the in-memory client, the Redis
    ACL user), never the payload's own `src`; None where the backend cannot vouch (ZeroMQ)."""

    topic: str
    payload: dict[str, Any]
    cls: type[Message]
    sender: str | None = None

    @property
    def src(self) -> str:
        return self.payload["src"]

    @property
    def seq(self) -> int:
        return self.payload["seq"]

    @property
    def inst(self) -> str:
        """The publishing instance (one run of `src`); `src` itself for a publisher that does
        not say (the field is optional on the wire)."""
        return self.payload.get("inst") or self.payload["src"]

    @property
    def type(self) -> str:
        return self.payload["type"]

    def message(self) -> Message:
        """The typed, immutable message."""
        return self.cls.from_payload(self.payload)


_new_tuple = tuple.__new__


def encode_payload(body: dict[str, Any], src: str, seq: int, ts: int,
                   inst: str | None = None) -> bytes:
    body["src"] = src
    body["seq"] = seq
    body["ts"] = ts
    if inst is not None:
        body["inst"] = inst
    return msgpack.packb(body, use_bin_type=True)


def encode(topic: str, msg: Message, src: str, seq: int, ts: int,
           inst: str | None = None) -> list[bytes]:
    """Frames for one message; the envelope's `src`, `seq`, `ts` (and `inst`) are stamped here."""
    return [topic.encode("utf-8"), encode_payload(msg.body(), src, seq, ts, inst)]


def unpack(data: bytes) -> Any:
    """Raw msgpack decode without schema checks (for `chillly tap`)."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise DecodeError(f"payload is not msgpack: {exc.__class__.__name__}") from None


def decode(frames: Sequence[bytes], sender: str | None = None) -> Envelope:
    """Decode and validate one message, or raise DecodeError saying what is wrong.

    Runs for every message every subscriber receives, so it calls msgpack and the schema
    checker directly (bench/bus.py measures it against raw msgpack)."""
    if len(frames) != 2:
        raise DecodeError(f"expected 2 frames, got {len(frames)}")
    topic_b, data = frames
    try:
        topic = topic_b.decode()
    except UnicodeDecodeError:
        raise DecodeError("topic is not UTF-8") from None
    try:
        payload = _unpackb(data, strict_map_key=False)   # raw=False is msgpack's default
    except Exception as exc:  # msgpack raises several unrelated types
        raise DecodeError(f"payload is not msgpack: {exc.__class__.__name__}") from None
    try:
        try:
            # The common case in one lookup: a map whose `type` names a registered message.
            cls = _checkers[payload["type"]](payload)
        except (KeyError, TypeError):
            # Not a map, no or an unhashable `type`, an unknown one: `validate` says which.
            cls = validate(payload)
    except SchemaError as exc:
        raise DecodeError(str(exc)) from None
    return _new_tuple(Envelope, (topic, payload, cls, sender))   # Envelope(...) minus a call


def pack_frame(obj: Any) -> bytes:
    """A plain msgpack map for a point-to-point stream (the tools socket, a strategy host's
    pipe): no topic and no envelope, since the stream itself says who is at the other end."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack_frame(data: bytes) -> Any:
    """The inverse of `pack_frame`; DecodeError when it is not msgpack."""
    return unpack(data)
