"""A DD (Distilled Decoding 1) student as DD2's one-step generator (docs/dd2.md decision 24).

DD2's generator is usually the GTS-tuned network (`ardistill.models.dd2.net.DD2Generator`). A trained DD student is
another one-pass map from noise to the teacher's tokens, and one that already spreads the noise over the teacher's
modes; `DDStudentGenerator` lets the CSD stage start from it. The student runs at split point 0 (every position
noise, the DD one-step call) and its output, in DD2's network space (code vectors × `code_scale`), is either

- `expected`: softmax(logits / temperature) @ codebook, a differentiable stand-in for the argmax codes that the DD
  sampler takes at positions below its split (the whole sequence for the shipped LlamaGen student); as the logits
  sharpen, its nearest code is their argmax;
- `continuous`: the student's continuous head (`final_layer_conti`), as the DD sampler reads it above the split.

Shapes: B batch, L tokens, C code dimension, V codebook size. Noise ε `[B, L, C]` ~ N(0, I), the DD student's own
noise space (its flow is in the teacher's code space), so the same ε gives the same DD student output here.
"""

from __future__ import annotations

import torch
from torch import nn

GENERATOR_OUTPUTS = ("expected", "continuous")


class DDStudentGenerator(nn.Module):
    """(noise ε `[B, L, C]`, labels `[B]`) → clean tokens `[B, L, C]` in network space, one pass of `student` (a DD
    student network: `forward(labels, x, t) → (cont [B, L, C], logits [B, L, V])`).

    Args:
        student: the DD student network (trained with it; its weights are this module's `student.*`).
        codebook: `[V, C]` the teacher's code vectors in its own space (a non-persistent buffer: it comes from the
            teacher, not from the student's file).
        code_scale: network space = code vectors × code_scale.
        output: "expected" or "continuous" (module docstring).
        temperature: of the softmax for "expected" (> 0).
    """

    def __init__(self, student: nn.Module, codebook: torch.Tensor, code_scale: float, *, output: str = "expected",
                 temperature: float = 1.0):
        super().__init__()
        if output not in GENERATOR_OUTPUTS:
            raise ValueError(f"the DD student generator's output is {' or '.join(GENERATOR_OUTPUTS)}, got {output!r}")
        if not temperature > 0:
            raise ValueError(f"the DD student generator's temperature must be > 0, got {temperature}")
        self.student = student
        self.register_buffer("codebook", codebook.detach().float() * float(code_scale), persistent=False)
        self.code_scale, self.output, self.temperature = float(code_scale), output, float(temperature)
        self.tokens_per_image = student.tokens_per_image
        self.code_dim = codebook.shape[1]

    @property
    def forward_pass_module(self) -> nn.Module:
        """What a benchmark counts once per pass: the student network (called once per generator pass)."""
        return self.student

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cont, logits = self.student(labels, noise, torch.zeros_like(labels))
        if self.output == "continuous":
            return cont.float() * self.code_scale
        return torch.softmax(logits.float() / self.temperature, dim=-1) @ self.codebook


__all__ = ["DDStudentGenerator", "GENERATOR_OUTPUTS"]
