"""Typed, immutable message definitions: the body of every payload on the bus.

A payload on the wire is one msgpack map: the envelope (`type`, `v`, `src`, `seq`, `ts`, and
the optional `inst`) plus the fields of one message class below. The codec (chillly.codec) stamps the envelope and checks each
incoming payload against the class registered for its `type` and version, so a consumer never
sees a half-formed message. Field types are kept to msgpack's own (int, float, str, bool, list,
dict, None) so a subscriber in any language can read them; docs/wire-format.md lists them all.

To add a message: subclass `Message` with `TYPE` and `V`, frozen dataclass, msgpack-native fields.
Bump `V` when a field changes meaning or a required field is added. A field may not reuse an
envelope name (type, v, src, seq, ts, inst): registration refuses it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

ENVELOPE = ("type", "v", "src", "seq", "ts", "inst")

_REGISTRY: dict[str, type["Message"]] = {}
#: type -> its class's schema check (returns the class or raises SchemaError): the codec's
#: hot path looks a payload's checker up in one step; `validate` is the full path.
CHECKERS: dict[str, Any] = {}


class SchemaError(ValueError):
    """A payload that does not match the message schema for its type and version."""


def _accepts(tp: Any) -> tuple[tuple[type, ...], bool]:
    """Python types accepted on the wire for an annotation, and whether None is allowed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        accepted: list[type] = []
        nullable = False
        for arg in typing.get_args(tp):
            if arg is type(None):
                nullable = True
            else:
                accepted.extend(_accepts(arg)[0])
        return tuple(accepted), nullable
    base = origin or tp
    if base is float:
        return (float, int), False
    if base is int:
        return (int,), False
    if base is Any:
        return (object,), True
    return (base,), False


class Message:
    """Base of every bus message. Subclasses are frozen dataclasses registered by TYPE."""

    TYPE: ClassVar[str] = ""
    V: ClassVar[int] = 1
    _fields: ClassVar[tuple[str, ...]] = ()
    _spec: ClassVar[tuple[tuple[str, tuple[type, ...], bool, bool], ...]] = ()
    _check: ClassVar[Any]
    _compiled: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

    @classmethod
    def _register(cls) -> None:
        """Enter the class in the type table. Its checker and codec are generated on first use
        (`_compile`): a process uses a few of the message types, and generating them all cost
        every process ~40 ms at start."""
        names = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in ENVELOPE:
                raise RuntimeError(f"{cls.__name__}.{f.name} clashes with the envelope")
            names.append(f.name)
        cls._fields = tuple(names)
        if cls.TYPE in _REGISTRY:
            raise RuntimeError(f"message type {cls.TYPE!r} registered twice")
        _REGISTRY[cls.TYPE] = cls
        first = _first_check(cls)
        cls._check = staticmethod(first)
        CHECKERS[cls.TYPE] = first
        cls.body = _first_body  # type: ignore[method-assign]
        cls.from_payload = classmethod(_first_from_payload)  # type: ignore[method-assign,assignment]

    @classmethod
    def _compile(cls) -> None:
        """Generate the class's schema check, `body` and `from_payload` and put them in place of
        the first-use stubs (idempotent: two threads racing here install equal functions; the
        mark is set last, so a thread that sees it finds the generated functions in place)."""
        if cls.__dict__.get("_compiled"):
            return
        hints = typing.get_type_hints(cls)
        spec = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            accepted, nullable = _accepts(hints[f.name])
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            spec.append((f.name, accepted, nullable, required))
        cls._spec = tuple(spec)
        check = _compile_checker(cls)
        cls.body, cls.from_payload = _compile_codec(cls)  # type: ignore[method-assign]
        cls._check = staticmethod(check)
        CHECKERS[cls.TYPE] = check
        cls._compiled = True

    def body(self) -> dict[str, Any]:
        """The message's fields as a plain dict (without the envelope)."""
        d = {"type": self.TYPE, "v": self.V}
        for name in self._fields:
            d[name] = getattr(self, name)
        return d

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "Message":
        """Build the typed message from a payload that `validate` accepted."""
        return cls(**{name: payload[name] for name in cls._fields if name in payload})


_M = typing.TypeVar("_M", bound=type)


@typing.dataclass_transform(frozen_default=True)
def message(cls: _M) -> _M:
    """Class decorator: a frozen, slotted dataclass registered in the type table."""
    dc: Any = dataclass(frozen=True, slots=True)(cls)
    dc._register()
    return typing.cast(_M, dc)


def registry() -> dict[str, type[Message]]:
    return dict(_REGISTRY)


