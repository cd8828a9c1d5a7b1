"""The VAR backbone of Distilled Decoding 2's networks (DD2 spec §2; the networks themselves: `ardistill.models.dd2.net`).

`VARBackbone` is a copy of the teacher's transformer without its classification head, reading continuous code vectors
through VAR's own next-scale input path (`continuous_next_scale_input`), so the feature f_i of a position in scale s
sees the tokens of scales < s only (VAR's block-causal order: the positions of one scale are conditionally independent
given the earlier scales). The generator reads the noise sequence through the same path (the sequence "shifted" by
VAR's one AR step); the GTS-tuned model then predicts the mean of each position's teacher distribution given a noise
prefix, a valid initialisation.

Network space: VAR's codes are small against N(0, I) noise (var-toy-l: std 0.097 per dimension); the scale makes the
noise level t at which codes become distinguishable O(1) (docs/dd2.md decision 12).

Shapes: B batch, L tokens (Σ pn²; 130 for var-toy-l), C = Cvae code dimension (32), D backbone width. Labels are [B]
int64 class ids.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ardistill.models.dd2.net import DD2Net
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import MultiScaleQuantizer


def continuous_next_scale_input(quantize: MultiScaleQuantizer, tokens: torch.Tensor) -> torch.Tensor:
    """VAR's teacher-forcing input from continuous code vectors: tokens `[B, L, Cvae]` (scales concatenated, raster
    order) → the next scales' inputs `[B, L − pn_0², Cvae]` fp32. Equal to `quantize.idx_to_var_input` when every
    vector is a codebook row (tested); out of place, so it is differentiable in `tokens`."""
    patch_nums = quantize.patch_nums
    B, C = tokens.shape[0], quantize.Cvae
    H = W = patch_nums[-1]
    f_hat = tokens.new_zeros(B, C, H, W, dtype=torch.float32)
    inputs, start = [], 0
    for si in range(len(patch_nums) - 1):
        pn = patch_nums[si]
        h = tokens[:, start:start + pn * pn].float().transpose(1, 2).reshape(B, C, pn, pn)
        start += pn * pn
        f_hat = f_hat + quantize.phi(si)(F.interpolate(h, size=(H, W), mode="bicubic"))
        nxt = patch_nums[si + 1]
        inputs.append(F.interpolate(f_hat, size=(nxt, nxt), mode="area").reshape(B, C, -1).transpose(1, 2))
    return torch.cat(inputs, dim=1)


class VARBackbone(nn.Module):
    """The teacher's VAR transformer without its classification head: (labels `[B]`, tokens `[B, L, Cvae]` code
    vectors) → features `[B, L, D]` fp32 (the AdaLN-before-head output), position i seeing the class and the tokens of
    earlier scales only. A copy: training it never touches the teacher. No label dropout, no drop-path."""

    def __init__(self, transformer: VARTransformer, quantize: MultiScaleQuantizer):
        super().__init__()
        cfg = dataclasses.replace(transformer.config, cond_drop_rate=0.0, drop_path_rate=0.0)
        self.net = VARTransformer(cfg)
        self.net.load_state_dict({k: v.float() for k, v in transformer.state_dict().items()})
        self.net.head = nn.Identity()  # get_logits now returns head_nm(h, cond): the features
        # The tokenizer's next-scale input path (φ convolutions), frozen: not a trained part of DD2's networks.
        self.quantize = copy.deepcopy(quantize).float().requires_grad_(False)
        self.patch_nums = tuple(cfg.patch_nums)
        self.step_slices = list(self.net.scale_slices)  # one AR step = one scale
        self.width = cfg.width
        self.code_dim = quantize.Cvae

    def forward(self, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(labels, continuous_next_scale_input(self.quantize, tokens))


def var_dd2_net(transformer: VARTransformer, quantize: MultiScaleQuantizer, *, code_scale: float = 1.0,
                head_width: int = 256, head_depth: int = 3) -> DD2Net:
    """A DD2 network for a VAR teacher: a copy of its transformer (`VARBackbone`) + a fresh head."""
    return DD2Net.with_head(VARBackbone(transformer, quantize), code_scale=code_scale, head_width=head_width,
                            head_depth=head_depth)


__all__ = ["continuous_next_scale_input", "VARBackbone", "var_dd2_net"]
