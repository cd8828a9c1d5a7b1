"""The continuous head of both DD students (PixArt's FinalLayer, as in the official release)."""

from __future__ import annotations

import torch
from torch import nn


class FinalLayer(nn.Module):
    """h [B, L, D], cond [B, D] → [B, L, C]: Linear(LN(h)·(1 + scale) + shift), (shift, scale) = table + cond."""

    def __init__(self, hidden: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, out_channels, bias=True)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden) / hidden ** 0.5)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.scale_shift_table[None] + cond.reshape(cond.shape[0], 1, -1)).chunk(2, dim=1)  # [B, 1, D] each
        return self.linear(self.norm_final(h) * (1 + scale) + shift)
