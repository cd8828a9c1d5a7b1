"""Every recipe kind and its schema, for code that reads recipes of any kind (the tests, a recipe listing, `ardistill train`).

A new kind is a `Recipe` dataclass next to the code that runs it, added to `SCHEMAS` here.
"""

from __future__ import annotations

import os

from ardistill.methods.code.finetune import CoDeRecipe
from ardistill.methods.dd.recipe import DDRecipe
from ardistill.methods.dd2.recipe import DD2Recipe
from ardistill.recipe_schema import Recipe, kind_of, load_typed_recipe
from ardistill.training.teacher_recipes import SCHEMAS as TOY_SCHEMAS

SCHEMAS: dict[str, type[Recipe]] = {kind_of(s): s for s in (DDRecipe, DD2Recipe, CoDeRecipe, *TOY_SCHEMAS)}


def load_any_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """A recipe file of any kind, checked against its kind's schema."""
    return load_typed_recipe(name_or_path, *SCHEMAS.values())


__all__ = ["SCHEMAS", "load_any_recipe"]