def _first_check(cls: type[Message]) -> Any:
    """The check a class has until its first payload: compile, then check with the real one."""
    def check(payload: dict[str, Any]) -> type[Message]:
        cls._compile()
        return cls._check(payload)  # type: ignore[no-any-return]
    return check


def _first_body(self: Message) -> dict[str, Any]:
    type(self)._compile()
    return self.body()


def _first_from_payload(cls: type[Message], payload: dict[str, Any]) -> Message:
    cls._compile()
    return cls.from_payload(payload)


def _compile_codec(cls: type["Message"]) -> tuple[Any, Any]:
    """Generate `body` and `from_payload` for one message class, straight-line: every message
    published goes through `body` and every `env.message()` through `from_payload`, and the
    generic versions (a loop of getattr; `cls(**fields)`, whose frozen `__init__` sets each
    slot through `object.__setattr__`) cost about twice as much. `from_payload` sets the slots
    directly; defaults and default factories apply as in `__init__`."""
    ns: dict[str, Any] = {"cls": cls, "new": object.__new__, "_MISSING": _MISSING}
    items = [f"'type': {cls.TYPE!r}", f"'v': {cls.V!r}"]
    items += [f"{f.name!r}: self.{f.name}" for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    lines = ["def body(self):", "    return {" + ", ".join(items) + "}",
             "def from_payload(_cls, p):", "    m = new(cls)"]
    for i, f in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        ns[f"S{i}"] = getattr(cls, f.name).__set__
        if f.default is not dataclasses.MISSING:
            ns[f"D{i}"] = f.default
            lines.append(f"    S{i}(m, p.get({f.name!r}, D{i}))")
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"F{i}"] = f.default_factory
            lines.append(f"    x = p.get({f.name!r}, _MISSING)")
            lines.append(f"    S{i}(m, F{i}() if x is _MISSING else x)")
        else:
            lines.append(f"    S{i}(m, p[{f.name!r}])")
    lines.append("    return m")
    exec("\n".join(lines), ns)  # noqa: S102 - generated from our own dataclass fields only
    return ns["body"], classmethod(ns["from_payload"])


def _compile_checker(cls: type["Message"]) -> Any:
    """Generate one straight-line checking function per message class.

    Validation runs on every message every subscriber receives, so it is unrolled and uses
    exact type tests (msgpack only ever produces the exact builtin types), which costs about a
    third of a generic loop over the field spec and keeps the bus client near raw msgpack speed
    (bench/bus.py). A bool is never accepted for an int or float: its exact type is bool.
    """
    ns: dict[str, Any] = {"cls": cls, "SchemaError": SchemaError, "_MISSING": _MISSING,
                          "V": cls.V, "ENV_ERR": f"{cls.TYPE}: bad envelope (src, seq, ts)",
                          "INST_ERR": f"{cls.TYPE}: bad envelope (inst is not a string)"}
    # Fast path: the shape every CHILLLY publisher sends (every field and the whole envelope
    # present): as many keys as that shape has and one expression of exact type tests that
    # reads every one of them (a missing key raises KeyError, so the key set is exactly the
    # shape's: cheaper than comparing key sets, a third of the check). Any other shape, or a
    # failed test, takes the field-by-field path below, which names the fault.
    ns["NKEYS"] = len({"type", "v", "src", "seq", "ts", "inst", *cls._fields})
    tests = ["'type' in p", "type(p['v']) is int", "p['v'] == V", "type(p['src']) is str",
             "type(p['seq']) is int", "type(p['ts']) is int", "type(p['inst']) is str"]
    for i, (name, accepted, nullable, _required) in enumerate(cls._spec):
        if object in accepted:
            tests.append(f"{name!r} in p")
            continue
        alts = [f"t is F{i}_{j}" for j in range(len(accepted))]
        for j, t in enumerate(accepted):
            ns[f"F{i}_{j}"] = t
        if nullable:
            alts.append("t is NoneType")
        alts[0] = f"(t := type(p[{name!r}])) is F{i}_0" if accepted else alts[0]
        tests.append("(" + " or ".join(alts) + ")")
    ns["NoneType"] = type(None)
    lines = [
        "def check(p):",
        "    try:",
        "        if len(p) == NKEYS and " + " and ".join(tests) + ":",
        "            return cls",
        "    except KeyError:",
        "        pass",
        "    v = p.get('v')",
        "    if v != V or type(v) is not int:",
        f"        raise SchemaError({cls.TYPE!r} + ': schema version ' + repr(v) + "
        f"', expected ' + {str(cls.V)!r})",
        "    if (type(p.get('src')) is not str or type(p.get('seq')) is not int",
        "            or type(p.get('ts')) is not int):",
        "        raise SchemaError(ENV_ERR)",
        "    i = p.get('inst')",
        "    if i is not None and type(i) is not str:",
        "        raise SchemaError(INST_ERR)",
    ]
    for i, (name, accepted, nullable, required) in enumerate(cls._spec):
        pre = f"{cls.TYPE}: field {name!r}"
        ns[f"M{i}"] = f"{cls.TYPE}: missing field {name!r}"
        ns[f"N{i}"] = f"{pre} is null"
        ns[f"B{i}"] = f"{pre} has type "
        lines.append(f"    x = p.get({name!r}, _MISSING)")
        if object in accepted:
            type_ok = "True"
        else:
            type_ok = " or ".join(f"tx is T{i}_{j}" for j in range(len(accepted)))
            for j, t in enumerate(accepted):
                ns[f"T{i}_{j}"] = t
        lines.append("    if x is _MISSING:")
        lines.append(f"        if {required}: raise SchemaError(M{i})")
        lines.append("    elif x is None:")
        lines.append(f"        if {not nullable}: raise SchemaError(N{i})")
        lines.append("    else:")
        lines.append("        tx = type(x)")
        lines.append(f"        if not ({type_ok}): raise SchemaError(B{i} + tx.__name__)")
    lines.append("    return cls")
    exec("\n".join(lines), ns)  # noqa: S102 - generated from our own dataclass fields only
    return ns["check"]


