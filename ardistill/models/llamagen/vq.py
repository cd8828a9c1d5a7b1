"""The LlamaGen VQ tokenizer (FoundationVision/LlamaGen `vq_ds16_c2i.pt`): conv encoder/decoder with an l2-normalised
8-dim codebook. Keys match the official state dict exactly (`encoder.conv_blocks.*`, `quantize.codebook_used`, ...).

Shapes: B batch, h×w token grid (16×16 at 256 px), C = 8 code dimension, V = 16384 codes, Z = 256 latent channels.
Images at the module boundary are [B, 3, H, W] in [-1, 1] (the teacher maps to/from [0, 1]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ardistill.models.llamagen.config import VQConfig


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h·w positions (bmm + softmax with scale c^-0.5, as the official block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, h, w = q.shape
        weights = torch.bmm(q.reshape(b, c, h * w).permute(0, 2, 1), k.reshape(b, c, h * w))  # [b, hw_q, hw_k]
        weights = F.softmax(weights * (int(c) ** (-0.5)), dim=2)
        out = torch.bmm(v.reshape(b, c, h * w), weights.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))  # right/bottom only


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution level: `res` blocks, `attn` blocks (one per res block at the lowest resolution, else none),
    and an optional `downsample` / `upsample` (parameter-free container, as in the official state dict)."""

    def __init__(self, res: list[nn.Module], attn: list[nn.Module]):
        super().__init__()
        self.res = nn.ModuleList(res)
        self.attn = nn.ModuleList(attn)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.res):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        return h


def middle(channels: int, dropout: float) -> nn.ModuleList:
    return nn.ModuleList([ResnetBlock(channels, channels, dropout), AttnBlock(channels), ResnetBlock(channels, channels, dropout)])


class Encoder(nn.Module):
    """[B, 3, H, W] → [B, Z, H/f, W/f], f = 2^(levels−1)."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        ch, mult, n = cfg.ch, tuple(cfg.encoder_ch_mult), cfg.num_res_blocks
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        in_mult = (1,) + mult
        self.conv_blocks = nn.ModuleList()
        block_in = ch
        for level, m in enumerate(mult):
            last = level == len(mult) - 1
            block_in, block_out = ch * in_mult[level], ch * m
            res = [ResnetBlock(block_in if i == 0 else block_out, block_out, cfg.dropout_p) for i in range(n)]
            block = Level(res, [AttnBlock(block_out) for _ in range(n)] if last else [])
            if not last:
                block.downsample = Downsample(block_out)
            self.conv_blocks.append(block)
            block_in = block_out
        self.mid = middle(block_in, cfg.dropout_p)
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.conv_blocks:
            h = block(h)
            if hasattr(block, "downsample"):
                h = block.downsample(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """[B, Z, h, w] → [B, 3, h·f, w·f] (not clamped). `conv_blocks[0]` is the lowest resolution."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        ch, mult, n = cfg.ch, tuple(cfg.decoder_ch_mult), cfg.num_res_blocks
        block_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, 1, 1)
        self.mid = middle(block_in, cfg.dropout_p)
        self.conv_blocks = nn.ModuleList()
        for level in reversed(range(len(mult))):
            block_out = ch * mult[level]
            res = [ResnetBlock(block_in if i == 0 else block_out, block_out, cfg.dropout_p) for i in range(n + 1)]
            block = Level(res, [AttnBlock(block_out) for _ in range(n + 1)] if level == len(mult) - 1 else [])
            if level != 0:
                block.upsample = Upsample(block_out)
            self.conv_blocks.append(block)
            block_in = block_out
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, 3, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for block in self.conv_blocks:
            h = block(h)
            if hasattr(block, "upsample"):
                h = block.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest l2-normalised code. `codebook_used` is a training statistic kept only for strict loading."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.l2_norm = cfg.codebook_l2_norm
        self.embedding = nn.Embedding(cfg.codebook_size, cfg.codebook_embed_dim)
        self.embedding.weight.data.uniform_(-1.0 / cfg.codebook_size, 1.0 / cfg.codebook_size)
        if self.l2_norm:
            self.embedding.weight.data = F.normalize(self.embedding.weight.data, p=2, dim=-1)
        if cfg.codebook_show_usage:
            self.register_buffer("codebook_used", torch.zeros(65536))

    def codebook(self) -> torch.Tensor:
        """[V, C] code vectors as used for lookup (re-normalised at every call, as the official code does)."""
        w = self.embedding.weight
        return F.normalize(w, p=2, dim=-1) if self.l2_norm else w

    def nearest_indices(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [B, C, h, w] → indices [B, h·w] (row-major) of the nearest code (|z|² + |e|² − 2 z·e, argmin)."""
        B, C, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, C)
        embedding = self.codebook()
        if self.l2_norm:
            flat = F.normalize(flat, p=2, dim=-1)
        d = torch.sum(flat**2, dim=1, keepdim=True) + torch.sum(embedding**2, dim=1) - 2 * torch.einsum("bd,dn->bn", flat, embedding.t())
        return torch.argmin(d, dim=1).view(B, h * w)

    def lookup(self, indices: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Indices [B, h·w] → codes [B, C, h, w]."""
        h, w = grid
        z = self.codebook()[indices]
        return z.reshape(indices.shape[0], h, w, z.shape[-1]).permute(0, 3, 1, 2).contiguous()


class VQModel(nn.Module):
    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = VectorQuantizer(config)
        self.quant_conv = nn.Conv2d(config.z_channels, config.codebook_embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.codebook_embed_dim, config.z_channels, 1)

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [-1, 1] → token indices [B, (H/f)·(W/f)] int64 (raster order)."""
        return self.quantize.nearest_indices(self.quant_conv(self.encoder(images)))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors [B, C, h, w] (any values: codebook rows or continuous) → images [B, 3, h·f, w·f] ≈ [-1, 1]
        (a decoder stored in bf16/fp16 runs in that dtype; the output follows it)."""
        return self.decoder(self.post_quant_conv(codes.to(self.post_quant_conv.weight.dtype)))

    def decode_indices(self, indices: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Indices [B, h·w] → images [B, 3, h·f, w·f] ≈ [-1, 1] (official `decode_code`)."""
        return self.decode(self.quantize.lookup(indices, grid))


__all__ = ["VQModel", "Encoder", "Decoder", "VectorQuantizer"]
