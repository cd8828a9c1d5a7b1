"""Training the DD student on a trajectory dataset, through the shared loop (`ardistill.training.loop.train_loop`).

Per sample: a split point t drawn uniformly from T; input X_t = codebook[q] for the first data_tokens(t) positions and
the sample's own regenerated noise ε (`trajectory_noise(seed, index, L, C)`) for the rest; the loss, over the noise
positions only, is CE(logits, q) + mse_weight · MSE(cont, codebook[q]) (MSE mean over C), averaged over the noise
positions with per-position weights: `position_weighting: token` weighs every token alike, `step` every AR step alike
(VAR: each scale's tokens share one step's weight; LlamaGen: one token is one step, so the two agree).
LPIPS on decoded images (the release's `--loss_norm lpips`) is not available offline; see docs/dd.md.

Shapes: B batch, L tokens, C code dimension, V codebook size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ardistill import distributed
from ardistill.errors import ArdistillError
from ardistill.methods.dd.noise import trajectory_noise
from ardistill.methods.dd.student import Student, teacher_architecture
from ardistill.models.dd.config import DDStudentConfig
from ardistill.registry import is_builtin_model
from ardistill.training.loop import TrainConfig, TrainResult, batch_seed, train_loop


@dataclass
class DDTrainSettings:
    t_list: tuple[int, ...]
    split: int
    batch_size: int = 32
    mse_weight: float = 1.0
    position_weighting: str = "token"  # token | step (see the module docstring)
    eval_every: int = 0  # 0: evaluate only at the end (toy teachers only)
    eval_num: int = 256  # images for toy-FID / class accuracy
    eval_seed: int = 0
    extra: dict = field(default_factory=dict)  # facts stored in student.json


class TrajectoryBatches:
    """Batches as a pure function of (step, micro): epochs of seeded permutations over the dataset, t per sample from
    a seeded draw over T, noise regenerated from the dataset's seed and each sample's global index."""

    def __init__(self, data: dict, meta: dict, *, batch_size: int, grad_accum: int, t_list, seed: int, device):
        self.tokens, self.labels, self.index = data["tokens"].long(), data["labels"].long(), data["index"].long()
        self.noise_seed, self.L, self.C = int(meta["seed"]), int(meta["tokens_per_image"]), int(meta["code_dim"])
        self.n, self.batch_size, self.grad_accum = self.tokens.shape[0], batch_size, grad_accum
        self.t_values = torch.tensor(list(t_list), dtype=torch.long)
        self.seed, self.device = seed, device
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(batch_seed("dd-batches", self.seed, epoch))
            self._perms = {epoch: torch.randperm(self.n, generator=g)}  # keep one epoch (steps only move forward)
        return self._perms[epoch]

    def __call__(self, step: int, micro: int) -> dict:
        k = step * self.grad_accum + micro
        pos = torch.arange(k * self.batch_size, (k + 1) * self.batch_size)
        rows = torch.cat([self._perm(int(e))[pos[pos // self.n == e] % self.n] for e in torch.unique(pos // self.n)])
        g = torch.Generator().manual_seed(batch_seed("dd-t", self.seed, k))
        t = self.t_values[torch.randint(len(self.t_values), (len(rows),), generator=g)]
        noise = trajectory_noise(self.noise_seed, self.index[rows], self.L, self.C)
        return {k_: v.to(self.device) for k_, v in
                dict(tokens=self.tokens[rows], labels=self.labels[rows], t=t, noise=noise).items()}


POSITION_WEIGHTINGS = ("token", "step")


def position_weights(data_counts: torch.Tensor, weighting: str) -> torch.Tensor:
    """[L] loss weight per position: 1 (`token`) or 1 / (tokens of the position's AR step) (`step`).
    `data_counts[t]` = tokens of the first t AR steps, t = 0..steps."""
    step_sizes = data_counts[1:] - data_counts[:-1]  # [steps]
    per_position = torch.repeat_interleave(step_sizes, step_sizes)  # [L]
    return torch.ones_like(per_position, dtype=torch.float32) if weighting == "token" else 1.0 / per_position.float()


def dd_loss(model, batch: dict, codebook: torch.Tensor, data_counts: torch.Tensor, mse_weight: float,
            weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """CE + mse_weight·MSE over the noise positions of X_t, weighted by `weights` [L] (None: all 1);
    returns (loss, {ce, mse, acc}); acc is the unweighted token accuracy over the noise positions."""
    tokens, noise, t = batch["tokens"], batch["noise"], batch["t"]
    B, L = tokens.shape
    target = codebook[tokens]  # [B, L, C]
    is_noise = torch.arange(L, device=tokens.device)[None] >= data_counts[t][:, None]  # [B, L]
    x_t = torch.where(is_noise[..., None], noise, target)
    cont, logits = model(batch["labels"], x_t, t)
    w = is_noise.float() if weights is None else is_noise.float() * weights.to(tokens.device)[None]
    denom = w.sum().clamp_min(1e-8)
    ce = (F.cross_entropy(logits.float().transpose(1, 2), tokens, reduction="none") * w).sum() / denom
    mse = ((cont.float() - target).square().mean(-1) * w).sum() / denom
    acc = ((logits.argmax(-1) == tokens).float() * is_noise).sum() / is_noise.sum().clamp_min(1)
    return ce + mse_weight * mse, {"ce": ce.item(), "mse": mse.item(), "acc": acc.item(), "loss_weight": float(denom)}


def new_student_model(teacher, *, seed: int):
    """A student initialised from the teacher (new parts drawn under `seed`)."""
    from ardistill.models.dd.checkpoint import build_student

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_student(teacher.family, teacher_architecture(teacher), device=teacher.device)
        model.initialise_from_teacher(teacher.network, torch.Generator(device=teacher.device).manual_seed(seed))
    return model


def toy_eval_fn(teacher, config: DDStudentConfig, *, num: int, seed: int):
    """(model, step) → {"fid", "class_acc", "kid_mean", "precision", "recall"} of `num` 1-step samples through the
    evaluation protocol (`ardistill.eval.protocol.toy_quality`: class-balanced labels, chunks of 16 seeded
    `seed · 1_000_003 + chunk`, against the procedural world's held-out images with the shipped evaluator): the numbers
    `ardistill bench --student DIR --dd-steps 1 --fid --num-samples num --seed seed` gives for the saved student.
    Runs in this process only (the shared loop evaluates on rank 0)."""
    from ardistill.eval.protocol import student_generator, toy_quality

    if num < 2 or seed < 0:  # refused before training, not at its first evaluation
        raise ArdistillError(f"eval.num must be ≥ 2 and eval.seed ≥ 0, got {num} and {seed}")

    def run(model, step: int) -> dict:
        student = Student(model, teacher, config)
        q = toy_quality(student_generator(student), num, seed=seed, image_size=teacher.image_size,
                        num_classes=teacher.num_classes, device=teacher.device, across_ranks=False)
        model.train()
        return {"fid": q["fid"], "class_acc": q["class_accuracy"], "kid_mean": q["kid_mean"], "precision": q["precision"],
                "recall": q["recall"]}

    return run


def train_student(teacher, trajectories, settings: DDTrainSettings, train_cfg: TrainConfig, out_dir: str | Path, *,
                  resume: bool = False, progress: bool = True) -> tuple[Student, TrainResult]:
    """Train (or resume) a DD student of `teacher` on the trajectory dataset `trajectories` (a ShardedDataset);
    writes `out_dir/checkpoint.pt` while training and `student.safetensors` + `student.json` (EMA weights) at the end."""
    meta = trajectories.meta
    if meta.get("teacher") != teacher.name or int(meta.get("tokens_per_image", -1)) != teacher.tokens_per_image:
        raise ArdistillError(f"trajectories were made by {meta.get('teacher')!r}, not by teacher {teacher.name!r}")
    max_t = teacher.num_steps - 1
    if not settings.t_list or settings.t_list[0] != 0 or any(not 0 <= t <= max_t for t in settings.t_list):
        raise ArdistillError(f"t_list must start with 0 and lie in [0, {max_t}], got {list(settings.t_list)}")
    if not max(settings.t_list) <= settings.split <= max_t + 1:
        raise ArdistillError(f"split must lie in [{max(settings.t_list)}, {max_t + 1}] (the last t of t_list … every position "
                             f"from the logits head), got {settings.split}")
    if settings.position_weighting not in POSITION_WEIGHTINGS:
        raise ArdistillError(f"position_weighting must be one of {', '.join(POSITION_WEIGHTINGS)}, got {settings.position_weighting!r}")
    config = DDStudentConfig(family=teacher.family, teacher=teacher.name, t_list=tuple(settings.t_list), split=int(settings.split))
    model = new_student_model(teacher, seed=train_cfg.seed)
    data_counts = torch.tensor(model.data_tokens, device=teacher.device)
    weights = position_weights(data_counts, settings.position_weighting)
    codebook = teacher.codebook.detach().float()
    batches = TrajectoryBatches(trajectories.load_all(), meta, batch_size=settings.batch_size, grad_accum=train_cfg.grad_accum,
                                t_list=settings.t_list, seed=train_cfg.seed, device=teacher.device)
    eval_fn = toy_eval_fn(teacher, config, num=settings.eval_num, seed=settings.eval_seed) if is_builtin_model(teacher.name) else None
    t0 = time.time()
    result = train_loop(
        model=model, loss_fn=lambda batch, step: dd_loss(model, batch, codebook, data_counts, settings.mse_weight, weights),
        get_batch=batches, cfg=train_cfg, out_dir=out_dir, resume=resume, eval_fn=eval_fn, eval_every=settings.eval_every,
        progress=progress, description=f"DD student of {teacher.name}",
        extra_state={"teacher": teacher.name, **config.to_dict()},
    )
    student = Student(model, teacher, config, name=Path(out_dir).name)
    if distributed.is_main():  # every rank holds the same weights; one writes them
        student.save(out_dir, extra={**settings.extra, "steps": result.step, "last_loss": result.last_loss,
                                     "seconds": time.time() - t0, "evals": result.evals, "samples": batches.n,
                                     "train": train_cfg.to_dict(), "batch_size": settings.batch_size,
                                     "mse_weight": settings.mse_weight, "position_weighting": settings.position_weighting})
    distributed.barrier()
    return student, result


__all__ = ["DDTrainSettings", "TrajectoryBatches", "dd_loss", "position_weights", "new_student_model", "train_student", "toy_eval_fn"]
