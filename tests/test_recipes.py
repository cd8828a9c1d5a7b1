"""Every recipe under recipes/ parses and validates: a typo in a shipped recipe fails here, not in a user's run."""

from pathlib import Path

import pytest

from ardistill.configs import config_from_dict
from ardistill.methods.code.finetune import CoDeRecipe
from ardistill.methods.dd.flow import FlowMapConfig
from ardistill.methods.dd.recipe import KNOWN_FIELDS as DD_FIELDS
from ardistill.recipes import load_recipe
from ardistill.registry import get_model_spec
from ardistill.training.loop import TrainConfig
from ardistill.training.teacher_recipes import KINDS as TEACHER_KINDS

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").rglob("*.yaml"))


def test_recipes_are_found():
    assert len(RECIPES) >= 10


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_validates(path):
    recipe = load_recipe(str(path))
    kind = recipe.get("kind")
    if kind == "dd-student":
        assert set(recipe) <= DD_FIELDS
        TrainConfig.from_dict(recipe.get("train", {}))
        FlowMapConfig(**recipe.get("flow", {})).validate()
        get_model_spec(recipe["teacher"])  # a registered teacher
        assert recipe["t_list"][0] == 0 and recipe["split"] >= recipe["t_list"][-1]
    elif kind == "code-finetune":
        r = CoDeRecipe.from_dict(recipe, where=str(path))
        get_model_spec(r.drafter), get_model_spec(r.refiner)
    elif kind in TEACHER_KINDS:
        TrainConfig.from_dict(recipe.get("train", {}))
        if kind.endswith("-tokenizer"):
            from ardistill.training.teacher_recipes import _tokenizer_family

            _, config_cls, _, _ = _tokenizer_family(recipe)
            config_from_dict(config_cls, recipe["tokenizer"], where=str(path))
        else:
            load_recipe(recipe["tokenizer_recipe"])
    else:
        pytest.fail(f"{path}: unknown kind {kind!r}")
