"""The LlamaGen class-conditional GPT (FoundationVision/LlamaGen `c2i_*_{256,384}.pt`): a Llama decoder with 2-D RoPE,
RMSNorm, SwiGLU and GQA-capable attention; the class embedding is the first token (row `num_classes` = CFG null class).

Shapes: B batch (2B when both CFG halves run together), T tokens fed, L = grid² image tokens, D width, H heads,
hd head dim, V codebook size. Position 0 holds the class token, image token k sits at position k + 1.

The model only maps inputs to logits. Inference uses a static, pre-allocated KV cache (`setup_caches`, gpt-fast
style): per layer k/v [B_max, H, S, hd] with S = 1 + L rounded up to a multiple of 8; each call writes its
positions and attends over the whole cache with a boolean causal mask, exactly as the official code does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ardistill.models.llamagen.config import GPTConfig


def find_multiple(n: int, k: int) -> int:
    return n if n % k == 0 else n + k - (n % k)


def ffn_hidden_dim(cfg: GPTConfig) -> int:
    """SwiGLU width: int(2·4D/3), times ffn_dim_multiplier, rounded up to a multiple of `multiple_of`."""
    hidden = int(2 * (4 * cfg.dim) / 3)
    if cfg.ffn_dim_multiplier is not None:
        hidden = int(cfg.ffn_dim_multiplier * hidden)
    return find_multiple(hidden, cfg.multiple_of)


def rope_2d_table(grid_size: int, head_dim: int, base: float = 10000.0, cls_token_num: int = 1, device=None) -> torch.Tensor:
    """[cls_token_num + g², hd/2, 2] fp32 (cos, sin). The first hd/4 pairs rotate with the row, the last hd/4 with the
    column of a token; the class rows are ZERO, which zeroes the class token's q and k (as in the official model)."""
    half = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2, device=device)[: half // 2].float() / half))
    t = torch.arange(grid_size, device=device)
    freqs = torch.outer(t, freqs)  # [g, hd/4]
    grid = torch.cat([freqs[:, None, :].expand(-1, grid_size, -1), freqs[None, :, :].expand(grid_size, -1, -1)], dim=-1)
    table = torch.stack([torch.cos(grid), torch.sin(grid)], dim=-1).flatten(0, 1)  # [g², hd/2, 2]
    return torch.cat([torch.zeros(cls_token_num, half, 2, device=device), table])


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, hd], table [T, hd/2, 2] → x rotated in fp32 on interleaved pairs (2m, 2m+1), cast back."""
    xs = x.float().reshape(*x.shape[:-1], -1, 2)
    f = table.view(1, xs.size(1), 1, xs.size(3), 2)
    out = torch.stack([xs[..., 0] * f[..., 0] - xs[..., 1] * f[..., 1], xs[..., 1] * f[..., 0] + xs[..., 0] * f[..., 1]], dim=-1)
    return out.flatten(3).type_as(x)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(torch.mean(xf * xf, dim=-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class FeedForward(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        hidden = ffn_hidden_dim(cfg)
        self.w1 = nn.Linear(cfg.dim, hidden, bias=False)
        self.w3 = nn.Linear(cfg.dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, cfg.dim, bias=False)
        self.ffn_dropout = nn.Dropout(cfg.ffn_dropout_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class KVCache(nn.Module):
    """Pre-allocated keys/values of one layer, [B_max, H, S, hd] each. Non-persistent buffers: never in the state
    dict, and static (fixed-address) tensors for torch.compile / CUDA graphs, which update them in place."""

    def __init__(self, batch: int, length: int, heads: int, head_dim: int, dtype: torch.dtype, device):
        super().__init__()
        self.register_buffer("k", torch.zeros(batch, heads, length, head_dim, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(batch, heads, length, head_dim, dtype=dtype, device=device), persistent=False)

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v [B, H, T, hd] at `input_pos` [T]; return the whole cache."""
        self.k[:, :, input_pos] = k
        self.v[:, :, input_pos] = v
        return self.k, self.v


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.dim, self.n_head, self.n_kv_head, self.head_dim = cfg.dim, cfg.n_head, cfg.kv_heads, cfg.head_dim
        self.wqkv = nn.Linear(cfg.dim, (self.n_head + 2 * self.n_kv_head) * self.head_dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.attn_dropout_p = cfg.attn_dropout_p
        self.resid_dropout = nn.Dropout(cfg.resid_dropout_p)
        self.kv_cache: KVCache | None = None

    def forward(self, x: torch.Tensor, rope: torch.Tensor, input_pos: torch.Tensor | None, mask: torch.Tensor | None,
                attend_len: int | None = None) -> torch.Tensor:
        """x [B, T, D] → [B, T, D]. With mask (cached inference) k/v go to the cache and queries attend over all of
        it through the mask. With attend_len (fast decode, T = 1) k/v go to the cache and the query attends over
        cache positions [0, attend_len) without a mask — the same keys the mask would leave."""
        B, T, _ = x.shape
        kv = self.n_kv_head * self.head_dim
        q, k, v = self.wqkv(x).split([self.dim, kv, kv], dim=-1)
        q = apply_rope(q.view(B, T, self.n_head, self.head_dim), rope)
        k = apply_rope(k.view(B, T, self.n_kv_head, self.head_dim), rope)
        v = v.view(B, T, self.n_kv_head, self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if mask is not None or attend_len is not None:
            if self.kv_cache is None:
                raise RuntimeError("KV cache not set up: call LlamaGenGPT.setup_caches first")
            k, v = self.kv_cache.update(input_pos, k, v)
            if attend_len is not None:
                k, v = k[:, :, :attend_len], v[:, :, :attend_len]
        if self.n_kv_head != self.n_head:
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and attend_len is None,
                                             dropout_p=self.attn_dropout_p if self.training else 0.0)
        return self.resid_dropout(self.wo(out.transpose(1, 2).contiguous().view(B, T, self.dim)))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)

    def forward(self, x, rope, input_pos, mask, attend_len=None):
        h = x + self.attention(self.attention_norm(x), rope, input_pos, mask, attend_len)
        return h + self.feed_forward(self.ffn_norm(h))


