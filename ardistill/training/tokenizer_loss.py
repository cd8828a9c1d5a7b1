"""The reconstruction loss of the built-in tokenizers (both families).

MSE + l1_weight·L1 per pixel, plus lowpass_weight·MSE between the images average-pooled to lowpass_size ×
lowpass_size: a colour term. The official tokenizers add LPIPS and a GAN loss, which keep colour and texture; the
toy world has no pretrained perceptual network, and with per-pixel losses alone the GroupNorm autoencoders lost
colour after a few hundred steps (docs/models.md has the measurements that chose this term).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ReconstructionLoss:
    l1_weight: float = 0.2
    lowpass_weight: float = 0.0
    lowpass_size: int = 4

    def __call__(self, rec: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """rec, images [B, 3, H, W] in [−1, 1] → (loss, {"mse": ...})."""
        mse = F.mse_loss(rec, images)
        loss = mse + self.l1_weight * (rec - images).abs().mean()
        if self.lowpass_weight > 0:
            size = (self.lowpass_size, self.lowpass_size)
            loss = loss + self.lowpass_weight * F.mse_loss(F.adaptive_avg_pool2d(rec, size), F.adaptive_avg_pool2d(images, size))
        return loss, {"mse": mse.item()}
