"""Tiny VAR fixtures: a depth-2 transformer and a small multi-scale VQVAE with random (non-trivial) weights,
written as official-layout checkpoint files (.pth plain state dict and .safetensors)."""

import math

import pytest
import torch

from ardistill import registry
from ardistill.io import atomic_save_safetensors
from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.registry import ModelSpec, WeightFile

TINY_PATCH_NUMS = (1, 2, 3, 4)
TINY_NAME = "var-tiny-test"


def tiny_config() -> VARConfig:
    vae = VQVAEConfig(vocab_size=64, ch=32, ch_mult=(1, 2), num_res_blocks=1, patch_nums=TINY_PATCH_NUMS)
    return VARConfig(depth=2, embed_dim=64, num_heads=2, num_classes=10, patch_nums=TINY_PATCH_NUMS, vocab_size=64, vae=vae)


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Seeded random values of a sensible scale for every parameter (the official init makes blocks nearly the
    identity, which would hide bugs); structural buffers are kept."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "scale_mul" in name:
                p.copy_(math.log(4.0) + 0.5 * torch.randn(p.shape, generator=g))
            elif name in ("pos_start", "pos_1LC") or name.endswith(("class_emb.weight", "lvl_embed.weight", "embedding.weight")):
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if "embedding" in name else 0.5))
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            elif ".norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return module.eval()


@pytest.fixture(scope="session")
def tiny_cfg() -> VARConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def tiny_state_dicts(tiny_cfg):
    """(transformer state dict, VQVAE state dict) in the official layout."""
    var = randomize_(VARTransformer(tiny_cfg), seed=1)
    vae = randomize_(VQVAE(tiny_cfg.vae), seed=2)
    return {k: v.clone() for k, v in var.state_dict().items()}, {k: v.clone() for k, v in vae.state_dict().items()}


@pytest.fixture
def tiny_spec(tiny_cfg, monkeypatch) -> ModelSpec:
    """A registered tiny VAR model (registry entry removed after the test)."""
    registry.list_models()  # load the zoo first so it cannot overwrite the test entry
    spec = ModelSpec(
        name=TINY_NAME,
        family="var",
        config=tiny_cfg,
        files=(WeightFile("transformer", "var_tiny.pth"), WeightFile("tokenizer", "vae_tiny.pth")),
        description="tiny VAR for tests",
        tokens_per_image=tiny_cfg.seq_len,
        image_size=tiny_cfg.vae.image_size,
        sampling_defaults=dict(cfg=1.5, top_k=20, top_p=0.95, temperature=1.0),
    )
    monkeypatch.setitem(registry._MODELS, TINY_NAME, spec)
    return spec


@pytest.fixture
def tiny_files(tmp_path, tiny_state_dicts):
    """Official-layout files: var_tiny.pth / vae_tiny.pth (plain state dicts) and their .safetensors twins."""
    var_sd, vae_sd = tiny_state_dicts
    paths = {
        "var_pth": tmp_path / "var_tiny.pth",
        "vae_pth": tmp_path / "vae_tiny.pth",
        "var_st": tmp_path / "st" / "var_tiny.safetensors",
        "vae_st": tmp_path / "st" / "vae_tiny.safetensors",
    }
    torch.save(var_sd, paths["var_pth"])
    torch.save(vae_sd, paths["vae_pth"])
    atomic_save_safetensors(var_sd, paths["var_st"])
    atomic_save_safetensors(vae_sd, paths["vae_st"])
    return paths


@pytest.fixture
def tiny_teacher(tiny_spec, tiny_files):
    from ardistill.teachers.var import load_var_teacher

    return load_var_teacher(tiny_spec, transformer_path=tiny_files["var_pth"], vae_path=tiny_files["vae_pth"])
