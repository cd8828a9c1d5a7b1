"""The shipped built-in teachers: every one loads by name with no flags, has the geometry of its recipe, fits the
package budget, and its model card holds the metrics `ardistill teacher export` measured."""

import json

import pytest
import torch

import ardistill
from ardistill.registry import PACKAGE_WEIGHTS

BUILTINS = {"var-toy-l": ("var", 130), "var-toy-s": ("var", 130), "llamagen-toy": ("llamagen", 64)}


def test_package_weights_fit_the_budget():
    """Teachers, tokenizers and the evaluator: 30 MB; the shipped students have their own 30 MB
    (tests/test_builtin_students.py)."""
    students = {p.parent for p in PACKAGE_WEIGHTS.glob("*/student.json")}
    total = sum(p.stat().st_size for p in PACKAGE_WEIGHTS.rglob("*.safetensors") if p.parent not in students)
    assert total <= 30 * 2**20, f"{total / 2**20:.1f} MB of weights in the package (budget 30 MB)"


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_loads_by_name_and_samples(name):
    family, tokens = BUILTINS[name]
    card = json.loads((PACKAGE_WEIGHTS / name / "model.json").read_text())
    assert card["family"] == family and card["tokens_per_image"] == tokens and card["image_size"] == 32
    m = card["metrics"]
    assert m["num"] == 1000 and all(0 < m[w]["fid"] < 100 and 0 < m[w]["class_accuracy"] <= 1 for w in ("samples", "reconstructions"))
    teacher = ardistill.load_teacher(name)
    labels = torch.tensor([0, 11])
    tokens_out = teacher.sample(labels, seed=0)
    assert tokens_out.shape == (2, tokens) and torch.equal(tokens_out, teacher.sample(labels, seed=0))
    images = teacher.decode(tokens_out)
    assert images.shape == (2, 3, 32, 32) and 0 <= images.min() and images.max() <= 1


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_cards_were_measured_with_the_shipped_evaluator(name):
    """A card's metrics belong to one procedural world: if the world or the evaluator changes, re-export."""
    evaluator = json.loads((PACKAGE_WEIGHTS / "evaluator" / "card.json").read_text())["sha256"]
    assert json.loads((PACKAGE_WEIGHTS / name / "model.json").read_text())["metrics"]["evaluator_sha256"] == evaluator


def test_the_small_var_teacher_is_measurably_worse():
    """CoDe needs a refiner that is worse than its drafter: the cards' measured sample quality says so."""
    l, s = (json.loads((PACKAGE_WEIGHTS / n / "model.json").read_text())["metrics"]["samples"] for n in ("var-toy-l", "var-toy-s"))
    assert s["fid"] > l["fid"] * 1.2 and s["class_accuracy"] < l["class_accuracy"]


def test_the_var_pair_shares_one_tokenizer_file():
    files = [json.loads((PACKAGE_WEIGHTS / n / "model.json").read_text())["files"]["tokenizer"] for n in ("var-toy-l", "var-toy-s")]
    assert files[0] == files[1] and (PACKAGE_WEIGHTS / "var-toy-l" / files[0]).resolve().is_file()


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_cards_meet_the_quality_bars(name):
    """The bars of the embedded default, as measured at export (1000 images each): samples keep their class ≥ 90% of
    the time at the default sampling settings, reconstructions ≥ 95%. `var-toy-s` is the deliberately weaker refiner
    of the CoDe pair, so only its tokenizer (shared with `var-toy-l`) is held to a bar."""
    m = json.loads((PACKAGE_WEIGHTS / name / "model.json").read_text())["metrics"]
    assert m["reconstructions"]["class_accuracy"] >= 0.95
    if name != "var-toy-s":
        assert m["samples"]["class_accuracy"] >= 0.90


@pytest.mark.parametrize("name", ["var-toy-l", "llamagen-toy"])
def test_fresh_samples_keep_their_class(name):
    """Re-measured here, not read from the card: 120 class-balanced samples at the default settings and a seed the
    export did not use. 85% leaves room for the sampling noise of 120 images (±3 points at p = 0.9)."""
    teacher = ardistill.load_teacher(name)
    labels = torch.arange(120) % teacher.num_classes
    images = teacher.decode(teacher.sample(labels, seed=12345))
    accuracy = (ardistill.load_evaluator().predict(images) == labels).float().mean().item()
    assert accuracy >= 0.85, f"{name}: {accuracy:.1%} of fresh samples keep their class"
