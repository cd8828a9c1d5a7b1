"""The typed validator behind recipes and cards (ardistill.configs): types, defaults, conversions, one-line errors."""

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from ardistill.configs import FieldError, config_from_dict, with_overrides
from ardistill.errors import ArdistillError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    name: str
    steps: tuple[int, ...] = ()
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None
    k: int | tuple[int, ...] = 0
    extra: dict[str, Any] = field(default_factory=dict)
    flag: bool = False

    def check(self):
        if self.limit is not None and self.limit < 0:
            raise FieldError("limit", "must be ≥ 0")


def err(data) -> str:
    with pytest.raises(ArdistillError) as e:
        config_from_dict(Outer, data, where="f.yaml")
    assert "\n" not in str(e.value)
    return str(e.value)


def test_builds_with_conversions():
    o = config_from_dict(Outer, {"name": "x", "steps": [1, 2], "inner": {"lr": 1, "betas": [0.5, 0.6]}, "k": [3, 4], "limit": None})
    assert o.steps == (1, 2) and o.inner == Inner(lr=1.0, betas=(0.5, 0.6)) and isinstance(o.inner.lr, float)
    assert o.k == (3, 4) and o.limit is None
    assert config_from_dict(Outer, {"name": "x", "k": 5}).k == 5


def test_errors_name_the_dotted_key():
    assert err({"name": "x", "inner": {"lr": "fast please"}}) == "f.yaml: inner.lr: expected a number, got 'fast please'"
    assert err({"name": "x", "inner": {"lrr": 1}}) == "f.yaml: inner.lrr: unknown field (did you mean 'lr'?)"
    assert err({"steps": [1]}) == "f.yaml: name: required field missing"
    assert err({"name": "x", "steps": [1, "two"]}) == "f.yaml: steps[1]: expected an integer, got 'two'"
    assert err({"name": "x", "inner": {"betas": [0.9]}}) == "f.yaml: inner.betas: expected a list of 2 values, got 1"
    assert "expected one of 'a', 'b', got 'c'" in err({"name": "x", "inner": {"mode": "c"}})
    assert err({"name": "x", "limit": 1.5}) == "f.yaml: limit: expected an integer, got 1.5"
    assert err({"name": "x", "limit": True}) == "f.yaml: limit: expected an integer, got True"  # a bool is no number
    assert err({"name": "x", "flag": 1}) == "f.yaml: flag: expected true or false, got 1"
    assert err({"name": "x", "k": "many"}) == "f.yaml: k: expected an integer or a list, got 'many'"
    assert err({"name": "x", "inner": 3}) == "f.yaml: inner: expected a mapping of Inner fields, got 3"
    assert err({"name": "x", "limit": -1}) == "f.yaml: limit: must be ≥ 0"
    assert "known: name, steps" in err({"name": "x", "zzz": 1})


def test_overrides_are_checked_like_the_file():
    o = config_from_dict(Outer, {"name": "x"})
    o2 = with_overrides(o, {"inner.lr": 2, "limit": 3, "steps": None}, where="f.yaml")
    assert o2.inner.lr == 2.0 and o2.limit == 3 and o2.steps == () and o.inner.lr == 1e-3
    with pytest.raises(ArdistillError, match="limit: must be ≥ 0"):
        with_overrides(o, {"limit": -1}, where="f.yaml")