class LabelEmbedder(nn.Module):
    """Class table [num_classes + 1, D] when class dropout is on (the official files always have the null row)."""

    def __init__(self, num_classes: int, dim: int, dropout_prob: float):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), dim)
        self.num_classes, self.dropout_prob = num_classes, dropout_prob

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """labels [B] → [B, 1, D]; in training, labels become the null class with probability `dropout_prob`."""
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
            labels = torch.where(drop, self.num_classes, labels)
        return self.embedding_table(labels).unsqueeze(1)


class LlamaGenGPT(nn.Module):
    """Class-conditional next-token predictor; state dict keys exactly as the official `Transformer` (c2i)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = cfg = config
        self.num_classes, self.vocab_size, self.cls_token_num = cfg.num_classes, cfg.vocab_size, cfg.cls_token_num
        self.cls_embedding = LabelEmbedder(cfg.num_classes, cfg.dim, cfg.class_dropout_prob)
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.tok_dropout = nn.Dropout(cfg.token_dropout_p)
        self.layers = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layer)])
        self.norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        # Plain attributes (not buffers): never saved, never cast to a low-precision dtype.
        self.rope = rope_2d_table(cfg.grid_size, cfg.head_dim, cfg.rope_base, cfg.cls_token_num)
        self.cache_rope: torch.Tensor | None = None
        self.causal_mask: torch.Tensor | None = None

    @property
    def max_positions(self) -> int:
        return self.cls_token_num + self.config.block_size

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """The official initialisation: N(0, initializer_range) for every Linear and Embedding weight (module order),
        RMSNorm weights one, the output head zero."""
        std = self.config.initializer_range
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.normal_(0.0, std, generator=generator)
            elif isinstance(m, RMSNorm):
                m.weight.fill_(1.0)
        self.output.weight.zero_()

    # ------------------------------------------------------------------------------------------------ caches
    def setup_caches(self, max_batch_size: int, max_seq_length: int, dtype: torch.dtype | None = None) -> None:
        """Fresh zero caches of length find_multiple(max_seq_length, 8), the boolean causal mask and the RoPE table
        built on the cache device (as the official `setup_caches` under `torch.device`)."""
        device = self.tok_embeddings.weight.device
        dtype = dtype or self.tok_embeddings.weight.dtype
        length = find_multiple(max_seq_length, 8)
        for layer in self.layers:
            layer.attention.kv_cache = KVCache(max_batch_size, length, self.config.kv_heads, self.config.head_dim, dtype, device)
        self.causal_mask = torch.tril(torch.ones(length, length, dtype=torch.bool, device=device)).unsqueeze(0).repeat(max_batch_size, 1, 1)
        cfg = self.config
        self.cache_rope = rope_2d_table(cfg.grid_size, cfg.head_dim, cfg.rope_base, cfg.cls_token_num, device=device)

    def clear_caches(self) -> None:
        for layer in self.layers:
            layer.attention.kv_cache = None
        self.causal_mask = self.cache_rope = None

    # ----------------------------------------------------------------------------------------------- forward
    def _blocks(self, h: torch.Tensor, rope: torch.Tensor, input_pos: torch.Tensor | None, mask: torch.Tensor | None,
                attend_len: int | None = None) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h, rope, input_pos, mask, attend_len)
        return self.output(self.norm(h)).float()

    def forward(self, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing, no cache: labels [B], tokens [B, T] (T < L) → logits [B, 1 + T, V] fp32; output p
        predicts image token p (the class token's output predicts token 0)."""
        h = torch.cat((self.cls_embedding(labels)[:, : self.cls_token_num], self.tok_embeddings(tokens)), dim=1)
        h = self.tok_dropout(h)
        self.rope = self.rope.to(h.device)
        rope = self.rope[: h.shape[1]]
        return self._blocks(h, rope, torch.arange(h.shape[1], device=h.device), None)

    def forward_cached(self, input_pos: torch.Tensor, *, labels: torch.Tensor | None = None, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """One cached call. Prefill: `labels` [B] (class token at position 0), optionally followed by known image
        tokens [B, T] (input_pos = arange(1 + T)); decode: `tokens` [B, T] at `input_pos` [T].
        Returns logits [B, len(input_pos), V] fp32."""
        if self.causal_mask is None:
            raise RuntimeError("KV cache not set up: call setup_caches first")
        if labels is None:
            h = self.tok_embeddings(tokens)
        else:
            h = self.cls_embedding(labels)[:, : self.cls_token_num]
            if tokens is not None and tokens.shape[1] > 0:
                h = torch.cat((h, self.tok_embeddings(tokens)), dim=1)
        mask = self.causal_mask[: h.shape[0], None, input_pos]
        return self._blocks(self.tok_dropout(h), self.cache_rope[input_pos], input_pos, mask)

    def decode_step_fast(self, input_pos: torch.Tensor, tokens: torch.Tensor, attend_len: int) -> torch.Tensor:
        """Fast decode of one token per row: tokens [B, 1] at input_pos [1] attend over the cache prefix
        [0, attend_len = input_pos + 1) without a mask. Logits [B, 1, V] fp32 (equal to `forward_cached` up to the
        summation order of the attention kernel)."""
        if self.causal_mask is None:
            raise RuntimeError("KV cache not set up: call setup_caches first")
        h = self.tok_dropout(self.tok_embeddings(tokens))
        return self._blocks(h, self.cache_rope[input_pos], input_pos, None, attend_len)


__all__ = ["LlamaGenGPT", "rope_2d_table", "apply_rope", "find_multiple", "ffn_hidden_dim", "KVCache"]
