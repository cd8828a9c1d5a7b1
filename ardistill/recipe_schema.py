"""Typed recipes: every recipe kind is one dataclass (its schema), checked field by field when the file is loaded.

A schema subclasses `Recipe` and pins its `kind`; it lives next to the code that runs it (`DDRecipe` in
ardistill/methods/dd/recipe.py, `DD2Recipe` in ardistill/methods/dd2/recipe.py, `CoDeRecipe` in
ardistill/methods/code/finetune.py, the toy tokenizer and teacher recipes in ardistill/training/teacher_recipes.py);
ardistill/recipe_kinds.py lists them all (a new kind is one schema there). The checks are those of
`ardistill.configs.config_from_dict`: unknown key (with "did you mean"), missing key or wrong type → one line that
names the file and the dotted key.
Command-line overrides go through `Recipe.overridden`, the same checks.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ardistill.configs import config_from_dict, with_overrides
from ardistill.errors import ArdistillError
from ardistill.recipes import load_recipe

R = TypeVar("R", bound="Recipe")


@dataclass(kw_only=True)
class Recipe:
    """The fields every kind has. A subclass redeclares `kind` as `Literal["its-kind"] = "its-kind"`."""

    kind: str
    name: str | None = None  # run name; default: the file's stem
    source: str = field(default="", init=False, compare=False)  # the file it was read from (not a YAML key)

    @property
    def run_name(self) -> str:
        return self.name or Path(self.source).stem

    def overridden(self: R, values: dict[str, object]) -> R:
        """A copy with command-line values set by dotted key (`{"train.steps": 5}`; None = keep), checked as on load."""
        return with_overrides(self, values, where=f"{self.source or type(self).__name__} (with command-line overrides)")


@dataclass(kw_only=True)
class TeacherSampling:
    """Teacher sampling settings; a field left out (None) keeps the teacher's default. `top_k` / `temperature` may
    be one value per AR step (VAR: per scale)."""

    cfg: float | None = None
    top_k: int | tuple[int, ...] | None = None
    top_p: float | None = None
    temperature: float | tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        """The fields that are set, as keyword arguments of the samplers (lists for per-step values)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items() if v is not None}


def kind_of(schema: type[Recipe]) -> str:
    return schema.__dataclass_fields__["kind"].default


def parse_recipe(data: dict, *schemas: type[R], where: str) -> R:
    """The typed recipe of a loaded mapping, its schema chosen by `kind` among `schemas`."""
    by_kind = {kind_of(s): s for s in schemas}
    kind = data.get("kind")
    if kind is None:
        raise ArdistillError(f"{where}: kind: required field missing (expected {' or '.join(by_kind)})")
    schema = by_kind.get(kind)
    if schema is None:
        close = difflib.get_close_matches(str(kind), list(by_kind), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ArdistillError(f"{where}: kind: expected {' or '.join(by_kind)}, got {kind!r}{hint}")
    recipe = config_from_dict(schema, {k: v for k, v in data.items() if k != "_path"}, where=where)
    recipe.source = where
    return recipe


def load_typed_recipe(name_or_path: str | os.PathLike, *schemas: type[R]) -> R:
    """Read a recipe file (a path or a name under recipes/) and check it against the schema of its kind."""
    data = load_recipe(name_or_path)
    return parse_recipe(data, *schemas, where=data["_path"])


__all__ = ["Recipe", "TeacherSampling", "kind_of", "parse_recipe", "load_typed_recipe"]
