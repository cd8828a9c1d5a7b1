"""Distilled Decoding 2 networks for the VAR family (DD2 spec §2): the teacher's transformer backbone + a light MLP head.

Both DD2 networks have this one shape (`VARDD2Net`); they differ only in what the backbone reads and what t the head
gets:
- **guidance ψ** (`VARGuidanceNet`, and the GTS-tuned model of spec §3): the backbone reads the *clean* sequence
  through VAR's own next-scale input path, so the feature f_i of a position in scale s sees the tokens of scales < s
  only (VAR's block-causal order: positions of one scale are conditionally independent given the earlier scales). The
  head maps (noisy token x_i, t, f_i) → a velocity v̂, and x̂0 = x_i − t·v̂ (exact as t → 0 whatever the head's error).
- **generator G_θ** (`VARGenerator`): one forward pass reading only noise. The backbone reads the noise sequence ε
  through the same next-scale input path (the sequence "shifted" by VAR's one AR step), the head reads (ε_i, t = 1,
  f_i) and the output is q_i = ε_i − v_θ,i — one Euler step of the whole flow, so the GTS-tuned model is a valid
  initialisation (it then predicts the mean of each position's teacher distribution given a noise prefix).

Network space. Tokens, noise and outputs live in the code space scaled by `code_scale` (q_net = code_scale · code
vector): VAR's codes are small against N(0, I) noise (var-toy-l: std 0.097 per dimension), and the scale makes the
noise level t at which codes become distinguishable O(1) (docs/dd2.md). The backbone divides by `code_scale` before
VAR's input path, so it sees the code vectors it was trained on.

Shapes: B batch, L tokens (Σ pn²; 130 for var-toy-l), C = Cvae code dimension (32), D backbone width, V codebook size.
t is [B, L] in [0, 1] (t = 1: pure noise). Labels are [B] int64 class ids.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import MultiScaleQuantizer


def continuous_next_scale_input(quantize: MultiScaleQuantizer, tokens: torch.Tensor) -> torch.Tensor:
    """VAR's teacher-forcing input from continuous code vectors: tokens `[B, L, Cvae]` (scales concatenated, raster
    order) → the next scales' inputs `[B, L − pn_0², Cvae]` fp32. Equal to `quantize.idx_to_var_input` when every
    vector is a codebook row (tested); out of place, so it is differentiable in `tokens`."""
    patch_nums = quantize.patch_nums
    B, C = tokens.shape[0], quantize.Cvae
    H = W = patch_nums[-1]
    f_hat = tokens.new_zeros(B, C, H, W, dtype=torch.float32)
    inputs, start = [], 0
    for si in range(len(patch_nums) - 1):
        pn = patch_nums[si]
        h = tokens[:, start:start + pn * pn].float().transpose(1, 2).reshape(B, C, pn, pn)
        start += pn * pn
        f_hat = f_hat + quantize.phi(si)(F.interpolate(h, size=(H, W), mode="bicubic"))
        nxt = patch_nums[si + 1]
        inputs.append(F.interpolate(f_hat, size=(nxt, nxt), mode="area").reshape(B, C, -1).transpose(1, 2))
    return torch.cat(inputs, dim=1)


class TimestepEmbedder(nn.Module):
    """t `[N]` in [0, 1] → `[N, width]`: sinusoids of 1000·t (DiT / MAR) and a two-layer MLP."""

    def __init__(self, width: int, frequencies: int = 256):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequencies // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = 1000 * t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class ResBlock(nn.Module):
    """MAR's head block: x + gate·MLP(LN(x)·(1 + scale) + shift), (shift, scale, gate) from the condition c."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))
        nn.init.zeros_(self.ada[-1].weight)
        nn.init.zeros_(self.ada[-1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(c).chunk(3, dim=-1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class DiffusionHead(nn.Module):
    """The light MLP head (MAR's SimpleMLPAdaLN shape): (x `[N, C]` noisy token, t `[N]`, f `[N, D]` backbone
    feature) → velocity v̂ `[N, C]`. The output layer and every modulation start at zero (v̂ = 0 at init)."""

    def __init__(self, code_dim: int, feature_dim: int, width: int = 256, depth: int = 3):
        super().__init__()
        self.time_embed = TimestepEmbedder(width)
        self.cond_embed = nn.Linear(feature_dim, width)
        self.input_proj = nn.Linear(code_dim, width)
        self.blocks = nn.ModuleList([ResBlock(width) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, code_dim)
        for layer in (self.final_ada[-1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        c = self.time_embed(t) + self.cond_embed(f)
        h = self.input_proj(x)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return self.out(self.final_norm(h) * (1 + scale) + shift)


class VARBackbone(nn.Module):
    """The teacher's VAR transformer without its classification head: (labels `[B]`, tokens `[B, L, Cvae]` code
    vectors) → features `[B, L, D]` fp32 (the AdaLN-before-head output), position i seeing the class and the tokens of
    earlier scales only. A copy: training it never touches the teacher. No label dropout, no drop-path."""

    def __init__(self, transformer: VARTransformer, quantize: MultiScaleQuantizer):
        super().__init__()
        cfg = dataclasses.replace(transformer.config, cond_drop_rate=0.0, drop_path_rate=0.0)
        self.net = VARTransformer(cfg)
        self.net.load_state_dict({k: v.float() for k, v in transformer.state_dict().items()})
        self.net.head = nn.Identity()  # get_logits now returns head_nm(h, cond): the features
        # The tokenizer's next-scale input path (φ convolutions), frozen: not a trained part of DD2's networks.
        self.quantize = copy.deepcopy(quantize).float().requires_grad_(False)
        self.patch_nums = tuple(cfg.patch_nums)
        self.scale_slices = list(self.net.scale_slices)
        self.width = cfg.width

    def forward(self, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(labels, continuous_next_scale_input(self.quantize, tokens))


class VARDD2Net(nn.Module):
    """Backbone + head, the shape of both DD2 networks (see the module docstring); `code_scale` maps code vectors to
    network space. Built from a teacher's transformer and tokenizer quantizer (`from_teacher_parts`)."""

    def __init__(self, backbone: VARBackbone, head: DiffusionHead, code_scale: float = 1.0):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.register_buffer("code_scale", torch.tensor(float(code_scale)))
        self.scale_slices = backbone.scale_slices
        self.tokens_per_image = backbone.scale_slices[-1][1]
        self.code_dim = backbone.quantize.Cvae

    @classmethod
    def from_teacher_parts(cls, transformer: VARTransformer, quantize: MultiScaleQuantizer, *, code_scale: float = 1.0,
                           head_width: int = 256, head_depth: int = 3) -> "VARDD2Net":
        backbone = VARBackbone(transformer, quantize)
        return cls(backbone, DiffusionHead(quantize.Cvae, backbone.width, head_width, head_depth), code_scale)

    def features(self, labels: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """labels `[B]`, prefix `[B, L, C]` clean tokens in network space → f `[B, L, D]`; row i sees prefix rows of
        earlier scales only (whatever the prefix holds at scale(i) and after does not change f_i)."""
        return self.backbone(labels, prefix / self.code_scale)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """x `[N, l, C]`, t `[N, l]`, features `[N, l, D]` → v̂ `[N, l, C]` (the head on every position)."""
        N, l, C = x.shape
        return self.head(x.reshape(N * l, C), t.reshape(N * l), features.reshape(N * l, -1)).view(N, l, C)

    def denoise(self, x: torch.Tensor, t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """x̂0 = x − t·v̂ `[N, l, C]` for noisy tokens x `[N, l, C]` at t `[N, l]` given their features `[N, l, D]`."""
        return x - t[..., None] * self.velocity(x, t, features)

    def guidance(self, x: torch.Tensor, t: torch.Tensor, prefix: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """ψ: x `[m·B, L, C]` noisy tokens, t `[m·B, L]`, prefix `[B, L, C]` clean tokens, labels `[B]` → x̂0
        `[m·B, L, C]`; row r·B + b uses prefix b (the backbone runs once per prefix, the head on every row)."""
        B = prefix.shape[0]
        if x.shape[0] % B or labels.shape[0] != B:
            raise ValueError(f"x has {x.shape[0]} rows for {B} prefixes and {labels.shape[0]} labels")
        f = self.features(labels, prefix)
        return self.denoise(x, t, f.repeat(x.shape[0] // B, 1, 1))

    def generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """G_θ: noise ε `[B, L, C]` ~ N(0, I), labels `[B]` → tokens q = ε − v_θ(ε, t = 1, f(ε)) `[B, L, C]` in
        network space: one backbone pass over the noise, one head pass, nothing else read."""
        f = self.features(labels, noise)
        return noise - self.velocity(noise, torch.ones(noise.shape[:2], device=noise.device, dtype=noise.dtype), f)


class VARGuidanceNet(VARDD2Net):
    """ψ as a module: forward = `guidance` (x, t, prefix, labels) → x̂0."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, prefix: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.guidance(x, t, prefix, labels)


class VARGenerator(VARDD2Net):
    """G_θ as a module: forward = `generate` (noise, labels) → tokens, one pass."""

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.generate(noise, labels)


def as_role(net: VARDD2Net, role: type[VARDD2Net]) -> VARDD2Net:
    """A deep copy of `net` (e.g. the GTS-tuned model) as a `VARGuidanceNet` or `VARGenerator`: same weights."""
    out = copy.deepcopy(net)
    out.__class__ = role
    return out


__all__ = ["continuous_next_scale_input", "DiffusionHead", "VARBackbone", "VARDD2Net", "VARGuidanceNet",
           "VARGenerator", "as_role"]
