"""The shipped evaluator: accuracy on fresh held-out images, API shapes, card, errors; training is deterministic."""

import json

import pytest
import torch

import ardistill
from ardistill.data import NUM_CLASSES, split_images
from ardistill.errors import BadArgumentError, WeightsMissingError
from ardistill.eval import load_evaluator
from ardistill.eval.evaluator import PACKAGE_EVALUATOR_DIR
from ardistill.eval.train import train_evaluator
from ardistill.io import sha256_file


@pytest.fixture(scope="module")
def evaluator():
    return ardistill.load_evaluator()


@pytest.mark.parametrize("size", [64, 32])
def test_accuracy_on_fresh_heldout_batch(evaluator, size):
    # seed 7's held-out stream: never used in training (seed 0's train stream) nor for the card (seed 0 held-out)
    images, labels = split_images(600, split="heldout", seed=7, size=size)
    assert evaluator.accuracy(images, labels) >= 0.98


def test_api_shapes_and_uint8_input(evaluator):
    images, labels = split_images(24, split="heldout", seed=3)
    preds = evaluator.predict(images)
    feats = evaluator.features(images)
    assert preds.shape == (24,) and preds.dtype == torch.int64
    assert feats.shape == (24, evaluator.feature_dim)
    as_uint8 = (images * 255 + 0.5).to(torch.uint8)
    assert (evaluator.features(as_uint8) - feats).abs().max() < 0.05 * feats.abs().max()
    # a shuffled label set must score lower: accuracy compares against the requested labels
    assert evaluator.accuracy(images, labels.roll(1)) < 0.5


def test_shipped_card_and_size(evaluator):
    card = json.loads((PACKAGE_EVALUATOR_DIR / "card.json").read_text())
    assert "model.json" not in {p.name for p in PACKAGE_EVALUATOR_DIR.iterdir()}  # not a generator model
    assert card["heldout_accuracy"]["64px"] >= 0.98
    assert card["sha256"] == sha256_file(PACKAGE_EVALUATOR_DIR / "evaluator.safetensors")
    assert (PACKAGE_EVALUATOR_DIR / "evaluator.safetensors").stat().st_size <= 4 * 2**20
    assert sum(p.numel() for p in evaluator.network.parameters()) <= 1_000_000
    assert evaluator.num_classes == NUM_CLASSES == len(card["classes"])


def test_bad_inputs_and_missing_weights(evaluator, tmp_path):
    with pytest.raises(BadArgumentError, match=r"\[B, 3, H, W\]"):
        evaluator.predict(torch.rand(3, 64, 64))
    with pytest.raises(BadArgumentError, match="labels"):
        evaluator.accuracy(torch.rand(2, 3, 64, 64), [0, 1, 2])
    with pytest.raises(WeightsMissingError, match="evaluator train"):
        load_evaluator(tmp_path)


def test_training_is_deterministic_and_writes_a_loadable_evaluator(tmp_path):
    kwargs = dict(steps=3, batch_size=16, heldout=24, progress=False)
    card_a = train_evaluator(tmp_path / "a", **kwargs)
    card_b = train_evaluator(tmp_path / "b", **kwargs)
    assert card_a["sha256"] == card_b["sha256"]
    assert {"evaluator.safetensors", "card.json", "README.md", "checkpoint.pt"} <= {p.name for p in (tmp_path / "a").iterdir()}
    ev = load_evaluator(tmp_path / "a")
    assert ev.card["training"]["steps"] == 3 and set(ev.card["heldout_accuracy"]) == {"64px", "32px"}
    assert "held-out accuracy" in (tmp_path / "a" / "README.md").read_text().lower()
