"""The multi-scale residual VQVAE of VAR (FoundationVision/VAR `vae_ch160v4096z32.pth`).

Shapes: B batch, Cvae code dimension (32), V codebook size (4096), pn side of a scale's token map, h×w the
latent size (patch_nums[-1], 16 at 256 px). Images at this module's boundary are in [-1, 1]; the teacher maps
them to [0, 1]. Module and parameter names reproduce the official state dict key for key.

Two interpolations define every result (official semantics, do not "improve"):
token maps are upsampled to h×w with **bicubic** (align_corners False, no antialias) before φ, and the next
scale's input is the **area**-downsampled cumulative f_hat. The last scale is never interpolated.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ardistill.models.var.config import VQVAEConfig


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class Upsample2x(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Downsample2x(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, pad=(0, 1, 0, 1), mode="constant", value=0))  # pad right and bottom only


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        h = self.conv2(F.silu(self.norm2(h), inplace=True))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with one fused 1×1 qkv conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(self.norm(x))
        B, _, H, W = qkv.shape
        C = self.channels
        q, k, v = qkv.reshape(B, 3, C, H, W).unbind(1)
        q = q.reshape(B, C, H * W).permute(0, 2, 1).contiguous()  # [B, HW, C]
        k = k.reshape(B, C, H * W).contiguous()  # [B, C, HW]
        w = torch.bmm(q, k).mul_(C ** -0.5).softmax(dim=2)  # [B, HW_q, HW_k]
        v = v.reshape(B, C, H * W).contiguous()
        h = torch.bmm(v, w.permute(0, 2, 1).contiguous()).view(B, C, H, W)
        return x + self.proj_out(h)


class _Level(nn.Module):
    """One resolution level: `block`, `attn` (ModuleLists) and an optional `downsample` / `upsample`."""

    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module]):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)


class _Mid(nn.Module):
    def __init__(self, channels: int, using_mid_sa: bool):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels) if using_mid_sa else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Image [B, 3, H, W] in [-1, 1] → features [B, Cvae, H/16, W/16] (before quant_conv)."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch, mult, n_levels = cfg.ch, cfg.ch_mult, len(cfg.ch_mult)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, kernel_size=3, stride=1, padding=1)
        in_mult = (1,) + tuple(mult)
        levels = []
        for i in range(n_levels):
            c_in, c_out = ch * in_mult[i], ch * mult[i]
            blocks = [ResnetBlock(c_in if b == 0 else c_out, c_out) for b in range(cfg.num_res_blocks)]
            last = i == n_levels - 1
            attns = [AttnBlock(c_out) for _ in range(cfg.num_res_blocks)] if (last and cfg.using_sa) else []
            level = _Level(blocks, attns)
            if not last:
                level.downsample = Downsample2x(c_out)
            levels.append(level)
        self.down = nn.ModuleList(levels)
        c = ch * mult[-1]
        self.mid = _Mid(c, cfg.using_mid_sa)
        self.norm_out = _group_norm(c)
        self.conv_out = nn.Conv2d(c, cfg.z_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[i](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


class Decoder(nn.Module):
    """Features [B, Cvae, h, w] (after post_quant_conv) → image [B, 3, 16h, 16w] (unclamped)."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch, mult, n_levels = cfg.ch, cfg.ch_mult, len(cfg.ch_mult)
        c_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, c_in, kernel_size=3, stride=1, padding=1)
        self.mid = _Mid(c_in, cfg.using_mid_sa)
        levels: list[nn.Module | None] = [None] * n_levels
        for i in reversed(range(n_levels)):  # built lowest resolution first, stored at index i_level
            c_out = ch * mult[i]
            blocks = [ResnetBlock(c_in if b == 0 else c_out, c_out) for b in range(cfg.num_res_blocks + 1)]
            attns = [AttnBlock(c_out) for _ in range(cfg.num_res_blocks + 1)] if (i == n_levels - 1 and cfg.using_sa) else []
            level = _Level(blocks, attns)
            if i != 0:
                level.upsample = Upsample2x(c_out)
            levels[i] = level
            c_in = c_out
        self.up = nn.ModuleList(levels)
        self.norm_out = _group_norm(c_in)
        self.conv_out = nn.Conv2d(c_in, cfg.in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[i](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


class Phi(nn.Conv2d):
    """φ(h) = (1 − r)·h + r·conv3×3(h), r = quant_resi (0.5)."""

    def __init__(self, channels: int, ratio: float):
        super().__init__(channels, channels, kernel_size=3, stride=1, padding=1)
        self.resi_ratio = abs(ratio)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.mul(1 - self.resi_ratio) + super().forward(h).mul_(self.resi_ratio)


def phi_ticks(num_phi: int) -> np.ndarray:
    """Positions in [0, 1] of the shared φ's (float64, as numpy computes them in the official code)."""
    k = num_phi
    return np.linspace(1 / 3 / k, 1 - 1 / 3 / k, k) if k == 4 else np.linspace(1 / 2 / k, 1 - 1 / 2 / k, k)


def phi_index_table(num_scales: int, num_phi: int) -> tuple[int, ...]:
    """φ used at each scale: argmin |ticks − si/(SN−1)|. Ten scales, four φ's → (0, 0, 1, 1, 1, 2, 2, 3, 3, 3).

    Scales 2 and 7 of ten are exact mathematical ties; float64 rounding resolves them to φ1 and φ3 (a "round half
    down" rule would pick φ0 / φ2 and change every image), so the numpy computation is reproduced, not rounded.
    """
    ticks = phi_ticks(num_phi)
    denom = max(num_scales - 1, 1)
    return tuple(int(np.argmin(np.abs(ticks - si / denom)).item()) for si in range(num_scales))


class _SharedPhi(nn.Module):
    """share_quant_resi=1: one φ for every scale, key `quant_resi.qresi`."""

    def __init__(self, phi: nn.Module):
        super().__init__()
        self.qresi = phi


class _PartiallySharedPhi(nn.Module):
    """share_quant_resi=K>1: K φ's picked by scale position, keys `quant_resi.qresi_ls.{k}`."""

    def __init__(self, phis: list[nn.Module]):
        super().__init__()
        self.qresi_ls = nn.ModuleList(phis)


def _build_phis(cfg: VQVAEConfig, num_scales: int) -> tuple[nn.Module, tuple[nn.Module, ...], tuple[int, ...]]:
    """(the `quant_resi` module in the official key layout, its φ's, φ index per scale).

    share_quant_resi 0 (one φ per scale, or `default_qresi_counts` of them) is a plain ModuleList, keys
    `quant_resi.{k}`; its scale → φ map also goes through the ticks, as in the official code.
    """
    make = (lambda: Phi(cfg.z_channels, cfg.quant_resi)) if abs(cfg.quant_resi) > 1e-6 else nn.Identity
    if cfg.share_quant_resi == 1:
        module = _SharedPhi(make())
        return module, (module.qresi,), (0,) * num_scales
    if cfg.share_quant_resi == 0:
        phis = nn.ModuleList([make() for _ in range(cfg.default_qresi_counts or num_scales)])
        return phis, tuple(phis), phi_index_table(num_scales, len(phis))
    module = _PartiallySharedPhi([make() for _ in range(cfg.share_quant_resi)])
    return module, tuple(module.qresi_ls), phi_index_table(num_scales, cfg.share_quant_resi)


class MultiScaleQuantizer(nn.Module):
    """Residual quantizer over scales (official VectorQuantizer2, inference paths only)."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.patch_nums = tuple(cfg.patch_nums)
        self.Cvae, self.vocab_size = cfg.z_channels, cfg.vocab_size
        self.quant_resi, self._phis, self.phi_table = _build_phis(cfg, len(self.patch_nums))
        # Training statistics only, kept so official files load strictly.
        rows = cfg.num_ema_scales or len(self.patch_nums)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(rows, cfg.vocab_size))
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.z_channels)

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    def phi(self, si: int) -> nn.Module:
        """The φ of scale si (see `phi_index_table`)."""
        return self._phis[self.phi_table[si]]

    def f_to_idx_or_fhat(self, f: torch.Tensor, to_fhat: bool) -> list[torch.Tensor]:
        """Encoder features [B, Cvae, h, w] → per scale idx [B, pn²] (or the cumulative f_hat [B, Cvae, h, w])."""
        B, C, H, W = f.shape
        f_rest = f.detach().clone()
        f_hat = torch.zeros_like(f_rest)
        codebook = self.embedding.weight.data
        out = []
        SN = self.num_scales
        for si, pn in enumerate(self.patch_nums):
            last = si == SN - 1
            z = (f_rest if last else F.interpolate(f_rest, size=(pn, pn), mode="area")).permute(0, 2, 3, 1).reshape(-1, C)
            dist = torch.sum(z.square(), dim=1, keepdim=True) + torch.sum(codebook.square(), dim=1, keepdim=False)
            dist.addmm_(z, codebook.T, alpha=-2, beta=1)  # [B·pn², V] squared L2
            idx = torch.argmin(dist, dim=1)
            h = self.embedding(idx.view(B, pn, pn)).permute(0, 3, 1, 2)
            h = (h if last else F.interpolate(h, size=(H, W), mode="bicubic")).contiguous()
            h = self.phi(si)(h)
            f_hat.add_(h)
            f_rest.sub_(h)
            out.append(f_hat.clone() if to_fhat else idx.reshape(B, pn * pn))
        return out

    def idx_to_var_input(self, idx_per_scale: list[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing input: per-scale idx [B, pn²] → [B, L − pn_0², Cvae] fp32 (the next scales' inputs)."""
        B, C = idx_per_scale[0].shape[0], self.Cvae
        H = W = self.patch_nums[-1]
        f_hat = idx_per_scale[0].new_zeros(B, C, H, W, dtype=torch.float32)
        inputs = []
        for si in range(self.num_scales - 1):
            pn = self.patch_nums[si]
            h = self.embedding(idx_per_scale[si]).transpose_(1, 2).view(B, C, pn, pn)
            f_hat.add_(self.phi(si)(F.interpolate(h, size=(H, W), mode="bicubic")))
            pn_next = self.patch_nums[si + 1]
            inputs.append(F.interpolate(f_hat, size=(pn_next, pn_next), mode="area").view(B, C, -1).transpose(1, 2))
        return torch.cat(inputs, dim=1)

    def next_autoregressive_input(self, si: int, f_hat: torch.Tensor, h_BChw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add scale `si`'s embedded map h [B, Cvae, pn, pn] to f_hat **in place**; return (f_hat, next input).

        The next input is f_hat area-downsampled to pn_{si+1} [B, Cvae, pn', pn'] (f_hat itself at the last scale).
        """
        SN, HW = self.num_scales, self.patch_nums[-1]
        if si != SN - 1:
            f_hat.add_(self.phi(si)(F.interpolate(h_BChw, size=(HW, HW), mode="bicubic")))  # φ after upsampling
            pn = self.patch_nums[si + 1]
            return f_hat, F.interpolate(f_hat, size=(pn, pn), mode="area")
        f_hat.add_(self.phi(si)(h_BChw))
        return f_hat, f_hat

    def embeddings_to_fhat(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Code vectors [B, L, Cvae] (scales concatenated, raster order) → f_hat [B, Cvae, h, w] fp32.

        Walks the scales exactly as the sampler does (and as the official DD release decodes continuous outputs).
        """
        B = embeddings.shape[0]
        HW = self.patch_nums[-1]
        f_hat = embeddings.new_zeros(B, self.Cvae, HW, HW, dtype=torch.float32)
        start = 0
        for si, pn in enumerate(self.patch_nums):
            h = embeddings[:, start : start + pn * pn].float().transpose(1, 2).reshape(B, self.Cvae, pn, pn)
            f_hat, _ = self.next_autoregressive_input(si, f_hat, h)
            start += pn * pn
        return f_hat


class VQVAE(nn.Module):
    """Encoder + multi-scale quantizer + decoder; keys exactly as `vae_ch160v4096z32.pth` (324 at the default config)."""

    def __init__(self, cfg: VQVAEConfig = VQVAEConfig()):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = MultiScaleQuantizer(cfg)
        ks = cfg.quant_conv_ks
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, ks, stride=1, padding=ks // 2)
        self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, ks, stride=1, padding=ks // 2)

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return self.quantize.patch_nums

    @torch.no_grad()
    def img_to_idx(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Images [B, 3, H, W] in [-1, 1] → per-scale token indices [B, pn²] (int64)."""
        return self.quantize.f_to_idx_or_fhat(self.quant_conv(self.encoder(images)), to_fhat=False)

    def idx_to_fhat(self, idx_per_scale: list[torch.Tensor]) -> torch.Tensor:
        """Per-scale indices [B, pn²] → f_hat [B, Cvae, h, w], with the sampler's exact operations."""
        B = idx_per_scale[0].shape[0]
        HW = self.patch_nums[-1]
        f_hat = self.quantize.embedding.weight.new_zeros(B, self.quantize.Cvae, HW, HW)
        for si, (idx, pn) in enumerate(zip(idx_per_scale, self.patch_nums)):
            h = self.quantize.embedding(idx).transpose_(1, 2).reshape(B, self.quantize.Cvae, pn, pn)
            f_hat, _ = self.quantize.next_autoregressive_input(si, f_hat, h)
        return f_hat

    def fhat_to_img(self, f_hat: torch.Tensor) -> torch.Tensor:
        """f_hat [B, Cvae, h, w] → image [B, 3, H, W] fp32 clamped to [-1, 1] (a decoder stored in bf16/fp16 runs
        in that dtype)."""
        x = f_hat.to(self.post_quant_conv.weight.dtype)
        return self.decoder(self.post_quant_conv(x)).float().clamp_(-1, 1)
