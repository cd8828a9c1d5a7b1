"""Config dataclasses ⇄ plain dicts (JSON / YAML): the one typed validator of recipes, model cards and student cards.

`config_from_dict(cls, data, where=FILE)` builds dataclass `cls` from a mapping, checked against its type hints:
- a key that is no field is refused (with a "did you mean" from difflib), a field without a default must be there;
- int, float (an int is accepted), str, bool (never taken for a number), `Literal[...]`, `X | None`, `tuple[X, ...]`,
  `tuple[X, Y]`, `list[X]`, `dict[str, X]`, nested dataclasses, `Any`; a YAML list becomes a tuple where one is
  annotated;
- a dataclass may define `check(self)` for constraints between its fields, raising `FieldError(key, message)`.
Every error is one `ArdistillError` line that names the file and the dotted key:
`recipes/dd/x.yaml: train.lr: expected a number, got 'fast please'`.

Our own ~150 lines rather than pydantic: the configs are plain (often frozen) dataclasses used all over the code
(model configs, TrainConfig, FlowMapConfig) and stay so; the rules we need (strict types, int for float, lists to
tuples, dotted one-line errors) are short here, while pydantic would add a compiled dependency, its own coercions
to switch off and multi-line errors to translate.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, TypeVar

from ardistill.errors import ArdistillError

T = TypeVar("T")


class FieldError(Exception):
    """A value that does not fit its field; `path` is relative to the dataclass being built."""

    def __init__(self, path: str | tuple, message: str):
        super().__init__(message)
        self.path = path if isinstance(path, tuple) else (path,)
        self.message = message

    def __str__(self) -> str:
        return f"{dotted(self.path)}: {self.message}" if self.path else self.message


def dotted(path: tuple) -> str:
    """("train", "lr") → "train.lr"; ("t_list", 1) → "t_list[1]"."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def config_to_dict(cfg: Any) -> dict:
    """A dataclass → JSON-able dict (tuples become lists)."""
    return _plain(dataclasses.asdict(cfg))


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def config_from_dict(cls: type[T], data: Any, *, where: str = "config") -> T:
    """Build dataclass `cls` from `data` (see the module docstring); errors name `where` and the dotted key."""
    try:
        return _build(cls, data, ())
    except FieldError as e:
        raise ArdistillError(f"{where}: {e}") from None


def check_fields(cls: type, data: Any, path: tuple = (), *, exclude: tuple[str, ...] = ()) -> dict:
    """Type-check a *partial* mapping of `cls`'s fields (no field is required; `exclude`d ones are refused);
    returns the converted values. Raises FieldError with keys under `path`."""
    return _fields(cls, data, path, partial=True, exclude=exclude)


def with_overrides(obj: T, overrides: dict[str, Any], *, where: str) -> T:
    """A copy of dataclass `obj` with dotted keys replaced (`{"train.steps": 5}`; None = keep), validated as a
    loaded file is. Fields that are not init fields (a recipe's `source`) are carried over."""
    data = _init_fields(obj)
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
    new = config_from_dict(type(obj), data, where=where)
    for f in dataclasses.fields(obj):
        if not f.init:
            object.__setattr__(new, f.name, getattr(obj, f.name))
    return new


def _init_fields(obj) -> dict:
    return {f.name: _init_fields(v) if dataclasses.is_dataclass(v := getattr(obj, f.name)) else v
            for f in dataclasses.fields(obj) if f.init}


def _fields(cls, data, path, *, partial=False, exclude=()) -> dict:
    if not isinstance(data, collections.abc.Mapping):
        raise FieldError(path, f"expected a mapping of {cls.__name__} fields, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in exclude}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(fields)}"
            raise FieldError(path + (str(key),), f"unknown field ({hint})")
    if not partial:
        for name, f in fields.items():
            if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise FieldError(path + (name,), "required field missing")
    return {k: _convert(hints[k], v, path + (k,)) for k, v in data.items()}


def _build(cls, data, path):
    if isinstance(data, cls):
        return data
    kwargs = _fields(cls, data, path)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError, ArdistillError) as e:  # a __post_init__ check
        raise FieldError(path, str(e)) from None
    check = getattr(obj, "check", None)
    if callable(check):
        try:
            check()
        except FieldError as e:
            raise FieldError(path + e.path, e.message) from None
    return obj


_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}


def _describe(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (tuple, list, collections.abc.Sequence):
        return "a list"
    if dataclasses.is_dataclass(hint) or origin is dict or hint is dict:
        return "a mapping"
    return _WORDS.get(hint, getattr(hint, "__name__", str(hint)))


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(hint, value, path):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        close = difflib.get_close_matches(value, [str(a) for a in args], n=1) if isinstance(value, str) else []
        raise FieldError(path, f"expected {_describe(hint)}, got {_show(value)}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own message
            return _convert(options[0], value, path)
        for a in options:
            try:
                return _convert(a, value, path)
            except FieldError:
                continue
        raise FieldError(path, f"expected {_describe(hint)}, got {_show(value)}")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if origin in (tuple, list, collections.abc.Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise FieldError(path, f"expected a list, got {_show(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise FieldError(path, f"expected a list of {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, path + (i,)) for i, (a, v) in enumerate(zip(args, value)))
        items = [_convert(args[0], v, path + (i,)) if args else v for i, v in enumerate(value)]
        return items if (origin is list or hint is list) else tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, collections.abc.Mapping):
            raise FieldError(path, f"expected a mapping, got {_show(value)}")
        return {k: _convert(args[1], v, path + (str(k),)) if args else v for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in _WORDS and (not isinstance(value, hint) or (hint is not bool and isinstance(value, bool))):
        note = ""
        if hint is float and isinstance(value, str) and _is_number(value):
            note = " (YAML reads a number with an exponent but no dot as text: write 1.0e-4, not 1e-4)"
        raise FieldError(path, f"expected {_describe(hint)}, got {_show(value)}{note}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
