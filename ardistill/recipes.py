"""Recipes: YAML files under `recipes/` that fully describe a training or evaluation run."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ardistill.errors import ArdistillError

# Recipes ship with the source tree; an installed package finds them next to the package, or under
# $ARDISTILL_RECIPES.
REPO_RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def recipes_root() -> Path:
    env = os.environ.get("ARDISTILL_RECIPES")
    return Path(env) if env else REPO_RECIPES


def resolve_recipe(name_or_path: str | os.PathLike) -> Path:
    """A path to a YAML file, or a recipe name relative to the recipes folder (`toy/var-toy-l`)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for cand in (recipes_root() / p, recipes_root() / f"{p}.yaml"):
        if cand.is_file():
            return cand
    raise ArdistillError(f"recipe {str(name_or_path)!r} not found (looked for the file and under {recipes_root()})")


def load_recipe(name_or_path: str | os.PathLike) -> dict:
    path = resolve_recipe(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ArdistillError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ArdistillError(f"{path}: a recipe must be a mapping at top level")
    data.setdefault("_path", str(path))
    return data
