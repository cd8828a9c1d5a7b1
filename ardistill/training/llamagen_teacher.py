"""Training a LlamaGen-family teacher from scratch on the procedural image world: the VQ tokenizer (l2-normalised
codebook), then the class-conditional GPT on its codes. The same modules as the official models, small configs.

Shapes: B batch, L = (H/f)² tokens in raster order, V codebook size, C code dimension (8 in the official VQ-16).
Batches are a pure function of the step (see `ImageData`), so an interrupted run resumes to the same weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ardistill.models.llamagen.config import GPTConfig, VQConfig
from ardistill.models.llamagen.gpt import LlamaGenGPT
from ardistill.models.llamagen.vq import VQModel
from ardistill.models.var.vqvae_train import restart_dead_codes
from ardistill.training.tokenizer_loss import ReconstructionLoss
from ardistill.training.loop import TrainConfig, TrainResult, train_loop
from ardistill.training.toy_data import ImageData, train_on_tokens


def vq_train_forward(vq: VQModel, images: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images [B, 3, H, W] in [-1, 1] → (reconstruction, VQ loss, code hit counts [V], latents [N, C]).

    The official VQ loss: ‖sg[z] − e‖² (codebook) + β·‖z − sg[e]‖² (commitment) on l2-normalised vectors, with a
    straight-through estimator from the decoder to the encoder.
    """
    q = vq.quantize
    z = vq.quant_conv(vq.encoder(images))  # [B, C, h, w]
    B, C, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, C)
    if q.l2_norm:
        flat = F.normalize(flat, p=2, dim=-1)
    codebook = q.codebook()
    with torch.no_grad():
        idx = torch.cdist(flat.detach(), codebook.detach()).argmin(1)
        hits = torch.bincount(idx, minlength=codebook.shape[0]).float()
    e = codebook[idx]
    vq_loss = F.mse_loss(e, flat.detach()) + beta * F.mse_loss(flat, e.detach())
    zq = flat + (e - flat).detach()
    rec = vq.decode(zq.view(B, h, w, C).permute(0, 3, 1, 2))
    return rec, vq_loss, hits, flat.detach()


def train_llamagen_tokenizer(
    config: VQConfig,
    train: TrainConfig,
    data: ImageData,
    out_dir: str | Path,
    *,
    batch_size: int = 16,
    dead_code_threshold: float = 0.03,
    usage_decay: float = 0.99,
    loss: ReconstructionLoss = ReconstructionLoss(),
    resume: bool = False,
    progress: bool = True,
) -> tuple[VQModel, TrainResult]:
    """Train the VQ tokenizer: the reconstruction `loss` (`ReconstructionLoss`) + the VQ loss; dead codes restarted from latents.

    Code usage is an EMA kept in the first V entries of the `quantize.codebook_used` buffer (a training-only statistic
    of the official layout), so it is checkpointed and resume stays exact.
    """
    torch.manual_seed(train.seed)
    vq = VQModel(config).train()
    V = config.codebook_size
    vq.quantize.codebook_used[:V].fill_(1.0)

    def get_batch(step: int, micro: int):
        images, _ = data.batch((step * train.grad_accum + micro) * batch_size, batch_size)
        return images.mul(2).sub_(1)

    def loss_fn(images: torch.Tensor, step: int):
        rec, vq_loss, hits, latents = vq_train_forward(vq, images, config.commit_loss_beta)
        usage = vq.quantize.codebook_used
        with torch.no_grad():
            usage[:V].mul_(usage_decay).add_(hits / hits.sum() * V, alpha=1 - usage_decay)
            if step % 10 == 9:  # dead codes got no gradient in this batch: safe to replace before backward
                g = torch.Generator().manual_seed(train.seed * 1_000_003 + step)
                restart_dead_codes(vq.quantize, usage[:V], latents, dead_code_threshold, g)
        rec_loss, rec_metrics = loss(rec, images)
        total = rec_loss + vq_loss
        mse = rec_metrics["mse"]
        return total, {"mse": mse, "vq": vq_loss.item(), "used": float((hits > 0).float().mean())}

    result = train_loop(model=vq, loss_fn=loss_fn, get_batch=get_batch, cfg=train, out_dir=out_dir, resume=resume,
                        progress=progress, description="tokenizer")
    return vq.eval().requires_grad_(False), result


class _VQEncoder:
    """Adapter so `load_or_make_token_cache` can tokenize with a LlamaGen VQ (`img_to_idx` → one-element list)."""

    def __init__(self, vq: VQModel):
        self.vq = vq

    def eval(self):
        self.vq.eval()
        return self

    def img_to_idx(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [self.vq.encode_indices(images)]


def gpt_teacher_forcing_loss(gpt: LlamaGenGPT, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy: the class token predicts token 0, token i predicts token i + 1."""
    logits = gpt(labels, tokens[:, :-1])  # [B, L, V]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


def train_llamagen_gpt(
    config: GPTConfig,
    vq: VQModel,
    train: TrainConfig,
    data: ImageData,
    out_dir: str | Path,
    *,
    num_images: int = 20_000,
    batch_size: int = 64,
    resume: bool = False,
    progress: bool = True,
) -> tuple[LlamaGenGPT, TrainResult]:
    """Train the class-conditional GPT with the official initialisation on the frozen tokenizer's codes."""
    gpt = LlamaGenGPT(config)
    gpt.init_weights(torch.Generator().manual_seed(train.seed))
    result = train_on_tokens(gpt, lambda tok, lab: gpt_teacher_forcing_loss(gpt, tok, lab), _VQEncoder(vq), train, data,
                             out_dir, num_images=num_images, batch_size=batch_size, resume=resume, progress=progress,
                             description="gpt")
    return gpt.eval().requires_grad_(False), result


__all__ = ["train_llamagen_tokenizer", "train_llamagen_gpt", "vq_train_forward", "gpt_teacher_forcing_loss"]
