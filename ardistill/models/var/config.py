"""Configs of the VAR family: the multi-scale VQVAE and the VAR transformer (FoundationVision/VAR)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PATCH_NUMS_256 = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
PATCH_NUMS_512 = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)


@dataclass(frozen=True)
class VQVAEConfig:
    """Multi-scale residual VQ tokenizer. Defaults are the official `vae_ch160v4096z32.pth`."""

    vocab_size: int = 4096
    z_channels: int = 32  # Cvae, the code dimension
    ch: int = 160
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    in_channels: int = 3
    using_sa: bool = True
    using_mid_sa: bool = True
    beta: float = 0.25
    quant_conv_ks: int = 3
    quant_resi: float = 0.5
    share_quant_resi: int = 4  # 4: four φ's shared by position; 1: one φ; 0: one φ per scale
    default_qresi_counts: int = 0  # share_quant_resi=0 only: number of φ's (0 → one per scale)
    patch_nums: tuple[int, ...] = PATCH_NUMS_256
    # Number of rows of the `quantize.ema_vocab_hit_SV` buffer; the official file has 10 whatever the patch_nums.
    num_ema_scales: int | None = None

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def image_size(self) -> int:
        return self.patch_nums[-1] * self.downsample

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VARConfig:
    """VAR transformer. Width = 64·depth and heads = depth for every official model."""

    depth: int = 16
    embed_dim: int | None = None  # None → 64·depth
    num_heads: int | None = None  # None → depth
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    patch_nums: tuple[int, ...] = PATCH_NUMS_256
    vocab_size: int = 4096
    z_channels: int = 32
    norm_eps: float = 1e-6
    shared_aln: bool = False
    attn_l2_norm: bool = True
    cond_drop_rate: float = 0.1
    drop_path_rate: float | None = None  # None → 0.1·depth/24
    # init scheme (only used for random_init / training from scratch)
    init_adaln: float = 0.5
    init_adaln_gamma: float = 1e-5
    init_head: float = 0.02
    init_std: float = -1.0
    vae: VQVAEConfig = field(default_factory=VQVAEConfig)

    @property
    def width(self) -> int:
        return self.embed_dim if self.embed_dim is not None else 64 * self.depth

    @property
    def heads(self) -> int:
        return self.num_heads if self.num_heads is not None else self.depth

    @property
    def dpr(self) -> float:
        return self.drop_path_rate if self.drop_path_rate is not None else 0.1 * self.depth / 24

    @property
    def seq_len(self) -> int:
        return sum(p * p for p in self.patch_nums)

    def to_dict(self) -> dict:
        return asdict(self)


def var_config(depth: int) -> VARConfig:
    """Official VAR configs: d16/d20/d24/d30 at 256 px; d36 is 512 px with shared AdaLN."""
    if depth == 36:
        return VARConfig(depth=36, shared_aln=True, patch_nums=PATCH_NUMS_512, vae=VQVAEConfig(patch_nums=PATCH_NUMS_512, num_ema_scales=10))
    return VARConfig(depth=depth)
