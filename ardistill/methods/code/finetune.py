"""CoDe fine-tuning (paper §3.3; no official training script exists, see docs/code.md for the [inferred] choices).

- Drafter: cross-entropy against ground-truth tokens on its own scales [0, N) only (positions < P_N), teacher forcing.
- Refiner: distilled from the large model (the *original* drafter, frozen) with the per-position forward KL of the
  official `distillation_loss_bias` (KL(p_teacher ‖ p_refiner), T = 1), weighted λ_ep on scales < N and 1 on
  scales ≥ N; λ_ep decays 1 → 0 over training. Both the loss and the teacher are teacher-forced (no CFG).

Both stages run on the shared `train_loop` (resumable, checkpoints, progress bar), one after the other, in
`<out>/drafter/` and `<out>/refiner/`; the fine-tuned transformers are written in the official key layout as
`<out>/drafter.safetensors` and `<out>/refiner.safetensors`, described by `<out>/code.json`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.io import atomic_save_safetensors, atomic_write_json, load_state_dict_file, load_strict
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.recipe_schema import Recipe
from ardistill.training.loop import TrainConfig, TrainResult, train_loop
from ardistill.training.toy_data import ImageData, load_or_make_token_cache


@dataclass(kw_only=True)
class CoDeRecipe(Recipe):
    """Everything a fine-tuning run needs: the schema of `kind: code-finetune` recipes (recipes/code/)."""

    kind: Literal["code-finetune"] = "code-finetune"
    drafter: str
    refiner: str
    draft_steps: int
    teacher: str | None = None  # the large model the refiner is distilled from; default: the drafter's weights
    data: ImageData = field(default_factory=ImageData)
    num_images: int = 20_000
    batch_size: int = 32
    drafter_train: TrainConfig = field(default_factory=TrainConfig)
    refiner_train: TrainConfig = field(default_factory=TrainConfig)
    lambda_schedule: Literal["linear", "cosine", "constant"] = "linear"
    kl_normalisation: Literal["positions", "weights"] = "positions"
    random_init: bool = False  # random weights for every model (smoke runs of the real sizes)
    tokens_file: str | None = None  # pre-tokenized training set (safetensors: tokens [N, L], labels [N]) instead of `data`


def lambda_ep(schedule: str, step: int, steps: int) -> float:
    """Weight of the drafted scales in the refiner's loss: 1 at step 0, 0 at the end ("constant": always 1)."""
    frac = min(1.0, step / max(1, steps - 1))
    if schedule == "linear":
        return 1.0 - frac
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * frac))
    if schedule == "constant":
        return 1.0
    raise BadArgumentError(f"unknown lambda schedule {schedule!r}")


def teacher_forcing_input(vae: VQVAE, tokens: torch.Tensor, patch_nums) -> torch.Tensor:
    """Tokens [B, L] → next-scale VQ features [B, L − 1, Cvae] (frozen tokenizer, no gradient)."""
    with torch.no_grad():
        return vae.quantize.idx_to_var_input(list(torch.split(tokens, [pn * pn for pn in patch_nums], dim=1)))


def peek_label_drop(labels: torch.Tensor, model: VARTransformer) -> torch.Tensor:
    """The labels the model's training forward is about to see: it replaces labels by the null class where
    `torch.rand(B) < cond_drop_rate` on the global generator; we draw the same numbers and restore the state, so
    the teacher can be given the very same (partly dropped) labels."""
    rate = model.config.cond_drop_rate if model.training else 0.0
    if rate <= 0:
        return labels
    with torch.random.fork_rng(devices=[labels.device] if labels.device.type == "cuda" else []):
        drop = torch.rand(labels.shape[0], device=labels.device) < rate
    return torch.where(drop, model.num_classes, labels)


def drafter_ce_loss(model: VARTransformer, x: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor, prefix: int) -> torch.Tensor:
    """Mean cross-entropy over positions [0, prefix) (the drafter's scales) of teacher-forced logits."""
    logits = model(labels, x)[:, :prefix]  # [B, P, V]; block-causal, so these do not see later scales
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, :prefix].reshape(-1))


