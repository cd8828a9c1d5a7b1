"""The LlamaGen backbone of Distilled Decoding 2's networks (DD2 spec §2; the networks: `ardistill.models.dd2.net`).

LlamaGen's GPT reads token *ids* (`nn.Embedding`); DD2's networks read continuous vectors. The spec's continuous
adaptation replaces the embedding by an MLP on the code vector (`ContinuousEmbedding`), fitted to the old embedding
rows and then fine-tuned with the AR loss (`ardistill.methods.dd2.llamagen`). The module accepts both: integer ids
`[B, T]` are looked up in its (frozen) codebook first, so a GPT carrying it still samples with the teacher's own
sampler (KV cache and all) — the "adapted teacher" — and reads continuous tokens `[B, T, C]` as they are.

`LlamaGenBackbone` is a copy of the (adapted) GPT without its output head and without dropout: (labels `[B]`, tokens
`[B, L, C]`) → features `[B, L, D]`; position i reads the class token and tokens < i (the GPT's output at sequence
position i predicts image token i), so one AR step = one token. The generator reads its noise sequence through the
same path (ε shifted by one position).

Shapes: B batch, L image tokens, C code dimension (8 for VQ-16), D GPT width. Code vectors in the teacher's own space
(l2-normalised rows); `DD2Net` divides network-space inputs by its `code_scale` before the backbone.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ardistill.models.dd2.net import DD2Net
from ardistill.models.llamagen.gpt import LlamaGenGPT


class ContinuousEmbedding(nn.Module):
    """MLP(code vector) → token embedding `[..., D]`: Linear(C, hidden) → SiLU → Linear(hidden, D). Integer inputs
    `[B, T]` are token ids, looked up in `codebook` `[V, C]` (a buffer, saved with the weights) first; floating inputs
    `[B, T, C]` are code vectors."""

    def __init__(self, codebook: torch.Tensor, dim: int, hidden: int):
        super().__init__()
        self.register_buffer("codebook", codebook.detach().float().clone())
        self.mlp = nn.Sequential(nn.Linear(codebook.shape[1], hidden), nn.SiLU(), nn.Linear(hidden, dim))

    @property
    def weight(self) -> torch.Tensor:
        """The first layer's weight: the device / dtype that code written for `nn.Embedding` reads (cache set-up)."""
        return self.mlp[0].weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.codebook[tokens] if not tokens.is_floating_point() else tokens
        return self.mlp(x.to(self.mlp[0].weight.dtype))


def with_continuous_embedding(gpt: LlamaGenGPT, embedding: ContinuousEmbedding) -> LlamaGenGPT:
    """A float32, dropout-free copy of `gpt` (or of an adapted GPT) whose token embedding is a copy of `embedding`:
    the adapted GPT. Same state-dict keys as the GPT except `tok_embeddings.weight` → `tok_embeddings.{codebook,
    mlp.*}`; class dropout off (the null row kept: CFG still works)."""
    cfg = dataclasses.replace(gpt.config, token_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, ffn_dropout_p=0.0)
    out = LlamaGenGPT(cfg)
    out.tok_embeddings = ContinuousEmbedding(embedding.codebook, cfg.dim, embedding.mlp[0].out_features)
    state = {k: v.float() for k, v in gpt.state_dict().items() if not k.startswith("tok_embeddings.")}
    state.update({f"tok_embeddings.{k}": v.float() for k, v in embedding.state_dict().items()})
    out.load_state_dict(state)
    out.cls_embedding.dropout_prob = 0.0
    return out.to(embedding.codebook.device)


class LlamaGenBackbone(nn.Module):
    """An adapted LlamaGen GPT (its embedding a `ContinuousEmbedding`) without output head, dropout or class dropout:
    (labels `[B]`, tokens `[B, L, C]`) → features `[B, L, D]` fp32 (the final RMSNorm's output), row i seeing the class
    and tokens < i. A copy: training it never touches the GPT it came from."""

    def __init__(self, adapted_gpt: LlamaGenGPT):
        super().__init__()
        if not isinstance(adapted_gpt.tok_embeddings, ContinuousEmbedding):
            raise TypeError("LlamaGenBackbone needs a GPT with a ContinuousEmbedding (with_continuous_embedding)")
        emb = adapted_gpt.tok_embeddings
        self.net = with_continuous_embedding(adapted_gpt, emb)
        cfg = self.net.config
        self.net.output = nn.Identity()  # the GPT's forward now returns norm(h): the features
        L = cfg.block_size
        self.step_slices = [(i, i + 1) for i in range(L)]  # one AR step = one token
        self.width = cfg.dim
        self.code_dim = emb.codebook.shape[1]

    def forward(self, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(labels, tokens[:, :-1])


def llamagen_dd2_net(adapted_gpt: LlamaGenGPT, *, code_scale: float = 1.0, head_width: int = 256,
                     head_depth: int = 3) -> DD2Net:
    """A DD2 network for a LlamaGen teacher: a copy of its adapted GPT (`LlamaGenBackbone`) + a fresh head."""
    return DD2Net.with_head(LlamaGenBackbone(adapted_gpt), code_scale=code_scale, head_width=head_width,
                            head_depth=head_depth)


__all__ = ["ContinuousEmbedding", "with_continuous_embedding", "LlamaGenBackbone", "llamagen_dd2_net"]