_MISSING = object()


def validate(payload: Any) -> type[Message]:
    """Check a decoded payload against its schema; return its message class or raise SchemaError."""
    if type(payload) is not dict:
        raise SchemaError("payload is not a map")
    mtype = payload.get("type")
    cls = _REGISTRY.get(mtype) if type(mtype) is str else None
    if cls is None:
        raise SchemaError(f"unknown message type {mtype!r}")
    return cls._check(payload)  # type: ignore[no-any-return]


def parse(payload: dict[str, Any]) -> Message:
    """Validate and build the typed message for a payload."""
    return validate(payload).from_payload(payload)


# --------------------------------------------------------------------------- market data


@message
class Bar(Message):
    """One OHLCV bar keyed by (contract, tf, t). `final` is published exactly once per key;
    `rev` counts revisions of the same key (partials and late corrections)."""

    TYPE: ClassVar[str] = "bar"
    contract: str
    tf: str
    t: int
    o: float
    h: float
    l: float  # noqa: E741
    c: float
    volume: int  # NOT "v": "v" is the envelope's schema version
    final: bool
    rev: int = 0
    origin: str = "poll"  # "poll" (venue bars), "trades" (built from prints), "agg" (aggregator)


@message
class BarBatch(Message):
    """Many final bars of one (contract, tf) in one message, oldest first: the bulk path for
    history (backfill on `hist.` topics). Each row is `[t, o, h, l, c, volume]`. One message
    carries what would otherwise be hundreds, which is what lets the store ingest history at
    close to disk speed instead of at the bus's per-message cost (bench/store.py)."""

    TYPE: ClassVar[str] = "bars"
    contract: str
    tf: str
    rows: list[Any]
    origin: str = "poll"

    def bars(self) -> list[Bar]:
        """The rows as final `Bar` messages."""
        return [Bar(contract=self.contract, tf=self.tf, t=r[0], o=r[1], h=r[2], l=r[3], c=r[4],
                    volume=r[5], final=True, rev=0, origin=self.origin) for r in self.rows]


@message
class Quote(Message):
    TYPE: ClassVar[str] = "quote"
    contract: str
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: int | None = None
    change: float | None = None
    vt: int | None = None  # venue timestamp, epoch ms


@message
class Trade(Message):
    TYPE: ClassVar[str] = "trade"
    contract: str
    price: float
    size: int
    aggressor: int  # 0 buy, 1 sell (TradeLogType)
    t: int


@message
class Depth(Message):
    """Book changes. `snapshot` true means: clear the book, then apply `levels`.
    Each level is [dom_type, price, volume, current_volume, t]."""

    TYPE: ClassVar[str] = "depth"
    contract: str
    snapshot: bool
    levels: list[Any]


@message
class ContractInfo(Message):
    TYPE: ClassVar[str] = "contract"
    contract: str
    symbol: str
    symbol_id: str
    name: str
    description: str
    tick_size: float
    tick_value: float
    active: bool


@message
class ClockTick(Message):
    """A timeframe boundary passed in market time: the bucket starting at `t` just closed."""

    TYPE: ClassVar[str] = "clock"
    tf: str
    t: int


