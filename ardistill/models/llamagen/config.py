"""Configs of the LlamaGen family: the VQ-16 tokenizer and the class-conditional GPT (FoundationVision/LlamaGen)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class VQConfig:
    """VQ tokenizer. Defaults are the official `vq_ds16_c2i.pt` (VQ-16)."""

    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    codebook_l2_norm: bool = True
    codebook_show_usage: bool = True
    commit_loss_beta: float = 0.25
    entropy_loss_ratio: float = 0.0
    encoder_ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    decoder_ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    z_channels: int = 256
    ch: int = 128
    num_res_blocks: int = 2
    dropout_p: float = 0.0

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.encoder_ch_mult) - 1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GPTConfig:
    """Class-conditional LlamaGen GPT (`c2i`)."""

    dim: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int | None = None
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    initializer_range: float = 0.02
    token_dropout_p: float = 0.1
    attn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.1
    ffn_dropout_p: float = 0.1
    num_classes: int = 1000
    class_dropout_prob: float = 0.1
    vocab_size: int = 16384
    cls_token_num: int = 1
    block_size: int = 256  # image tokens: (image_size // 16) ** 2
    vq: VQConfig = field(default_factory=VQConfig)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head if self.n_kv_head is not None else self.n_head

    @property
    def grid_size(self) -> int:
        g = int(round(self.block_size ** 0.5))
        assert g * g == self.block_size, "block_size must be a square"
        return g

    @property
    def image_size(self) -> int:
        return self.grid_size * self.vq.downsample

    def to_dict(self) -> dict:
        return asdict(self)


# name → (n_layer, n_head, dim) of the official size presets (autoregressive/models/gpt.py).
GPT_PRESETS: dict[str, tuple[int, int, int]] = {
    "B": (12, 12, 768),
    "L": (24, 16, 1024),
    "XL": (36, 20, 1280),
    "XXL": (48, 24, 1536),
    "XXXL": (48, 40, 2560),
    "1B": (22, 32, 2048),
    "3B": (24, 32, 3200),
    "7B": (32, 32, 4096),
}


def gpt_config(size: str, image_size: int = 256) -> GPTConfig:
    n_layer, n_head, dim = GPT_PRESETS[size]
    return GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, block_size=(image_size // 16) ** 2)
