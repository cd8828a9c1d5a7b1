"""Seeded weights in the official VAR / VQVAE layout, shared by every test that pins the official code's outputs.

The official side-by-side scripts applied this very function to the official modules' state dicts
(docs/exactness.md, docs/code.md), so a test that builds the same weights can compare against pinned numbers.
"""

import math

import torch

STRUCTURAL_BUFFERS = ("lvl_1L", "attn_bias_for_masking", "zero_k_bias", "ema_vocab_hit_SV")


@torch.no_grad()
def fill_official_layout_(state_dict: dict[str, torch.Tensor], seed: int) -> None:
    """Fill every learnt tensor of an official-layout VAR or VQVAE state dict in place (tensors share storage
    with the module's). Scales keep every layer non-trivial (the official init makes blocks near-identities)."""
    g = torch.Generator().manual_seed(seed)
    for name in sorted(state_dict):
        t = state_dict[name]
        if not t.is_floating_point() or name.endswith(STRUCTURAL_BUFFERS):
            continue
        r = torch.randn(t.shape, generator=g, dtype=torch.float32)
        if name.endswith("scale_mul_1H11"):
            v = math.log(4.0) + 0.5 * r
        elif name.endswith(("pos_1LC", "pos_start", "class_emb.weight", "lvl_embed.weight")):
            v = 0.5 * r
        elif name.endswith("quantize.embedding.weight"):
            v = r
        elif t.dim() >= 2:
            v = r / math.sqrt(t[0].numel())  # fan-in scaling
        elif "norm" in name and name.endswith("weight"):
            v = 1 + 0.1 * r
        else:
            v = 0.05 * r
        t.copy_(v)
