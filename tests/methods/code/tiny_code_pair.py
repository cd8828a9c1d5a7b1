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
from official_layout import fill_official_layout_  # noqa: E402  (tests/ is on sys.path)

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


# ---------------------------------------------------------------------------- official-layout pair (pinned tokens)


# The official CoDe code hard-codes the 10-scale exit points, so the pinned pair has the 256-px scales at toy width:
# build_vae_var_ctf(V=64, Cvae=8, ch=32, share_quant_resi=4, num_classes=10, depth_draft=2, depth_refine=1).
PIN_SEEDS = dict(vae=3101, drafter=3102, refiner=3103)


def official_pair_configs() -> tuple[VARConfig, VARConfig]:
    vae = VQVAEConfig(vocab_size=64, z_channels=8, ch=32)
    return (VARConfig(depth=2, num_classes=10, vocab_size=64, z_channels=8, vae=vae),
            VARConfig(depth=1, num_classes=10, vocab_size=64, z_channels=8, vae=vae))


def official_pair() -> tuple[VARTeacher, VARTeacher]:
    dcfg, rcfg = official_pair_configs()
    vae = VQVAE(dcfg.vae)
    fill_official_layout_(vae.state_dict(), PIN_SEEDS["vae"])
    teachers = []
    for name, cfg in (("drafter", dcfg), ("refiner", rcfg)):
        t = VARTransformer(cfg)
        fill_official_layout_(t.state_dict(), PIN_SEEDS[name])
        teachers.append(VARTeacher(f"pin-{name}", t, vae.eval()))
    return teachers[0], teachers[1]


def pair_32px(draft_seed: int = 21, refine_seed: int = 22) -> tuple[VARTeacher, VARTeacher]:
    """A tiny pair for 32-px procedural images (12 classes, scales 1, 2, 3, 4, downsample 8) for fine-tuning tests."""
    vcfg = VQVAEConfig(vocab_size=32, z_channels=8, ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1, patch_nums=(1, 2, 3, 4))
    vae = randomize_(VQVAE(vcfg), seed=20)
    teachers = []
    for name, depth, width, seed in (("tiny32-drafter", 2, 64, draft_seed), ("tiny32-refiner", 1, 64, refine_seed)):
        cfg = VARConfig(depth=depth, embed_dim=width, num_heads=2, num_classes=12, patch_nums=(1, 2, 3, 4), vocab_size=32,
                        z_channels=8, drop_path_rate=0.0, vae=vcfg)
        t = VARTransformer(cfg)
        t.init_weights(torch.Generator().manual_seed(seed))
        teachers.append(VARTeacher(name, t, vae, default_sampling=SamplingSettings(cfg=1.0, top_k=0, top_p=0.0, temperature=1.0)))
    return teachers[0], teachers[1]
