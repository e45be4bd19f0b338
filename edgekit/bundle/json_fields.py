"""Validating untrusted JSON field by field: every error names the file and the field."""

from __future__ import annotations

import math
from typing import Any

from edgekit.errors import InputError


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def short_repr(value: Any) -> str:
    """A value for an error message, cut short: manifests and archives can be hostile."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def expect(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        raise InputError(f"{where}: expected {kind_name(kind)}, got {kind_name(type(value))}")


def kind_name(kind: type) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "an integer"}.get(kind, kind.__name__)


def required(data: dict[str, Any], key: str, kind: type, where: str, root: bool = False) -> Any:
    """data[key] of the given type; `where` is the file (root) or the path of the enclosing field."""
    if key not in data:
        raise InputError(f"{where}: missing field '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = f"{where}: {key}" if root else f"{where}.{key}"
        raise InputError(f"{name}: expected {kind_name(kind)}, got {kind_name(type(value))}")
    return value


def numbers(values: list[Any], where: str, channels: int) -> tuple[float, ...]:
    if not values or not all(is_number(v) for v in values):
        raise InputError(f"{where}: expected a non-empty list of finite numbers")
    if len(values) not in (1, channels):
        expected = "1 value" if channels == 1 else f"1 or {channels} values"
        raise InputError(f"{where}: expected {expected} (one per channel), got {len(values)}")
    return tuple(float(v) for v in values)


class DuplicateKey(ValueError):
    pass


def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers could pick different values for a duplicated key: a signed manifest must mean one thing.
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise DuplicateKey(f"duplicate key {short_repr(key)}")
        data[key] = value
    return data


def refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def plain_file_name(name: Any) -> bool:
    """A name that can only mean a file directly inside the bundle folder."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(c in name for c in "/\\\x00")
        and len(name.encode("utf-8", "surrogatepass")) <= 255
    )
