"""Tiny CoDe pairs: two VAR transformers of different widths sharing one small multi-scale VQVAE, with seeded
random (non-trivial) weights — every tensor a pure function of a seed."""

import math

import pytest
import torch

from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.teachers.base import SamplingSettings
from ardistill.teachers.var import VARTeacher

TINY_PATCH_NUMS = (1, 2, 3, 4, 5)


def tiny_vae_config(vocab_size: int = 64) -> VQVAEConfig:
    return VQVAEConfig(vocab_size=vocab_size, z_channels=8, ch=32, ch_mult=(1, 2), num_res_blocks=1, patch_nums=TINY_PATCH_NUMS)


def tiny_var_config(depth: int, width: int, vocab_size: int = 64) -> VARConfig:
    return VARConfig(depth=depth, embed_dim=width, num_heads=2, num_classes=10, patch_nums=TINY_PATCH_NUMS,
                     vocab_size=vocab_size, z_channels=8, vae=tiny_vae_config(vocab_size))


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Seeded values of a sensible scale for every parameter; structural buffers keep their built values."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(module.named_parameters()):
        r = torch.randn(p.shape, generator=g)
        if "scale_mul" in name:
            p.copy_(math.log(4.0) + 0.5 * r)
        elif name in ("pos_start", "pos_1LC") or name.endswith(("class_emb.weight", "lvl_embed.weight")):
            p.copy_(0.5 * r)
        elif name.endswith("embedding.weight"):
            p.copy_(r)
        elif p.dim() >= 2:
            p.copy_(r / math.sqrt(p[0].numel()))
        elif ".norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * r)
        else:
            p.copy_(0.05 * r)
    return module.eval()


def make_teacher(name: str, depth: int, width: int, seed: int, vae: VQVAE) -> VARTeacher:
    t = randomize_(VARTransformer(tiny_var_config(depth, width)), seed)
    return VARTeacher(name, t, vae, default_sampling=SamplingSettings(cfg=2.0, top_k=20, top_p=0.9, temperature=1.0))


@pytest.fixture(scope="module")
def tiny_pair():
    """(drafter depth 3 width 96, refiner depth 1 width 64), one shared tokenizer."""
    vae = randomize_(VQVAE(tiny_vae_config()), seed=7)
    return make_teacher("tiny-drafter", 3, 96, 11, vae), make_teacher("tiny-refiner", 1, 64, 12, vae)
