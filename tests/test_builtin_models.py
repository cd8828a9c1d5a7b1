"""The shipped built-in teachers: every one loads by name with no flags, has the geometry of its recipe, fits the
package budget, and its model card holds the metrics `ardistill teacher export` measured."""

import json

import pytest
import torch

import ardistill
from ardistill.registry import PACKAGE_WEIGHTS

BUILTINS = {"var-toy-l": ("var", 130), "var-toy-s": ("var", 130), "llamagen-toy": ("llamagen", 64)}


def test_package_weights_fit_the_budget():
    total = sum(p.stat().st_size for p in PACKAGE_WEIGHTS.rglob("*.safetensors"))
    assert total <= 30 * 2**20, f"{total / 2**20:.1f} MB of weights in the package (budget 30 MB)"


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_loads_by_name_and_samples(name):
    family, tokens = BUILTINS[name]
    card = json.loads((PACKAGE_WEIGHTS / name / "model.json").read_text())
    assert card["family"] == family and card["tokens_per_image"] == tokens and card["image_size"] == 32
    m = card["metrics"]
    assert m["samples"]["class_accuracy"] >= 0.0 and m["reconstructions"]["fid"] > 0  # measured, not placeholders
    teacher = ardistill.load_teacher(name)
    labels = torch.tensor([0, 11])
    tokens_out = teacher.sample(labels, seed=0)
    assert tokens_out.shape == (2, tokens) and torch.equal(tokens_out, teacher.sample(labels, seed=0))
    images = teacher.decode(tokens_out)
    assert images.shape == (2, 3, 32, 32) and 0 <= images.min() and images.max() <= 1


def test_the_var_pair_shares_one_tokenizer_file():
    files = [json.loads((PACKAGE_WEIGHTS / n / "model.json").read_text())["files"]["tokenizer"] for n in ("var-toy-l", "var-toy-s")]
    assert files[0] == files[1] and (PACKAGE_WEIGHTS / "var-toy-l" / files[0]).resolve().is_file()