@message
class SubscriptionSet(Message):
    TYPE: ClassVar[str] = "subs"
    contracts: list[Any]


@message
class ContractRoll(Message):
    """A subscription by symbol moved to the venue's new active contract (`roll.<symbol>.`):
    bars and quotes of `symbol` now come from `new`; `old` is no longer subscribed."""

    TYPE: ClassVar[str] = "roll"
    symbol: str
    old: str
    new: str
    reason: str


# --------------------------------------------------------------------------- processes


@message
class Heartbeat(Message):
    TYPE: ClassVar[str] = "hb"
    name: str
    pid: int
    state: str
    uptime_ms: int
    counters: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, Any] = field(default_factory=dict)  # active alarms: code -> text


@message
class Alarm(Message):
    TYPE: ClassVar[str] = "alarm"
    name: str
    code: str
    active: bool
    text: str = ""


@message
class Probe(Message):
    TYPE: ClassVar[str] = "probe"
    nonce: int


@message
class Command(Message):
    """A request. Handlers are idempotent on `rid`; the one reply goes to topic `reply_to`."""

    TYPE: ClassVar[str] = "cmd"
    rid: str
    service: str
    name: str
    reply_to: str
    args: dict[str, Any] = field(default_factory=dict)


@message
class Reply(Message):
    TYPE: ClassVar[str] = "reply"
    rid: str
    ok: bool
    result: Any = None
    error: str | None = None


# --------------------------------------------------------------------------- trading (gateway)
#
# The gateway publishes these; docs/wire-format.md §Trading is their contract. `owner` is who
# placed the order: a strategy instance's name (its client ids are `NAME-<n>`), "manual" for the
# trading tools, "external" for orders placed outside CHILLLY (adopted at reconciliation).
# Account-level positions (the venue's net per contract) use owner "_account".
# Sides are the venue's (0 buy/bid, 1 sell/ask); statuses and order types the venue's codes
# (projectx-api.md §4); `state` is the gateway's order state machine name.


@message
class OrderEvent(Message):
    """An order's state as the venue reported it, joined with the gateway's journal."""

    TYPE: ClassVar[str] = "order"
    account: int
    order_id: int
    contract: str
    status: int
    side: int
    size: int
    order_type: int
    owner: str = "external"
    state: str = ""
    fill_volume: int = 0
    filled_price: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    custom_tag: str | None = None
    client_id: str | None = None
    parent_id: int | None = None  # bracket children: the entry's venue order id
    reason: str | None = None     # rejection / cancel reason when known
    vt: int | None = None         # venue update time, ms


@message
class FillEvent(Message):
    """One venue trade (half-turn), once per trade id."""

    TYPE: ClassVar[str] = "fill"
    account: int
    trade_id: int
    order_id: int
    contract: str
    side: int
    size: int
    price: float
    owner: str = "external"
    client_id: str | None = None
    fees: float = 0.0
    pnl: float | None = None  # the owner's, vs its own average, fees apart; null on opening
    vt: int | None = None


@message
class PositionEvent(Message):
    """Net position of one contract: the venue's (owner "_account") or one owner's share."""

    TYPE: ClassVar[str] = "position"
    account: int
    contract: str
    side: int  # PositionType: 0 flat, 1 long, 2 short
    size: int
    owner: str = "_account"
    avg_price: float | None = None
    realized_pnl: float = 0.0   # this trading day, fees included
    open_pnl: float = 0.0       # marked: longs at the bid, shorts at the ask
    vt: int | None = None


@message
class AccountEvent(Message):
    TYPE: ClassVar[str] = "account"
    account: int
    name: str
    balance: float
    can_trade: bool
    equity: float | None = None       # balance + open P&L
    realized_pnl: float = 0.0         # this trading day, fees included
    open_pnl: float = 0.0
    vt: int | None = None


@message
class RiskEvent(Message):
    """A change of trading state or a rejection by the risk gate, with its figures."""

    TYPE: ClassVar[str] = "risk"
    account: int
    event: str                 # "state" | "reject" | "action"
    state: str                 # ACTIVE | REDUCING | HALTED
    reason: str
    rule: str | None = None
    owner: str | None = None
    client_id: str | None = None
    floor: float | None = None
    equity: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    #: a refusal's own id (the gateway instance and a count): the same refusal heard on the bus
    #: and read back from the gateway's `refusals` answer is one refusal
    refusal_id: str | None = None
    #: a refusal's order as asked: contract, side, size, order_type, prices, order_id...
    order: dict[str, Any] | None = None
