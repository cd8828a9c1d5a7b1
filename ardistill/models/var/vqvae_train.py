"""Training-time paths of the multi-scale VQVAE (the official release ships only the trained tokenizer).

`quantize_train` is the official `VectorQuantizer2.forward` in spirit: the same residual multi-scale loop, the
commitment/codebook loss β·‖sg[f̂] − f‖² + ‖f̂ − sg[f]‖² averaged over scales, and a straight-through estimator
for the encoder. Dead codes (unused for a while) are restarted from current residuals, which the small built-in
tokenizers need to keep their codebooks alive on CPU-sized runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ardistill.models.var.vqvae import VQVAE, MultiScaleQuantizer


def quantize_train(quantizer: MultiScaleQuantizer, f: torch.Tensor, beta: float = 0.25) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoder features f [B, Cvae, h, w] → (f̂ with straight-through gradient [B, Cvae, h, w], vq loss (scalar),
    code usage counts [V], residuals [N, Cvae] seen at the finest scale for dead-code restarts)."""
    B, C, H, W = f.shape
    f_no_grad = f.detach()
    f_rest = f_no_grad.clone()
    f_hat = torch.zeros_like(f_rest)
    codebook = quantizer.embedding.weight
    usage = torch.zeros(codebook.shape[0], device=f.device)
    vq_loss = f.new_zeros(())
    SN = quantizer.num_scales
    residuals = None
    for si, pn in enumerate(quantizer.patch_nums):
        last = si == SN - 1
        z = (f_rest if last else F.interpolate(f_rest, size=(pn, pn), mode="area")).permute(0, 2, 3, 1).reshape(-1, C)
        with torch.no_grad():
            dist = z.square().sum(1, keepdim=True) + codebook.square().sum(1) - 2 * z @ codebook.T
            idx = dist.argmin(1)
            usage += torch.bincount(idx, minlength=codebook.shape[0]).float()
        if last:
            residuals = z.detach()
        h = quantizer.embedding(idx).view(B, pn, pn, C).permute(0, 3, 1, 2)
        h = h if last else F.interpolate(h, size=(H, W), mode="bicubic")
        h = quantizer.phi(si)(h)
        f_hat = f_hat + h
        f_rest = f_rest - h.detach()
        vq_loss = vq_loss + beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f_no_grad)
    f_st = (f_hat.detach() - f_no_grad) + f  # value of f̂, gradient of f (straight-through)
    # Gradient also reaches φ and the codebook through the vq loss term ‖f̂ − sg[f]‖².
    return f_st, vq_loss / SN, usage, residuals


@torch.no_grad()
def restart_dead_codes(quantizer: MultiScaleQuantizer, usage_ema: torch.Tensor, residuals: torch.Tensor, threshold: float, generator: torch.Generator) -> torch.Tensor:
    """Replace codes whose usage EMA is below `threshold` with random residual vectors; `usage_ema` of those codes is
    set to 2·threshold (a grace period). Returns the restarted code indices."""
    dead = (usage_ema < threshold).nonzero().flatten()
    if dead.numel() == 0 or residuals.numel() == 0:
        return dead[:0]
    pick = torch.randint(0, residuals.shape[0], (dead.numel(),), generator=generator).to(residuals.device)
    noise = 0.01 * residuals.std() * torch.randn(dead.numel(), residuals.shape[1], generator=generator).to(residuals.device)
    quantizer.embedding.weight.data[dead] = residuals[pick] + noise
    usage_ema[dead] = threshold * 2  # give restarted codes time to be picked
    return dead


def vqvae_train_forward(vae: VQVAE, images: torch.Tensor, beta: float = 0.25):
    """Images [B, 3, H, W] in [−1, 1] → (reconstruction [B, 3, H, W] (not clamped), vq loss, usage [V], residuals)."""
    f = vae.quant_conv(vae.encoder(images))
    f_hat, vq_loss, usage, residuals = quantize_train(vae.quantize, f, beta)
    return vae.decoder(vae.post_quant_conv(f_hat)), vq_loss, usage, residuals
