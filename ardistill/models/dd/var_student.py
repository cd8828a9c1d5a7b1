"""The VAR Distilled Decoding student (microsoft/distilled_decoding:VAR/models/dd.py `DD_Model`), official key layout.

Shapes: B batch, L teacher tokens (680 at 256 px), L + 1 student positions (the class slot, then every token in the
teacher's scale order), C width, Cvae code dimension (32), V codebook size.

The student is a VAR transformer over the teacher's patch list prefixed with an extra 1 (so the class slot is a scale
of its own); every position receives its own code vector or noise vector through `word_embed` (no f_hat inputs).
Additive embeddings: level + position + noise/data indicator (`n_d_embed`), and a Linear of the indicator is added
inside every block after the attention residual (`layerwise_n_d_embed`, depth + 1 of them; the last one before the
heads). Queries see every earlier scale and themselves, never other positions of their own scale.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from ardistill.models.dd.final_layer import FinalLayer
from ardistill.models.var.config import VARConfig
from ardistill.models.var.transformer import AdaLNSelfAttn, VARTransformer, scale_index_per_position


DERIVED_BUFFERS = ("lvl_1L", "attn_bias_for_masking")  # recomputed from the config, never read from a file


def student_var_config(teacher: VARConfig) -> VARConfig:
    """The student's VARConfig: the teacher's with the extra 1×1 scale in front and no label dropout."""
    return dataclasses.replace(teacher, patch_nums=(1,) + tuple(teacher.patch_nums), cond_drop_rate=0.0)


def student_attention_bias(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """[L, L] additive mask: 0 where level(q) > level(k) or q == k, −inf elsewhere (scale-diagonal block-causal)."""
    lvl = scale_index_per_position(patch_nums)
    bias = torch.where(lvl.view(-1, 1) >= lvl.view(1, -1) + 1, 0.0, -torch.inf)
    bias.fill_diagonal_(0.0)
    return bias


class StudentBlock(AdaLNSelfAttn):
    """AdaLN block with the indicator embedding added after the attention residual (official basic_var.py)."""

    def forward(self, x, cond, attn_bias, n_d_emb: torch.Tensor | None = None):  # type: ignore[override]
        gamma1, gamma2, scale1, scale2, shift1, shift2 = self.ada_lin(cond).view(-1, 1, 6, self.width).unbind(2) \
            if not self.shared_aln else (self.ada_gss + cond).unbind(2)
        x = x + self.drop_path(self.attn(self.ln_wo_grad(x).mul(scale1.add(1)).add_(shift1), attn_bias).mul_(gamma1))
        if n_d_emb is not None:
            x = x + n_d_emb
        return x + self.drop_path(self.ffn(self.ln_wo_grad(x).mul(scale2.add(1)).add_(shift2)).mul(gamma2))


class VARStudent(VARTransformer):
    """DD student for a VAR teacher with config `teacher_config`; `forward` returns (cont [B, L, Cvae], logits [B, L, V])."""

    def __init__(self, teacher_config: VARConfig):
        super().__init__(student_var_config(teacher_config))
        self.teacher_config = teacher_config
        cfg, C = self.config, self.width
        dpr = [x.item() for x in torch.linspace(0, cfg.dpr, cfg.depth, device="cpu")]
        self.blocks = nn.ModuleList([StudentBlock(cfg, dpr[i]) for i in range(cfg.depth)])
        # Config-derived buffers are not saved: an EMA over a −inf mask would turn it into NaN (−inf − −inf).
        for name in DERIVED_BUFFERS:
            self.register_buffer(name, self._buffers.pop(name), persistent=False)
        self.reset_buffers()
        self.n_d_embed = nn.Embedding(2, C)
        self.layerwise_n_d_embed = nn.ModuleList([nn.Linear(C, C) for _ in range(cfg.depth + 1)])
        self.final_layer_conti = FinalLayer(C, cfg.z_channels)
        teacher_pns = tuple(teacher_config.patch_nums)
        # data_tokens[t]: tokens of the first t teacher scales, N(t) (t = 0..num_scales).
        self.data_tokens = [sum(p * p for p in teacher_pns[:t]) for t in range(len(teacher_pns) + 1)]
        self.tokens_per_image = self.data_tokens[-1]

    @torch.no_grad()
    def reset_buffers(self) -> None:
        super().reset_buffers()
        bias = student_attention_bias(self.patch_nums).to(self.attn_bias_for_masking.device)
        self.attn_bias_for_masking.copy_(bias.view(self.attn_bias_for_masking.shape))

    def derived_buffers(self) -> dict[str, torch.Tensor]:
        """Saved buffers that are a function of the config (the official EMA parameter dicts omit them)."""
        return {k: torch.zeros_like(v) for k, v in self.state_dict().items() if k.endswith("zero_k_bias")}

    # --------------------------------------------------------------------------------------------- forward
    def data_mask(self, t: torch.Tensor) -> torch.Tensor:
        """t [B] (teacher scales given as data) → [B, L + 1] bool: the class slot and the first N(t) tokens."""
        counts = torch.tensor(self.data_tokens, device=t.device)[t.long()]
        return torch.arange(self.tokens_per_image + 1, device=t.device)[None] < 1 + counts[:, None]

    def forward(self, labels: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """labels [B], x [B, L, Cvae] (data codes then noise), t [B] int → (cont [B, L, Cvae] fp32, logits [B, L, V] fp32)."""
        B = x.shape[0]
        with torch.autocast(device_type=x.device.type, enabled=False):
            cond = self.class_emb(labels)
            sos = cond.unsqueeze(1) + self.pos_start.expand(B, self.first_l, -1)
            h = torch.cat((sos, self.word_embed(x.float())), dim=1)
            h = h + self.lvl_embed(self.lvl_1L.expand(B, -1)) + self.pos_1LC
            n_d_emb = self.n_d_embed(self.data_mask(t).long())  # [B, L + 1, C]
            h = h + n_d_emb
        main_dtype = torch.matmul(h.new_ones(8, 8), h.new_ones(8, 8)).dtype
        h = h.to(main_dtype)
        attn_bias = self.attn_bias_for_masking.to(main_dtype)
        cond_gss = self.shared_ada_lin(cond).to(main_dtype)
        for block, lin in zip(self.blocks, self.layerwise_n_d_embed):
            h = block(h, cond_gss, attn_bias, lin(n_d_emb).to(main_dtype))
        h = h.float() + self.layerwise_n_d_embed[-1](n_d_emb).float()
        logits = self.head(self.head_nm(h, cond).float()).float()[:, 1:]
        cont = self.final_layer_conti(h, cond).float()[:, 1:]
        return cont, logits

    # ------------------------------------------------------------------------------------------------ init
    @torch.no_grad()
    def initialise_from_teacher(self, teacher: VARTransformer, generator: torch.Generator | None = None) -> "VARStudent":
        """A new student's full initialisation (the constructor's fresh weights, then the teacher's copied in)."""
        return self.init_from_teacher(teacher, generator)

    @torch.no_grad()
    def init_from_teacher(self, teacher: VARTransformer, generator: torch.Generator | None = None) -> "VARStudent":
        """Copy the teacher (word/class/start embeddings, blocks, heads); remap level and position tables to make room
        for the extra scale (teacher level/position 0 → 0, 1.. → 2..; new row 1 trunc-normal). The release
        re-initialises `class_emb.weight[1]` here where it means `lvl_embed.weight[1]`: we do the intended thing."""
        if tuple(teacher.patch_nums) != tuple(self.teacher_config.patch_nums) or teacher.width != self.width:
            raise ValueError("teacher architecture differs from the one this student was built for")
        std = math.sqrt(1 / self.width / 3)

        def tn(x: torch.Tensor) -> None:
            nn.init.trunc_normal_(x, mean=0.0, std=std, generator=generator)

        for name in ("word_embed", "class_emb", "shared_ada_lin", "head_nm", "head"):
            getattr(self, name).load_state_dict(getattr(teacher, name).state_dict())
        self.pos_start.copy_(teacher.pos_start)
        self.lvl_embed.weight[0] = teacher.lvl_embed.weight[0]
        self.lvl_embed.weight[2:] = teacher.lvl_embed.weight[1:]
        tn(self.lvl_embed.weight[1])
        self.pos_1LC[:, 0] = teacher.pos_1LC[:, 0]
        self.pos_1LC[:, 2:] = teacher.pos_1LC[:, 1:]
        tn(self.pos_1LC[:, 1])
        for dst, src in zip(self.blocks, teacher.blocks):
            dst.load_state_dict(src.state_dict())
        tn(self.n_d_embed.weight)
        return self


__all__ = ["VARStudent", "DERIVED_BUFFERS", "StudentBlock", "student_var_config", "student_attention_bias"]
