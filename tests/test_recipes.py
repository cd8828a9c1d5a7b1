"""Every recipe under recipes/ loads against its kind's schema: a typo in a shipped recipe fails here, not in a user's
run. And every kind refuses a wrong type, an unknown key and a missing key with one line naming the key and the file."""

import copy
from pathlib import Path

import pytest
import yaml

from ardistill.errors import ArdistillError
from ardistill.methods.code.finetune import CoDeRecipe
from ardistill.methods.dd.recipe import DDRecipe
from ardistill.methods.dd2.family import FAMILY_ADAPTERS
from ardistill.methods.dd2.recipe import DD2Recipe
from ardistill.recipe_kinds import SCHEMAS, load_any_recipe
from ardistill.registry import get_model_spec
from ardistill.training.teacher_recipes import TransformerRecipe, tokenizer_recipe_of

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").rglob("*.yaml"))


def test_recipes_are_found():
    assert len(RECIPES) >= 10


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_validates(path):
    recipe = load_any_recipe(str(path))
    assert recipe.source == str(path) and recipe.kind in SCHEMAS
    if isinstance(recipe, DDRecipe):
        get_model_spec(recipe.teacher)  # a registered teacher
    elif isinstance(recipe, DD2Recipe):
        assert get_model_spec(recipe.teacher).family in FAMILY_ADAPTERS  # a registered teacher DD2 can distil
    elif isinstance(recipe, CoDeRecipe):
        get_model_spec(recipe.drafter), get_model_spec(recipe.refiner)
    elif isinstance(recipe, TransformerRecipe):
        tokenizer_recipe_of(recipe)  # names a tokenizer recipe of its own family


def test_every_kind_has_a_shipped_recipe():
    assert {load_any_recipe(str(p)).kind for p in RECIPES} == set(SCHEMAS)


# One shipped recipe per kind; a key of the wrong type (dotted), a required key.
CASES = {
    "dd-student": ("dd/var-toy-l", "train.lr", "t_list"),
    "dd2-student": ("dd2/var-toy-l", "csd.lr", "teacher"),
    "code-finetune": ("code/var-toy", "refiner_train.lr", "draft_steps"),
    "var-tokenizer": ("toy/var-tokenizer", "tokenizer.ch_mult", "tokenizer"),
    "llamagen-tokenizer": ("toy/llamagen-tokenizer", "train.lr", "tokenizer"),
    "var-teacher": ("toy/var-toy-l", "model.depth", "tokenizer_recipe"),
    "llamagen-teacher": ("toy/llamagen-toy", "sampling_defaults.top_p", "model"),
}


def test_cases_cover_every_kind():
    assert set(CASES) == set(SCHEMAS)


def _mutated(tmp_path, name: str, change) -> Path:
    root = Path(__file__).resolve().parents[1] / "recipes"
    data = copy.deepcopy(yaml.safe_load((root / f"{name}.yaml").read_text()))
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _error(path) -> str:
    with pytest.raises(ArdistillError) as e:
        load_any_recipe(str(path))
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


def _set(data: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        data = data[p]
    data[last] = value


@pytest.mark.parametrize("kind", sorted(CASES))
def test_wrong_type_names_the_dotted_key(kind, tmp_path):
    name, key, _ = CASES[kind]
    message = _error(_mutated(tmp_path, name, lambda d: _set(d, key, "fast please")))
    assert f": {key}: expected " in message and "'fast please'" in message


# A top-level key to misspell and a section holding `lr` (default: batch_size, the section ending in "train").
MISSPELT = {"dd2-student": ("baselines", "csd")}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_unknown_key_suggests_the_right_one(kind, tmp_path):
    name, _, _ = CASES[kind]
    top, section = MISSPELT.get(kind, ("batch_size", None))
    wrong = top[:-2] + top[-1] + top[-2]  # the last two letters swapped
    message = _error(_mutated(tmp_path, name, lambda d: d.update({wrong: d.pop(top)})))
    assert f": {wrong}: unknown field (did you mean '{top}'?)" in message
    section = section or (lambda d: next(k for k in d if k.endswith("train")))
    nested = _error(_mutated(tmp_path, name, lambda d: d.setdefault(section if isinstance(section, str) else section(d), {}).update(lrr=1.0)))
    assert ".lrr: unknown field (did you mean 'lr'?)" in nested


@pytest.mark.parametrize("kind", sorted(CASES))
def test_missing_key_is_named(kind, tmp_path):
    name, _, required = CASES[kind]
    assert _error(_mutated(tmp_path, name, lambda d: d.pop(required))).endswith(f": {required}: required field missing")


def test_kind_is_checked(tmp_path):
    assert "kind: required field missing" in _error(_mutated(tmp_path, "dd/var-toy-l", lambda d: d.pop("kind")))
    assert "did you mean 'dd-student'?" in _error(_mutated(tmp_path, "dd/var-toy-l", lambda d: d.update(kind="dd-studnet")))


def test_cross_field_checks(tmp_path):
    assert "split: must be ≥ the last t of t_list (3), got 2" in _error(_mutated(tmp_path, "dd/var-toy-l", lambda d: d.update(split=2)))
    assert "t_list: must start with 0" in _error(_mutated(tmp_path, "dd/var-toy-l", lambda d: d.update(t_list=[1, 3])))
    assert "flow: flow map steps must be ≥ 1" in _error(_mutated(tmp_path, "dd/var-toy-l", lambda d: d["flow"].update(steps=0)))
    # A teacher's model section is checked against the family's config (the tokenizer's fields are refused).
    assert "model.vae: unknown field" in _error(_mutated(tmp_path, "toy/var-toy-l", lambda d: d["model"].update(vae={})))
    assert "model.n_layers: unknown field (did you mean 'n_layer'?)" in _error(
        _mutated(tmp_path, "toy/llamagen-toy", lambda d: d["model"].update(n_layers=2)))


@pytest.mark.parametrize("argv, name, key, value", [
    (["train"], "dd/var-toy-l", "train.lr", "fast please"),
    (["distill", "--teacher", "var-toy-l"], "dd/var-toy-l", "flow.solver", "rk9"),
    (["code", "finetune"], "code/var-toy", "drafter_train.lr", "fast please"),
    (["teacher", "train"], "toy/var-toy-l", "train.lr", "fast please"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_cli_refuses_a_bad_recipe_in_one_line(argv, name, key, value, tmp_path, monkeypatch, capsys):
    from ardistill.cli import main

    monkeypatch.chdir(tmp_path)
    bad = _mutated(tmp_path, name, lambda d: _set(d, key, value))
    with pytest.raises(SystemExit) as e:
        main([*argv, "--recipe", str(bad)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{bad}: {key}: expected " in err and not (tmp_path / "runs").exists()  # refused before any work
