"""Distilled Decoding 2 networks, family-generic (DD2 spec §2): a backbone of the teacher + a light MLP head.

Both DD2 networks have this one shape (`DD2Net`); they differ only in what the backbone reads and what t the head
gets:
- **guidance ψ** (`DD2Guidance`, and the GTS-tuned model of spec §3): the backbone reads the *clean* sequence, so the
  feature f_i sees only the tokens of earlier AR steps (VAR: earlier scales; LlamaGen: earlier tokens). The head maps
  (noisy token x_i, t, f_i) → a velocity v̂, and x̂0 = x_i − t·v̂ (exact as t → 0 whatever the head's error).
- **generator G_θ** (`DD2Generator`): one forward pass reading only noise. The backbone reads the noise sequence ε
  (times `generator_prefix_scale`) through the same input path (the sequence "shifted" by one AR step), the head
  reads (x_i = t_g·ε_i, t_g, f_i) at the generator's noise level t_g (`generator_t`) and the output is its clean-token
  prediction q_i = x_i − t_g·v_θ,i. At t_g = 1 (the paper's form) that is q_i = ε_i − v_θ,i, one Euler step of the whole
  flow; a GTS-tuned model is a valid initialisation at any t_g (docs/dd2.md decision 23: at t = 1 its output does not
  depend on ε_i at all — the posterior mean of the code given the prefix —, below 1 it does).

A backbone is a module `(labels [B], tokens [B, L, C] code vectors) → features [B, L, D]` with attributes `width` (D),
`code_dim` (C) and `step_slices` ([begin, end) of every AR step; row i's feature must not depend on tokens of its own
step or later). Network space: code vectors × `code_scale` (docs/dd2.md decision 12); the net divides by it before the
backbone, so the backbone sees the code vectors its teacher was trained on.

Shapes: B batch, L tokens, C code dimension, D backbone width. t is [B, L] in [0, 1] (t = 1: pure noise).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


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


class DD2Net(nn.Module):
    """Backbone + head, the shape of both DD2 networks (see the module docstring); `code_scale` maps code vectors to
    network space. `step_slices`: [begin, end) of every AR step (VAR: scales, LlamaGen: tokens)."""

    def __init__(self, backbone: nn.Module, head: DiffusionHead, code_scale: float = 1.0):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.register_buffer("code_scale", torch.tensor(float(code_scale)))
        self.step_slices = list(backbone.step_slices)
        self.tokens_per_image = self.step_slices[-1][1]
        self.code_dim = backbone.code_dim
        # the generator's input (decision 23): the head reads t_g·ε at t_g, the backbone prefix_scale·ε; plain
        # attributes (not weights), recorded in a student's card
        self.generator_t, self.generator_prefix_scale = 1.0, 1.0

    def set_generator_input(self, noise_level: float = 1.0, prefix_scale: float | None = None) -> "DD2Net":
        """The generator reads noise at `noise_level` t_g ∈ (0, 1] (the head gets x = t_g·ε at t_g) and its backbone
        `prefix_scale`·ε (None: t_g); returns self."""
        if not 0 < noise_level <= 1:
            raise ValueError(f"the generator's noise level must be in (0, 1], got {noise_level}")
        prefix_scale = noise_level if prefix_scale is None else prefix_scale
        if not prefix_scale >= 0:
            raise ValueError(f"the generator's prefix scale must be ≥ 0, got {prefix_scale}")
        self.generator_t, self.generator_prefix_scale = float(noise_level), float(prefix_scale)
        return self

    @property
    def forward_pass_module(self) -> nn.Module:
        """The module called once per forward pass with the batch as its first input's leading dimension (the
        backbone; the head runs on flattened positions): what a benchmark counts."""
        return self.backbone

    @classmethod
    def with_head(cls, backbone: nn.Module, *, code_scale: float = 1.0, head_width: int = 256,
                  head_depth: int = 3) -> "DD2Net":
        """`backbone` + a fresh zero-output head of `head_width` × `head_depth` (draws from torch's global RNG)."""
        return cls(backbone, DiffusionHead(backbone.code_dim, backbone.width, head_width, head_depth), code_scale)

    def features(self, labels: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """labels `[B]`, prefix `[B, L, C]` clean tokens in network space → f `[B, L, D]`; row i sees prefix rows of
        earlier AR steps only (whatever the prefix holds at step(i) and after does not change f_i)."""
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
        """G_θ: noise ε `[B, L, C]` ~ N(0, I), labels `[B]` → tokens q = x − t_g·v_θ(x, t_g, f(s·ε)) `[B, L, C]` in
        network space, x = t_g·ε (t_g = `generator_t`, s = `generator_prefix_scale`; both 1: q = ε − v_θ(ε, 1, f(ε))):
        one backbone pass over the noise, one head pass, nothing else read."""
        t_g, s = self.generator_t, self.generator_prefix_scale
        f = self.features(labels, noise if s == 1 else s * noise)
        x = noise if t_g == 1 else t_g * noise
        return self.denoise(x, torch.full(noise.shape[:2], t_g, device=noise.device, dtype=noise.dtype), f)


class DD2Guidance(DD2Net):
    """ψ as a module: forward = `guidance` (x, t, prefix, labels) → x̂0."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, prefix: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.guidance(x, t, prefix, labels)


class DD2Generator(DD2Net):
    """G_θ as a module: forward = `generate` (noise, labels) → tokens, one pass."""

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.generate(noise, labels)


def as_role(net: DD2Net, role: type[DD2Net]) -> DD2Net:
    """A deep copy of `net` (e.g. the GTS-tuned model) as a `DD2Guidance` or `DD2Generator`: same weights."""
    out = copy.deepcopy(net)
    out.__class__ = role
    return out


__all__ = ["TimestepEmbedder", "ResBlock", "DiffusionHead", "DD2Net", "DD2Guidance", "DD2Generator", "as_role"]
