"""Tiny DD fixtures: a VAR and a LlamaGen teacher with seeded random weights, and trajectory datasets made from them
by the real trajectory generator (few ODE steps: these tests need valid token sequences, not exact flow maps)."""

import math

import torch

from ardistill.methods.dd.flow import FlowMapConfig
from ardistill.methods.dd.trajectories import generate_trajectories, open_trajectories
from ardistill.models.llamagen.config import GPTConfig, VQConfig
from ardistill.models.llamagen.gpt import LlamaGenGPT
from ardistill.models.llamagen.vq import VQModel
from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.teachers.base import SamplingSettings
from ardistill.teachers.llamagen import LlamaGenTeacher
from ardistill.teachers.var import VARTeacher

PATCH_NUMS = (1, 2, 3)  # 14 tokens


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(module.named_parameters()):
        r = torch.randn(p.shape, generator=g)
        if "scale_mul" in name:
            p.copy_(math.log(4.0) + 0.5 * r)
        elif p.dim() >= 2:
            p.copy_(r / math.sqrt(p[0].numel()) if "embedding" not in name and "emb" not in name else 0.5 * r)
        elif name.endswith("norm.weight") or ".norm" in name:
            p.copy_(1 + 0.1 * r)
        else:
            p.copy_(0.05 * r)
    return module.eval()


def var_config() -> VARConfig:
    vae = VQVAEConfig(vocab_size=32, z_channels=8, ch=32, ch_mult=(1, 2), num_res_blocks=1, patch_nums=PATCH_NUMS)
    return VARConfig(depth=2, embed_dim=32, num_heads=2, num_classes=4, patch_nums=PATCH_NUMS, vocab_size=32,
                     z_channels=8, drop_path_rate=0.0, vae=vae)


def var_teacher(name: str = "var-dd-tiny") -> VARTeacher:
    cfg = var_config()
    return VARTeacher(name, randomize_(VARTransformer(cfg), 1), randomize_(VQVAE(cfg.vae), 2),
                      default_sampling=SamplingSettings(cfg=1.5, top_k=0, top_p=0.0, temperature=1.0))


def gpt_config() -> GPTConfig:
    vq = VQConfig(codebook_size=32, codebook_embed_dim=8, encoder_ch_mult=(1, 2), decoder_ch_mult=(1, 2), z_channels=32,
                  ch=32, num_res_blocks=1)
    return GPTConfig(dim=32, n_layer=2, n_head=2, num_classes=4, vocab_size=32, block_size=9, multiple_of=32, vq=vq)


def llamagen_teacher(name: str = "llamagen-dd-tiny") -> LlamaGenTeacher:
    cfg = gpt_config()
    return LlamaGenTeacher(name, randomize_(LlamaGenGPT(cfg), 3), randomize_(VQModel(cfg.vq), 4),
                           default_sampling=SamplingSettings(cfg=1.5, top_k=0, top_p=1.0, temperature=1.0))


def make_trajectories(teacher, root, num: int = 48, seed: int = 5):
    generate_trajectories(teacher, root, num=num, seed=seed, shard_size=16, batch_size=16,
                          flow=FlowMapConfig(steps=8), progress=False)
    return open_trajectories(root)