def refiner_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, prefix: int, lam: float,
                    normalisation: str = "positions") -> tuple[torch.Tensor, dict]:
    """Σ_i w_i·KL(p_teacher,i ‖ p_student,i) with w = λ on positions < prefix and 1 after.

    Logits [B, L, V]. normalisation "positions": divided by B·L (the official batchmean per position);
    "weights": divided by B·Σ w (the loss keeps its scale while λ decays).
    """
    log_q = F.log_softmax(student_logits.float(), dim=-1)
    log_p = F.log_softmax(teacher_logits.float(), dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # [B, L]
    w = torch.ones(kl.shape[1], device=kl.device)
    w[:prefix] = lam
    total = (kl * w).sum()
    denom = kl.shape[0] * (kl.shape[1] if normalisation == "positions" else float(w.sum().clamp_min(1e-8)))
    with torch.no_grad():
        metrics = {"kl_draft": float(kl[:, :prefix].mean()) if prefix else 0.0, "kl_refine": float(kl[:, prefix:].mean()), "lambda": lam}
    return total / denom, metrics


def _batches(tokens: torch.Tensor, labels: torch.Tensor, batch_size: int, grad_accum: int, seed: int):
    n = tokens.shape[0]
    per_epoch = max(1, n // batch_size)

    def get_batch(step: int, micro: int):
        k = step * grad_accum + micro
        epoch, i = divmod(k, per_epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        idx = order[i * batch_size : (i + 1) * batch_size]
        return tokens[idx], labels[idx]

    return get_batch


def finetune_drafter(model: VARTransformer, vae: VQVAE, tokens: torch.Tensor, labels: torch.Tensor, draft_steps: int,
                     train: TrainConfig, out_dir: Path, *, batch_size: int, resume: bool, progress: bool) -> TrainResult:
    prefix = model.scale_slices[draft_steps - 1][1]
    device = model.head.weight.device
    get_batch = _batches(tokens, labels, batch_size, train.grad_accum, train.seed)

    def loss_fn(batch, step):
        tok, lab = (t.to(device) for t in batch)
        loss = drafter_ce_loss(model, teacher_forcing_input(vae, tok, model.patch_nums), tok, lab, prefix)
        return loss, {"ppl": math.exp(min(20.0, loss.item()))}

    return train_loop(model=model, loss_fn=loss_fn, get_batch=get_batch, cfg=train, out_dir=out_dir, resume=resume,
                      progress=progress, description=f"CoDe drafter (scales < {draft_steps})",
                      extra_state={"stage": "drafter", "draft_steps": draft_steps})


def finetune_refiner(model: VARTransformer, teacher: VARTransformer, vae: VQVAE, tokens: torch.Tensor, labels: torch.Tensor,
                     draft_steps: int, train: TrainConfig, out_dir: Path, *, batch_size: int, lambda_schedule: str,
                     kl_normalisation: str, resume: bool, progress: bool) -> TrainResult:
    prefix = model.scale_slices[draft_steps - 1][1] if draft_steps > 0 else 0
    device = model.head.weight.device
    teacher = teacher.eval().requires_grad_(False)
    get_batch = _batches(tokens, labels, batch_size, train.grad_accum, train.seed)

    def loss_fn(batch, step):
        tok, lab = (t.to(device) for t in batch)
        x = teacher_forcing_input(vae, tok, model.patch_nums)
        with torch.no_grad():
            teacher_logits = teacher(peek_label_drop(lab, model), x)
        return refiner_kd_loss(model(lab, x), teacher_logits, prefix, lambda_ep(lambda_schedule, step, train.steps), kl_normalisation)

    return train_loop(model=model, loss_fn=loss_fn, get_batch=get_batch, cfg=train, out_dir=out_dir, resume=resume,
                      progress=progress, description=f"CoDe refiner (KD, scales ≥ {draft_steps})",
                      extra_state={"stage": "refiner", "draft_steps": draft_steps})


def run_finetune(recipe: CoDeRecipe, drafter, refiner, out_dir: str | Path, *, teacher=None, resume: bool = False,
                 progress: bool = True, stages: tuple[str, ...] = ("drafter", "refiner")) -> dict:
    """Fine-tune the VAR teachers `drafter` and `refiner` (updated in place) as `recipe` says; `teacher` is the large
    model the refiner is distilled from (default: a frozen copy of the drafter taken before its own stage).
    Returns the summary written to `<out>/code.json`."""
    from ardistill.methods.code.sampler import CoDe

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    code = CoDe(drafter, refiner)  # checks the shared tokenizer
    N = code.check_draft_steps(recipe.draft_steps)
    if not 1 <= N < code.num_scales:
        raise BadArgumentError(f"fine-tuning needs 1 ≤ draft_steps < {code.num_scales}, got {N}")
    if recipe.tokens_file:
        sd = load_state_dict_file(recipe.tokens_file)
        if "tokens" not in sd or "labels" not in sd or sd["tokens"].shape[1:] != (drafter.tokens_per_image,):
            raise BadArgumentError(f"{recipe.tokens_file}: needs 'tokens' [N, {drafter.tokens_per_image}] and 'labels' [N]")
        tokens, labels = sd["tokens"].long(), sd["labels"].long()
    elif recipe.data.size != drafter.image_size:
        raise BadArgumentError(f"data size {recipe.data.size} px differs from the models' {drafter.image_size} px "
                               f"(the procedural world has 32 and 64 px; give real images as tokens_file)")
    else:
        tokens, labels = load_or_make_token_cache(drafter.tokenizer, recipe.data, recipe.num_images, out_dir / "tokens.safetensors", progress)
    summary: dict = {"drafter": recipe.drafter, "refiner": recipe.refiner, "draft_steps": N, "random_init": recipe.random_init,
                     "lambda_schedule": recipe.lambda_schedule, "kl_normalisation": recipe.kl_normalisation}
    if "refiner" in stages:
        if teacher is not None:
            big = teacher.network
        else:
            big = VARTransformer(drafter.network.config).to(drafter.device)
            big.load_state_dict(drafter.network.state_dict())  # the original large model, before the drafter stage
    for stage in ("drafter", "refiner"):
        if stage not in stages:
            continue
        model = (drafter if stage == "drafter" else refiner).network.requires_grad_(True)
        common = dict(batch_size=recipe.batch_size, resume=resume, progress=progress)
        if stage == "drafter":
            result = finetune_drafter(model, drafter.tokenizer, tokens, labels, N, recipe.drafter_train, out_dir / "drafter", **common)
        else:
            result = finetune_refiner(model, big, drafter.tokenizer, tokens, labels, N, recipe.refiner_train, out_dir / "refiner",
                                      lambda_schedule=recipe.lambda_schedule, kl_normalisation=recipe.kl_normalisation, **common)
        model.eval().requires_grad_(False)
        atomic_save_safetensors({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, out_dir / f"{stage}.safetensors")
        summary.update({f"{stage}_file": f"{stage}.safetensors", f"{stage}_final_loss": result.last_loss, f"{stage}_steps": result.step})
    card = out_dir / "code.json"
    if card.is_file():
        summary = {**json.loads(card.read_text()), **summary}
    atomic_write_json(card, summary)
    return summary


def read_finetune_card(out_dir: str | Path) -> dict:
    """The `code.json` of a fine-tuning folder (model names, N, file names)."""
    card = Path(out_dir) / "code.json"
    if not card.is_file():
        raise ArdistillError(f"{out_dir}: no code.json (not a CoDe fine-tuning folder)")
    return json.loads(card.read_text())


def apply_finetuned(out_dir: str | Path, drafter, refiner) -> None:
    """Load the fine-tuned transformers of a `run_finetune` folder into the teachers (strict, in place)."""
    info = read_finetune_card(out_dir)
    for role, t in (("drafter", drafter), ("refiner", refiner)):
        if f"{role}_file" in info:
            load_strict(t.network, load_state_dict_file(Path(out_dir) / info[f"{role}_file"]), what=f"fine-tuned {role}")
        t.network.eval().requires_grad_(False)


__all__ = ["CoDeRecipe", "lambda_ep", "refiner_kd_loss", "drafter_ce_loss", "run_finetune", "apply_finetuned", "read_finetune_card", "peek_label_drop"]
