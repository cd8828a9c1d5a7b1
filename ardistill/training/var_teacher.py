"""Training a VAR-family teacher from scratch on the procedural image world: the multi-scale tokenizer, then the
transformer on the tokenizer's codes. The same modules as the official models; only the configs are small.

Shapes: B batch, L tokens per image (Σ pn²), V codebook size, Cvae code dimension, images [B, 3, H, W] in [0, 1]
at the data boundary and [-1, 1] inside the tokenizer (official convention).

Determinism: the batch of step s holds the images with global indices [s·B, (s+1)·B) of the training seed (a pure
function of the step), so a resumed run sees exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.models.var.vqvae_train import restart_dead_codes, vqvae_train_forward
from ardistill.training.tokenizer_loss import ReconstructionLoss
from ardistill.training.loop import TrainConfig, TrainResult, train_loop
from ardistill.training.toy_data import ImageData, load_or_make_token_cache, tokenize_dataset, train_on_tokens  # noqa: F401


# ------------------------------------------------------------------------------------------------- tokenizer
def train_var_tokenizer(
    config: VQVAEConfig,
    train: TrainConfig,
    data: ImageData,
    out_dir: str | Path,
    *,
    batch_size: int = 32,
    dead_code_threshold: float = 0.03,
    usage_decay: float = 0.98,
    loss: ReconstructionLoss = ReconstructionLoss(),
    resume: bool = False,
    progress: bool = True,
) -> tuple[VQVAE, TrainResult]:
    """Train the multi-scale VQVAE with the reconstruction `loss` (`ReconstructionLoss`) + the official VQ loss.

    Code usage per scale is tracked in the official `quantize.ema_vocab_hit_SV` buffer (an EMA of hit counts per
    batch, so it is checkpointed and resume stays exact); codes whose summed usage falls below
    `dead_code_threshold` are restarted from current finest-scale residuals before the next step.
    """
    torch.manual_seed(train.seed)
    vae = VQVAE(config).train()

    def get_batch(step: int, micro: int):
        images, _ = data.batch((step * train.grad_accum + micro) * batch_size, batch_size)
        return images.mul(2).sub_(1)

    def loss_fn(images: torch.Tensor, step: int):
        q = vae.quantize
        rec, vq_loss, usage, residuals = vqvae_train_forward(vae, images, beta=config.beta)
        with torch.no_grad():
            hits = usage / max(1.0, float(usage.sum())) * q.vocab_size  # 1.0 = uniform use
            q.ema_vocab_hit_SV.mul_(usage_decay).add_(hits.expand_as(q.ema_vocab_hit_SV) / q.num_scales, alpha=1 - usage_decay)
            if step % 10 == 9:
                # Dead codes were not selected in this batch, so their gradient is zero and replacing them between
                # forward and backward is safe; no state outlives the step, so resume stays exact.
                g = torch.Generator().manual_seed(train.seed * 1_000_003 + step)
                dead = restart_dead_codes(q, q.ema_vocab_hit_SV.sum(0), residuals, dead_code_threshold, g)
                q.ema_vocab_hit_SV[:, dead] = 2 * dead_code_threshold / q.num_scales  # grace period
        rec_loss, rec_metrics = loss(rec, images)
        total = rec_loss + vq_loss
        mse = rec_metrics["mse"]
        used = float((usage > 0).float().mean())
        return total, {"mse": mse, "vq": vq_loss.item(), "used": used}

    # Usage per code, summed over the scale rows, starts at "uniform" (1.0) so no code is restarted before it has had
    # a chance (≈ log(threshold)/log(decay) steps: 170 with the defaults).
    vae.quantize.ema_vocab_hit_SV.fill_(1.0 / vae.quantize.num_scales)
    result = train_loop(model=vae, loss_fn=loss_fn, get_batch=get_batch, cfg=train, out_dir=out_dir, resume=resume,
                        progress=progress, description="tokenizer")
    return vae.eval().requires_grad_(False), result


# ----------------------------------------------------------------------------------------------- transformer
def var_teacher_forcing_loss(model: VARTransformer, vae: VQVAE, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over all positions of teacher-forced logits (the official trainer's uniform weighting)."""
    splits = [pn * pn for pn in model.patch_nums]
    with torch.no_grad():  # the tokenizer is frozen: its features are inputs, not parameters
        x = vae.quantize.idx_to_var_input(list(torch.split(tokens, splits, dim=1)))
    logits = model(labels, x)  # [B, L, V]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


def train_var_transformer(
    config: VARConfig,
    vae: VQVAE,
    train: TrainConfig,
    data: ImageData,
    out_dir: str | Path,
    *,
    num_images: int = 20_000,
    batch_size: int = 64,
    resume: bool = False,
    progress: bool = True,
) -> tuple[VARTransformer, TrainResult]:
    """Train a VAR transformer with the official initialisation and loss on the frozen tokenizer's codes."""
    model = VARTransformer(config)
    model.init_weights(torch.Generator().manual_seed(train.seed))
    result = train_on_tokens(model, lambda tok, lab: var_teacher_forcing_loss(model, vae, tok, lab), vae, train, data,
                             out_dir, num_images=num_images, batch_size=batch_size, resume=resume, progress=progress,
                             description="transformer")
    return model.eval().requires_grad_(False), result


__all__ = ["train_var_tokenizer", "train_var_transformer", "var_teacher_forcing_loss"]
