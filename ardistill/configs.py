"""Config dataclasses ⇄ plain dicts (JSON / YAML), with clear errors for unknown or mistyped fields."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from ardistill.errors import ArdistillError

T = TypeVar("T")


def config_to_dict(cfg: Any) -> dict:
    """A dataclass → JSON-able dict (tuples become lists)."""
    return _plain(dataclasses.asdict(cfg))


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def config_from_dict(cls: type[T], data: dict, *, where: str = "config") -> T:
    """Build dataclass `cls` from `data`: nested dataclasses recursively, lists → tuples where annotated."""
    if not isinstance(data, dict):
        raise ArdistillError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ArdistillError(f"{where}: unknown field(s) {', '.join(unknown)} for {cls.__name__} (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ArdistillError(f"{where}: {e}") from None


def _convert(hint, value, where):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except ArdistillError:
                continue
        raise ArdistillError(f"{where}: {value!r} does not fit {hint}")
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ArdistillError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
