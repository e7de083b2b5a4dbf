"""Typed, tolerant models of the venue's REST payloads (projectx-api.md §3).

Tolerant means: unknown fields are ignored, any optional field may be absent OR null, names are
camelCase on the wire and snake_case here, timestamps become epoch ms. Only the identity of an
entity (its `id`, a bar's `t`) is required; a payload without it is a `BadResponse`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_camel

from chillly.clock import iso_to_ms


def _ms(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        return iso_to_ms(value)
    return value


class VenueModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # REST sends explicit nulls where hub payloads omit the key: treat both the same.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class Account(VenueModel):
    id: int
    name: str = ""
    balance: float | None = None
    can_trade: bool | None = None
    is_visible: bool | None = None
    simulated: bool | None = None


class Contract(VenueModel):
    id: str
    name: str = ""
    description: str = ""
    tick_size: float | None = None
    tick_value: float | None = None
    active_contract: bool | None = None
    symbol_id: str | None = None


class VenueBar(VenueModel):
    """One bar as the venue sends it; `t` is the open time in epoch ms."""

    t: int
    o: float
    h: float
    l: float  # noqa: E741
    c: float
    v: int = 0

    @field_validator("t", mode="before")
    @classmethod
    def _t(cls, v: Any) -> Any:
        return _ms(v)

    @field_validator("v", mode="before")
    @classmethod
    def _v(cls, v: Any) -> Any:
        return 0 if v is None else int(v)


class Order(VenueModel):
    id: int
    account_id: int | None = None
    contract_id: str | None = None
    symbol_id: str | None = None
    creation_timestamp: int | None = None
    update_timestamp: int | None = None
    status: int | None = None         # OrderStatus (trading/venue_codes.py); kept an int, so
    type: int | None = None           # a code the venue adds later is read, not refused
    side: int | None = None           # Side
    size: int | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    fill_volume: int | None = None
    filled_price: float | None = None
    custom_tag: str | None = None
    trail_distance: int | None = None
    trail_price: float | None = None
    parent_order_id: int | None = None
    linked_order_id: int | None = None

    @field_validator("creation_timestamp", "update_timestamp", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> Any:
        return _ms(v)


class Position(VenueModel):
    id: int
    account_id: int | None = None
    contract_id: str | None = None
    contract_display_name: str | None = None
    creation_timestamp: int | None = None
    type: int | None = None
    size: int | None = None
    average_price: float | None = None

    @field_validator("creation_timestamp", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> Any:
        return _ms(v)


class HalfTrade(VenueModel):
    id: int
    account_id: int | None = None
    contract_id: str | None = None
    creation_timestamp: int | None = None
    price: float | None = None
    profit_and_loss: float | None = None  # null/absent: an opening half-turn
    fees: float | None = None
    commissions: float | None = None
    side: int | None = None
    size: int | None = None
    voided: bool | None = None
    order_id: int | None = None

    @field_validator("creation_timestamp", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> Any:
        return _ms(v)

    @property
    def cost(self) -> float:
        """What the trade cost: the venue's fees plus its commissions. The one definition, for
        the live path (positions, P&L) and the rebuild of past balances alike."""
        return float(self.fees or 0.0) + float(self.commissions or 0.0)
