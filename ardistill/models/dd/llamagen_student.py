"""The LlamaGen Distilled Decoding student (microsoft/distilled_decoding:LlamaGen/autoregressive/models/dd.py
`DDTransformer`), official key layout.

Shapes: B batch, L image tokens (256), D width, C code dimension (8), V codebook size (16384).
Sequence = [class token] + L slots; slot k + 1 holds token k's code vector (data) or its noise, fed through a Linear
(`tok_embeddings`, C → D). One causal pass; slot k + 1's output predicts token k itself (no next-token shift).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ardistill.models.dd.final_layer import FinalLayer
from ardistill.models.llamagen.config import GPTConfig
from ardistill.models.llamagen.gpt import LabelEmbedder, LlamaGenGPT, RMSNorm, TransformerBlock, rope_2d_table


def student_gpt_config(teacher: GPTConfig) -> GPTConfig:
    """The teacher's config with every dropout off (the release's DD model defaults)."""
    return dataclasses.replace(teacher, token_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0,
                               ffn_dropout_p=0.0, class_dropout_prob=0.0)


class LlamaGenStudent(nn.Module):
    """DD student for a LlamaGen teacher; `forward` returns (cont [B, L, C], logits [B, L, V])."""

    def __init__(self, teacher_config: GPTConfig):
        super().__init__()
        self.teacher_config = teacher_config
        self.config = cfg = student_gpt_config(teacher_config)
        self.cls_token_num = cfg.cls_token_num
        self.tokens_per_image = cfg.block_size
        # data_tokens[t]: tokens given as data at split point t (t AR steps = t tokens), as VARStudent.data_tokens.
        self.data_tokens = list(range(self.tokens_per_image + 1))
        self.code_dim = cfg.vq.codebook_embed_dim
        self.cls_embedding = LabelEmbedder(cfg.num_classes, cfg.dim, 0.0)
        self.cls_embedding.embedding_table = nn.Embedding(cfg.num_classes + 1, cfg.dim)  # always 1001 rows in dd.py
        self.tok_embeddings = nn.Linear(self.code_dim, cfg.dim)
        self.layers = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layer)])
        self.norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.final_layer_conti = FinalLayer(cfg.dim, self.code_dim)
        self.n_d_embed = nn.Embedding(2, cfg.dim)
        self.rope = rope_2d_table(cfg.grid_size, cfg.head_dim, cfg.rope_base, cfg.cls_token_num)  # not a buffer

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """N(0, 0.02) for every Linear/Embedding weight, zero biases, RMSNorm weights one (the release's scheme)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.normal_(0.0, self.config.initializer_range, generator=generator)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()
            elif isinstance(m, RMSNorm):
                m.weight.fill_(1.0)

    def data_mask(self, t: torch.Tensor) -> torch.Tensor:
        """t [B] (tokens given as data) → [B, 1 + L] bool: slot p is data iff p ≤ t (class slot always)."""
        return torch.arange(self.cls_token_num + self.tokens_per_image, device=t.device)[None] <= t.long()[:, None]

    def forward(self, labels: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """labels [B], x [B, L, C] (data codes then noise), t [B] int → (cont [B, L, C] fp32, logits [B, L, V] fp32)."""
        cond = self.cls_embedding(labels)[:, : self.cls_token_num]  # [B, 1, D]
        h = torch.cat((cond, self.tok_embeddings(x.to(self.tok_embeddings.weight.dtype))), dim=1)
        h = h + self.n_d_embed(self.data_mask(t).long())
        self.rope = self.rope.to(h.device)
        for layer in self.layers:
            h = layer(h, self.rope, None, None)
        logits = self.output(self.norm(h)).float()[:, self.cls_token_num:]
        cont = self.final_layer_conti(h, cond[:, 0]).float()[:, self.cls_token_num:]
        return cont, logits

    @torch.no_grad()
    def initialise_from_teacher(self, teacher: LlamaGenGPT, generator: torch.Generator | None = None) -> "LlamaGenStudent":
        """A new student's full initialisation: fresh weights from `generator`, then the teacher's copied in."""
        self.init_weights(generator)
        return self.init_from_teacher(teacher, generator)

    @torch.no_grad()
    def init_from_teacher(self, teacher: LlamaGenGPT, generator: torch.Generator | None = None) -> "LlamaGenStudent":
        """Copy the class table, all layers, the final norm and the output head; the rest keeps its fresh init. A
        teacher trained without class dropout has no null row: row `num_classes` then keeps its fresh init."""
        if teacher.config.dim != self.config.dim or teacher.config.n_layer != self.config.n_layer:
            raise ValueError("teacher architecture differs from the one this student was built for")
        src = teacher.cls_embedding.embedding_table.weight
        self.cls_embedding.embedding_table.weight[: src.shape[0]] = src
        for dst, s in zip(self.layers, teacher.layers):
            dst.load_state_dict(s.state_dict())
        self.norm.load_state_dict(teacher.norm.state_dict())
        self.output.load_state_dict(teacher.output.state_dict())
        return self


__all__ = ["LlamaGenStudent", "student_gpt_config"]
