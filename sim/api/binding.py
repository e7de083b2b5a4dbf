"""Request binding as the venue's ASP.NET Core does it, shared by every /api handler.

- `Body`: case-insensitive property lookup, plain (`get`, `has`, `required_str`) or typed
  (`integer`, `number`, `text`, `flag`, `time_ms`, `obj`, `int_list`: numbers may arrive as
  numeric strings; a value of the wrong JSON type is a 400 "The JSON value could not be
  converted to ...");
- `BadRequest` carries an RFC 7807 ValidationProblemDetails body (`problem()`) that the REST
  middleware sends as HTTP 400 with `application/problem+json`.
"""

from __future__ import annotations

from typing import Any

from chillly.clock import iso_to_ms

VALIDATION_TYPE = "https://tools.ietf.org/html/rfc9110#section-15.5.1"


class BadRequest(Exception):
    """HTTP 400 with a ProblemDetails body."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail") or problem.get("title") or "Bad Request")
        self.problem = problem


def problem(detail: str | None, errors: dict[str, list[str]] | None = None,
            instance: str | None = None, title: str | None = None) -> dict[str, Any]:
    """An ASP.NET-style ValidationProblemDetails body (`instance` and `errors` when given)."""
    body: dict[str, Any] = {"type": VALIDATION_TYPE,
                            "title": title or "One or more validation errors occurred.",
                            "status": 400, "detail": detail}
    if instance is not None:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return body


def invalid(path: str, field: str, message: str) -> BadRequest:
    """A 400 naming one field of the request at `path`."""
    return BadRequest(problem(message, {field: [message]}, instance=path))


class Body:
    """One JSON object of a request (the whole body, or a nested object at `prefix`)."""

    def __init__(self, data: Any, path: str = "", prefix: str = "$") -> None:
        if not isinstance(data, dict):
            raise invalid(path, prefix, "The JSON value could not be converted to an object.")
        self.data = data
        self.path = path
        self.prefix = prefix
        self._d = {str(k).lower(): v for k, v in data.items()}

    # ---- plain lookups ----------------------------------------------------------------------
    def get(self, name: str, default: Any = None) -> Any:
        value = self._d.get(name.lower(), default)
        return default if value is None else value

    def has(self, name: str) -> bool:
        return self._d.get(name.lower()) is not None

    def required_str(self, *names: str) -> list[str]:
        """The names of required string fields that are missing or empty."""
        return [n for n in names if not isinstance(self._d.get(n.lower()), str)
                or not self._d[n.lower()].strip()]

    # ---- typed lookups ----------------------------------------------------------------------
    def _bad(self, name: str, target: str) -> BadRequest:
        where = f"{self.prefix}.{name}"
        return invalid(self.path, where,
                       f"The JSON value could not be converted to {target}. Path: {where}")

    def integer(self, name: str) -> int | None:
        v = self._d.get(name.lower())
        if v is None:
            return None
        if isinstance(v, bool):
            raise self._bad(name, "System.Int64")
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str):
            try:
                return int(v.strip())
            except ValueError:
                pass
        raise self._bad(name, "System.Int64")

    def number(self, name: str) -> float | None:
        v = self._d.get(name.lower())
        if v is None:
            return None
        if isinstance(v, bool):
            raise self._bad(name, "System.Decimal")
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v.strip())
            except ValueError:
                pass
        raise self._bad(name, "System.Decimal")

    def text(self, name: str) -> str | None:
        v = self._d.get(name.lower())
        if v is None:
            return None
        if not isinstance(v, str):
            raise self._bad(name, "System.String")
        return v

    def flag(self, name: str) -> bool | None:
        v = self._d.get(name.lower())
        if v is None:
            return None
        if not isinstance(v, bool):
            raise self._bad(name, "System.Boolean")
        return v

    def time_ms(self, name: str) -> int | None:
        v = self._d.get(name.lower())
        if v is None:
            return None
        if isinstance(v, str):
            try:
                return iso_to_ms(v)
            except ValueError:
                pass
        raise self._bad(name, "System.DateTime")

    def obj(self, name: str) -> Body | None:
        v = self._d.get(name.lower())
        if v is None:
            return None
        return Body(v, self.path, f"{self.prefix}.{name}")

    def int_list(self, name: str) -> list[int] | None:
        v = self._d.get(name.lower())
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                              for x in v):
            raise self._bad(name, "System.Collections.Generic.List`1[OrderStatus]")
        return list(v)
