"""Tiny VAR / LlamaGen teachers with seeded random weights of a sensible scale (non-trivial token distributions),
and the tiny VAR spec the CLI tests register (also in a subprocess)."""

from __future__ import annotations

import math

import torch

from ardistill.models.llamagen.config import GPTConfig, VQConfig
from ardistill.models.llamagen.gpt import LlamaGenGPT
from ardistill.models.llamagen.vq import VQModel
from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.teachers.llamagen import LlamaGenTeacher
from ardistill.teachers.var import VARTeacher

TINY_VAR_NAME = "var-tiny-traj-test"


def tiny_var_config(patch_nums=(1, 2, 3)) -> VARConfig:
    vae = VQVAEConfig(vocab_size=64, ch=32, ch_mult=(1, 2), num_res_blocks=1, patch_nums=patch_nums)
    # drop_path_rate 0: drop-path masks are drawn per rank, so only a deterministic student trains bit-alike on 1 and
    # 2 ranks (tests/distributed/test_train_torchrun.py; docs/scaling.md)
    return VARConfig(depth=2, embed_dim=64, num_heads=2, num_classes=10, patch_nums=patch_nums, vocab_size=64, vae=vae,
                     drop_path_rate=0.0)


def tiny_llamagen_config() -> GPTConfig:
    vq = VQConfig(codebook_size=64, codebook_embed_dim=8, encoder_ch_mult=(1, 1, 2), decoder_ch_mult=(1, 1, 2), z_channels=64, ch=32,
                  num_res_blocks=1)
    return GPTConfig(dim=64, n_layer=2, n_head=4, num_classes=10, vocab_size=64, block_size=16, vq=vq)


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Seeded weights: unit-scale embeddings, fan-in-scaled matrices, norms near 1, small vectors."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "scale_mul" in name:
                p.copy_(math.log(4.0) + 0.5 * torch.randn(p.shape, generator=g))
            elif "emb" in name or name in ("pos_start", "pos_1LC"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return module.eval()


def tiny_var_teacher(patch_nums=(1, 2, 3), seed: int = 1) -> VARTeacher:
    cfg = tiny_var_config(patch_nums)
    return VARTeacher(TINY_VAR_NAME, randomize_(VARTransformer(cfg), seed), randomize_(VQVAE(cfg.vae), seed + 1))


def tiny_llamagen_teacher(seed: int = 1) -> LlamaGenTeacher:
    cfg = tiny_llamagen_config()
    gpt = randomize_(LlamaGenGPT(cfg), seed)
    return LlamaGenTeacher("llamagen-tiny-traj-test", gpt, randomize_(VQModel(cfg.vq), seed + 1))


def tiny_var_spec():
    """The ModelSpec of TINY_VAR_NAME (random-init only: no files); register it in `registry._MODELS`."""
    from ardistill import registry
    from ardistill.registry import ModelSpec, WeightFile

    registry.list_models()  # load the zoo first so it cannot overwrite the entry
    cfg = tiny_var_config()
    return ModelSpec(
        name=TINY_VAR_NAME, family="var", config=cfg,
        files=(WeightFile("transformer", "var_tiny_traj.pth"), WeightFile("tokenizer", "vae_tiny_traj.pth")),
        description="tiny VAR for trajectory tests", tokens_per_image=cfg.seq_len, image_size=cfg.vae.image_size,
        sampling_defaults=dict(cfg=1.5, top_k=20, top_p=0.95, temperature=1.0),
    )
