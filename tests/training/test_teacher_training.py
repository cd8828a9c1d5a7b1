"""Training the built-in teachers (VAR and LlamaGen families): losses decrease, runs resume exactly, recipes run end to end
that loads by name."""

import json

import pytest
import torch

from ardistill.io import load_state_dict_file
from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.recipes import load_recipe
from ardistill.training.loop import TrainConfig
from ardistill.training.toy_data import ImageData
from ardistill.training.var_teacher import train_var_tokenizer, train_var_transformer

TINY_VQ = VQVAEConfig(vocab_size=64, z_channels=8, ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, patch_nums=(1, 2, 4),
                      using_sa=False, using_mid_sa=False)
DATA = ImageData(seed=3, size=32)


class _InterruptAt(ImageData):
    def batch(self, start, count):
        if start >= 13 * count:
            raise KeyboardInterrupt
        return super().batch(start, count)


def _first_last(losses, k=3):
    values = [v for _, v in losses]
    return sum(values[:k]) / k, sum(values[-k:]) / k


def test_tokenizer_loss_decreases_and_resume_is_exact(tmp_path):
    cfg = TrainConfig(steps=24, lr=3e-3, log_every=1, ckpt_every=12, seed=0)
    fast_restarts = dict(dead_code_threshold=0.5, usage_decay=0.5)  # restarts at steps 9 and 19 of this short run
    vae, result = train_var_tokenizer(TINY_VQ, cfg, DATA, tmp_path / "a", batch_size=8, progress=False, **fast_restarts)
    first, last = _first_last(result.losses)
    assert last < 0.8 * first
    used = torch.cat(vae.img_to_idx(DATA.batch(0, 64)[0].mul(2).sub(1)), dim=1).unique().numel()
    assert used >= 16, f"only {used} of 64 codes in use: dead-code restarts are not working"
    # Interrupted after the step-12 checkpoint (the batch of step 13 raises), then resumed to 24: the same weights.
    with pytest.raises(KeyboardInterrupt):
        train_var_tokenizer(TINY_VQ, cfg, _InterruptAt(seed=DATA.seed, size=DATA.size), tmp_path / "b", batch_size=8,
                            progress=False, **fast_restarts)
    resumed, _ = train_var_tokenizer(TINY_VQ, cfg, DATA, tmp_path / "b", batch_size=8, resume=True, progress=False,
                                     **fast_restarts)
    for (k, a), b in zip(vae.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_transformer_loss_decreases(tmp_path):
    vae, _ = train_var_tokenizer(TINY_VQ, TrainConfig(steps=5, lr=3e-3, log_every=1, seed=0), DATA, tmp_path / "tok",
                                 batch_size=8, progress=False)
    cfg = VARConfig(depth=2, embed_dim=64, num_heads=2, num_classes=12, patch_nums=TINY_VQ.patch_nums, vocab_size=64,
                    z_channels=8, drop_path_rate=0.0, init_adaln_gamma=1e-3, vae=TINY_VQ)
    train = TrainConfig(steps=30, lr=3e-3, log_every=1, seed=0)
    model, result = train_var_transformer(cfg, vae, train, DATA, tmp_path / "var", num_images=96, batch_size=16, progress=False)
    first, last = _first_last(result.losses)
    assert last < first - 0.3  # from ≈ ln(64) = 4.16 towards the data's entropy
    assert (tmp_path / "var" / "tokens.safetensors").is_file()


@pytest.mark.parametrize("recipe, family, tokens", [("toy/var-toy-s", "var", 130), ("toy/llamagen-toy", "llamagen", 64)])
def test_recipe_runs_and_exports_a_loadable_builtin(recipe, family, tokens, tmp_path, monkeypatch):
    from ardistill.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["teacher", "train", "--recipe", recipe, "--runs", "runs", "--steps", "2", "--num-images", "32",
              "--export", "--weights-root", "weights"])
    assert e.value.code in (0, None)
    name = recipe.split("/")[-1]
    folder = tmp_path / "weights" / name
    card = json.loads((folder / "model.json").read_text())
    assert card["family"] == family and card["tokens_per_image"] == tokens and card["image_size"] == 32
    # Stored in fp16; the tokenizer in its own folder (shared by teachers of one tokenizer recipe).
    tok_file = folder / card["files"]["tokenizer"]
    assert tok_file.parent.name == load_recipe(load_recipe(recipe)["tokenizer_recipe"])["name"] and tok_file.is_file()
    assert card["storage_dtype"] == "float16"
    assert {v.dtype for v in load_state_dict_file(folder / "transformer.safetensors").values() if v.is_floating_point()} == {torch.float16}
    # The exported folder is a built-in model: register it the way the zoo does and load it by name.
    from ardistill import registry
    from ardistill.api import load_teacher

    registry.list_models()
    monkeypatch.setattr(registry, "PACKAGE_WEIGHTS", tmp_path / "weights")
    from ardistill.zoo import _register_builtins

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    registry._MODELS.pop(name, None)
    _register_builtins()
    teacher = load_teacher(name)
    labels = torch.tensor([0, 5])
    sampled = teacher.sample(labels, seed=0)
    assert sampled.shape == (2, tokens)
    assert torch.equal(sampled, teacher.sample(labels, seed=0))
    images = teacher.decode(sampled)
    assert images.shape == (2, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    # `teacher export` installs the run with shipped sampling defaults and measured metrics in its card.
    with pytest.raises(SystemExit) as e:
        main(["teacher", "export", f"runs/{name}", "--num-samples", "12", "--cfg", "3.0", "--weights-root", "exported"])
    assert e.value.code in (0, None)
    card = json.loads((tmp_path / "exported" / name / "model.json").read_text())
    assert card["sampling_defaults"]["cfg"] == 3.0
    assert set(card["metrics"]) >= {"samples", "reconstructions", "num"} and card["metrics"]["num"] == 12
    assert "| samples |" in (tmp_path / "exported" / name / "README.md").read_text()


def test_unknown_recipe_kind_is_one_line_error(tmp_path):
    from ardistill.errors import ArdistillError
    from ardistill.training.teacher_recipes import train_from_recipe

    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: nope\n")
    with pytest.raises(ArdistillError, match="kind: expected var-tokenizer or .*, got 'nope'"):
        train_from_recipe(str(bad), runs=tmp_path)


def test_token_cache_is_remade_when_the_images_change(tmp_path):
    """A run folder reused after a change of the world re-tokenizes instead of training on stale tokens."""
    from ardistill.models.var.vqvae import VQVAE
    from ardistill.training.toy_data import ImageData, load_or_make_token_cache

    vae = VQVAE(TINY_VQ).eval()
    path = tmp_path / "tokens.safetensors"
    a, _ = load_or_make_token_cache(vae, ImageData(seed=0, size=32, rotation=360), 8, path, progress=False)
    again, _ = load_or_make_token_cache(vae, ImageData(seed=0, size=32, rotation=360), 8, path, progress=False)
    b, _ = load_or_make_token_cache(vae, ImageData(seed=0, size=32, rotation=30), 8, path, progress=False)
    assert torch.equal(a, again) and not torch.equal(a, b)
