"""The VAR transformer (FoundationVision/VAR `var_d{16,20,24,30,36}.pth`): AdaLN blocks with l2-normalised attention.

Shapes: B batch (2B when both CFG halves run together), L tokens of all scales (680 at 256 px), l tokens of one
scale (pn²), C width (64·depth), H heads (depth), V codebook size (4096), Cvae code dimension (32).

The model only maps inputs to logits. The VQVAE is not a submodule (no tokenizer keys in this state dict); the
sampler composes both. Inference uses a static KV cache (`setup_kv_cache`): per block, k/v tensors of shape
[2B, H, L, 64] that each scale writes at its offset, so a scale attends to every earlier scale and to itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ardistill.models.var.config import VARConfig

# exp(scale_mul) is clamped at 100; the official code takes this bound from a float32 log.
MAX_SCALE_MUL = torch.log(torch.tensor(100.0)).item()


class DropPath(nn.Module):
    """Stochastic depth (per sample), active in training only."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


class KVCache(nn.Module):
    """Pre-allocated keys and values of one attention layer: [2B, H, L_total, head_dim] each. Non-persistent
    buffers: never saved, and static tensors for torch.compile / CUDA graphs, which write them in place."""

    def __init__(self, batch: int, heads: int, length: int, head_dim: int, dtype: torch.dtype, device: torch.device):
        super().__init__()
        self.register_buffer("k", torch.zeros(batch, heads, length, head_dim, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(batch, heads, length, head_dim, dtype=dtype, device=device), persistent=False)

    def write(self, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v [2B, H, l, hd] at positions [start, start + l); return all keys/values up to there."""
        end = start + k.shape[2]
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, l2_norm: bool, attn_drop: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.l2_norm = l2_norm
        if l2_norm:
            self.scale = 1.0
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), 4.0).log())
        else:
            self.scale = 0.25 / math.sqrt(self.head_dim)
        self.mat_qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("zero_k_bias", torch.zeros(width))
        self.proj = nn.Linear(width, width)
        self.attn_drop = attn_drop
        self.kv_cache: KVCache | None = None

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None, cache_pos: int | None = None) -> torch.Tensor:
        """x [B, l, C] → [B, l, C]. With `cache_pos`, k/v are written to the KV cache at that offset and the
        queries attend to every cached position before it (attn_bias then applies to [l, cache_pos + l])."""
        B, L, C = x.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x, self.mat_qkv.weight, bias).view(B, L, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(dim=0)  # each [B, H, l, hd]
        if self.l2_norm:
            scale_mul = self.scale_mul_1H11.clamp_max(MAX_SCALE_MUL).exp()
            q = F.normalize(q, dim=-1).mul(scale_mul)
            k = F.normalize(k, dim=-1)
        if cache_pos is not None:
            if self.kv_cache is None:
                raise RuntimeError("KV cache not set up: call VARTransformer.setup_kv_cache first")
            k, v = self.kv_cache.write(cache_pos, k, v)
        dropout_p = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=dropout_p, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class FFN(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AdaLNSelfAttn(nn.Module):
    """Block: x += γ1·attn(LN(x)(1+s1)+b1); x += γ2·ffn(LN(x)(1+s2)+b2), modulation from the class embedding."""

    def __init__(self, cfg: VARConfig, drop_path: float):
        super().__init__()
        C = cfg.width
        self.width = C
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.attn = SelfAttention(C, cfg.heads, cfg.attn_l2_norm)
        self.ffn = FFN(C, round(C * cfg.mlp_ratio))
        self.ln_wo_grad = nn.LayerNorm(C, eps=cfg.norm_eps, elementwise_affine=False)
        self.shared_aln = cfg.shared_aln
        if cfg.shared_aln:
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, C) / C ** 0.5)
        else:
            self.ada_lin = nn.Sequential(nn.SiLU(inplace=False), nn.Linear(C, 6 * C))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, attn_bias: torch.Tensor | None, cache_pos: int | None = None) -> torch.Tensor:
        """x [B, l, C]; cond [B, C] (or the shared-AdaLN output [B, 1, 6, C])."""
        if self.shared_aln:
            mods = (self.ada_gss + cond).unbind(2)
        else:
            mods = self.ada_lin(cond).view(-1, 1, 6, self.width).unbind(2)
        gamma1, gamma2, scale1, scale2, shift1, shift2 = mods  # official chunk order
        h = self.attn(self.ln_wo_grad(x).mul(scale1.add(1)).add_(shift1), attn_bias, cache_pos)
        x = x + self.drop_path(h.mul_(gamma1))
        x = x + self.drop_path(self.ffn(self.ln_wo_grad(x).mul(scale2.add(1)).add_(shift2)).mul(gamma2))
        return x


class AdaLNBeforeHead(nn.Module):
    def __init__(self, width: int, eps: float):
        super().__init__()
        self.width = width
        self.ln_wo_grad = nn.LayerNorm(width, eps=eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(inplace=False), nn.Linear(width, 2 * width))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, self.width).unbind(2)
        return self.ln_wo_grad(x).mul(scale.add(1)).add_(shift)


class SharedAdaLin(nn.Linear):
    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return super().forward(cond).view(-1, 1, 6, self.weight.shape[0] // 6)  # [B, 1, 6, C]


def scale_index_per_position(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """[L] int64: the scale of every position (0, 1×4, 2×9, …)."""
    return torch.cat([torch.full((pn * pn,), si, dtype=torch.long) for si, pn in enumerate(patch_nums)])


class VARTransformer(nn.Module):
    """Class-conditional next-scale predictor; keys exactly as the official VAR state dict (8 + 13·depth + 4)."""

    def __init__(self, config: VARConfig):
        super().__init__()
        self.config = cfg = config
        C, L = cfg.width, cfg.seq_len
        self.width, self.num_classes, self.vocab_size = C, cfg.num_classes, cfg.vocab_size
        self.patch_nums = tuple(cfg.patch_nums)
        self.first_l = self.patch_nums[0] ** 2
        self.scale_slices: list[tuple[int, int]] = []  # [begin, end) of every scale
        for pn in self.patch_nums:
            begin = self.scale_slices[-1][1] if self.scale_slices else 0
            self.scale_slices.append((begin, begin + pn * pn))

        init_std = math.sqrt(1 / C / 3)
        self.word_embed = nn.Linear(cfg.z_channels, C)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, C)  # row num_classes = the null class of CFG
        self.pos_start = nn.Parameter(torch.empty(1, self.first_l, C))
        self.pos_1LC = nn.Parameter(torch.empty(1, L, C))
        self.lvl_embed = nn.Embedding(len(self.patch_nums), C)
        for t in (self.class_emb.weight, self.pos_start, self.pos_1LC, self.lvl_embed.weight):
            nn.init.trunc_normal_(t.data, mean=0, std=init_std)
        self.shared_ada_lin = nn.Sequential(nn.SiLU(inplace=False), SharedAdaLin(C, 6 * C)) if cfg.shared_aln else nn.Identity()

        dpr = [x.item() for x in torch.linspace(0, cfg.dpr, cfg.depth, device="cpu")]
        self.blocks = nn.ModuleList([AdaLNSelfAttn(cfg, dpr[i]) for i in range(cfg.depth)])

        self.register_buffer("lvl_1L", torch.empty(1, L, dtype=torch.long))
        self.register_buffer("attn_bias_for_masking", torch.empty(1, 1, L, L))
        self.reset_buffers()
        self.head_nm = AdaLNBeforeHead(C, cfg.norm_eps)
        self.head = nn.Linear(C, cfg.vocab_size)

    # --------------------------------------------------------------------------------------------- buffers, init
    @torch.no_grad()
    def reset_buffers(self) -> None:
        """(Re)compute the persistent buffers: scale index per position and the block-causal mask."""
        lvl = scale_index_per_position(self.patch_nums).to(self.lvl_1L.device)
        self.lvl_1L.copy_(lvl.view(1, -1))
        mask = torch.where(lvl.view(-1, 1) >= lvl.view(1, -1), 0.0, -torch.inf)  # query scale ≥ key scale
        self.attn_bias_for_masking.copy_(mask.view(self.attn_bias_for_masking.shape))
        for b in self.blocks:
            b.attn.zero_k_bias.zero_()

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """The official initialisation (constructor + `VAR.init_weights`), drawing from `generator`. Fills every
        parameter and buffer, so it also works on a module created with `to_empty`."""
        cfg, C = self.config, self.width
        std = cfg.init_std if cfg.init_std >= 0 else math.sqrt(1 / C / 3)

        def tn(t: torch.Tensor) -> None:
            nn.init.trunc_normal_(t, mean=0.0, std=std, generator=generator)

        self.reset_buffers()
        tn(self.pos_start)
        tn(self.pos_1LC)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                tn(m.weight)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                tn(m.weight)
        if cfg.init_head >= 0:
            self.head.weight.mul_(cfg.init_head)
            self.head.bias.zero_()
        self.head_nm.ada_lin[-1].weight.mul_(cfg.init_adaln)
        self.head_nm.ada_lin[-1].bias.zero_()
        for b in self.blocks:
            b.attn.proj.weight.div_(math.sqrt(2 * cfg.depth))
            b.ffn.fc2.weight.div_(math.sqrt(2 * cfg.depth))
            b.attn.q_bias.zero_()
            b.attn.v_bias.zero_()
            if b.attn.l2_norm:
                b.attn.scale_mul_1H11.fill_(math.log(4.0))
            if cfg.shared_aln:
                b.ada_gss.copy_(torch.randn(b.ada_gss.shape, generator=generator, device=b.ada_gss.device) / C ** 0.5)
                b.ada_gss[:, :, 2:].mul_(cfg.init_adaln)
                b.ada_gss[:, :, :2].mul_(cfg.init_adaln_gamma)
            else:
                w = b.ada_lin[-1].weight
                w[2 * C :].mul_(cfg.init_adaln)
                w[: 2 * C].mul_(cfg.init_adaln_gamma)  # gamma1, gamma2 rows

    # ---------------------------------------------------------------------------------------------- embeddings
    def level_position_embedding(self) -> torch.Tensor:
        """lvl_embed(scale of each position) + pos_1LC: [1, L, C]."""
        return self.lvl_embed(self.lvl_1L) + self.pos_1LC

    def start_input(self, cond: torch.Tensor, lvl_pos: torch.Tensor) -> torch.Tensor:
        """Class embeddings cond [B, C] → the first scale's input [B, first_l, C]."""
        B = cond.shape[0]
        return cond.unsqueeze(1).expand(B, self.first_l, -1) + self.pos_start.expand(B, self.first_l, -1) + lvl_pos[:, : self.first_l]

    def scale_input(self, feats: torch.Tensor, si: int, lvl_pos: torch.Tensor) -> torch.Tensor:
        """VQ features of scale si [B, pn², Cvae] (area-downsampled f_hat) → its input [B, pn², C]."""
        begin, end = self.scale_slices[si]
        return self.word_embed(feats) + lvl_pos[:, begin:end]

    def get_logits(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, l, C] → logits [B, l, V] fp32."""
        return self.head(self.head_nm(h.float(), cond).float()).float()

    # ------------------------------------------------------------------------------------------------- forward
    def forward(self, labels: torch.Tensor, x_BLCv_wo_first_l: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, L, V] fp32 from labels [B] and the next-scale VQ features [B, L − first_l, Cvae].

        In training mode labels are replaced by the null class with probability `cond_drop_rate` (global RNG);
        in eval mode never (the official forward drops them in both modes).
        """
        B = x_BLCv_wo_first_l.shape[0]
        with torch.autocast(device_type=x_BLCv_wo_first_l.device.type, enabled=False):
            if self.training and self.config.cond_drop_rate > 0:
                drop = torch.rand(B, device=labels.device) < self.config.cond_drop_rate
                labels = torch.where(drop, self.num_classes, labels)
            cond = self.class_emb(labels)
            sos = cond.unsqueeze(1).expand(B, self.first_l, -1) + self.pos_start.expand(B, self.first_l, -1)
            x = torch.cat((sos, self.word_embed(x_BLCv_wo_first_l.float())), dim=1)
            x += self.lvl_embed(self.lvl_1L.expand(B, -1)) + self.pos_1LC
        main_dtype = torch.matmul(x.new_ones(8, 8), x.new_ones(8, 8)).dtype  # the autocast dtype, if any
        x = x.to(main_dtype)
        attn_bias = self.attn_bias_for_masking.to(main_dtype)
        cond_gss = self.shared_ada_lin(cond).to(main_dtype)
        for block in self.blocks:
            x = block(x, cond_gss, attn_bias)
        return self.get_logits(x.float(), cond)

    # -------------------------------------------------------------------------------------- cached inference
    def setup_kv_cache(self, batch: int, dtype: torch.dtype | None = None, device: torch.device | None = None,
                       length: int | None = None) -> None:
        """Allocate per-block k/v caches [batch, H, length, 64] (default length: all L positions; a run that stops
        early asks for fewer), reused when the shape, dtype and device already match."""
        p = self.head.weight
        dtype, device = dtype or p.dtype, device or p.device
        length = self.config.seq_len if length is None else int(length)
        for b in self.blocks:
            a = b.attn
            c = a.kv_cache
            if c is None or tuple(c.k.shape[:3:2]) != (batch, length) or c.k.dtype != dtype or c.k.device != device:
                a.kv_cache = KVCache(batch, a.heads, length, a.head_dim, dtype, device)

    def clear_kv_cache(self) -> None:
        for b in self.blocks:
            b.attn.kv_cache = None

    def forward_step(self, x: torch.Tensor, cond: torch.Tensor, cache_pos: int, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Inputs x [2B, l, C] at positions [cache_pos, cache_pos + l) → logits [2B, l, V] fp32, filling the KV cache.

        Without attn_bias the l tokens attend to all cached positions and to each other (one whole scale, the
        official inference step); a multi-scale prefill passes the block-causal slice
        `attn_bias_for_masking[..., cache_pos:cache_pos + l, :cache_pos + l]`.
        """
        cond_gss = self.shared_ada_lin(cond)
        for block in self.blocks:
            x = block(x, cond_gss, attn_bias, cache_pos)
        return self.get_logits(x, cond)
