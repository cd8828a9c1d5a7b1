"""DD2's main training iteration (spec §4): K updates of the guidance network ψ, then one of the generator G_θ.

Generic over modules and callables, never model names:
- `generator`: an `nn.Module` mapping a noise sequence ε `[B, L, C]` to clean tokens q `[B, L, C]` in one forward;
- `guidance`: an `nn.Module` with the `Guidance` signature of `losses.py`, (x, t, prefix) → x̂0;
- `teacher_probs`: the `TeacherProbs` callable of `losses.py` (frozen, no parameters trained here).

Class-conditional teachers (`num_classes > 0`): every batch draws its labels `[B]` uniformly from the same random
stream, and the three callables get them as a last argument — `generator(ε, labels)`, `guidance(x, t, prefix, labels)`,
`teacher_probs(prefix, labels)`. The guidance network then receives each prefix once (`[B, L, C]`, not the FCS loss's
m repeats) with x and t of `[m·B, L, ...]` (row r·B + b belongs to prefix b), so its backbone runs once per sample.

All randomness (ε, t, the fresh noise of both losses) is drawn on the CPU from one `torch.Generator` seeded by
`cfg.seed`, so a run is a function of the seed and the initial weights (bit-identical on CPU). The generator's EMA uses
the paper's progressive rate min(max, (k + 1)/(k + 10)) (`ardistill.training.loop.EMA` implements exactly that).
Checkpointing / resume / logging belong to the per-family pipeline (not built yet); `state_dict` is here for it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import torch

from ardistill.errors import BadArgumentError
from ardistill.methods.dd2.losses import (
    GENERATOR_WEIGHTINGS,
    T_DISTRIBUTIONS,
    TeacherProbs,
    csd_generator_loss,
    fcs_guidance_loss,
    sample_t,
)
from ardistill.training.loop import EMA


@dataclass
class DD2Config:
    batch_size: int = 256
    guidance_steps: int = 5  # K ψ-updates per generator update
    noise_draws: int = 4  # m noise draws per generator sample in the FCS loss
    t_distribution: str = "logit_normal"  # | "uniform"
    t_loc: float = 0.0  # logit-normal location / scale
    t_scale: float = 1.0
    t_min: float = 0.02
    t_max: float = 0.98
    weighting: str = "none"  # generator ω(t): "none" | "dmd"
    detach_inputs: bool = True  # DMD-gradient form of the SiD α = 1 loss
    lr_generator: float = 1e-3
    lr_guidance: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100  # generator steps of linear lr warm-up (both networks)
    schedule: str = "constant"  # after warm-up: "constant" | "cosine" (to 0 at `total_steps`)
    total_steps: int = 0  # generator steps of the run; needed by "cosine"
    grad_clip: float = 0.0  # 0 = off
    ema_max_rate: float = 0.9999  # 0 = no EMA
    seed: int = 0

    def validate(self) -> None:
        if self.batch_size < 1 or self.guidance_steps < 0 or self.noise_draws < 1:
            raise BadArgumentError("batch_size and noise_draws must be ≥ 1 and guidance_steps ≥ 0")
        if self.t_distribution not in T_DISTRIBUTIONS:
            raise BadArgumentError(f"unknown t distribution {self.t_distribution!r}; use {' or '.join(T_DISTRIBUTIONS)}")
        if self.weighting not in GENERATOR_WEIGHTINGS:
            raise BadArgumentError(f"unknown generator weighting {self.weighting!r}; use {' or '.join(GENERATOR_WEIGHTINGS)}")
        if self.schedule not in ("constant", "cosine") or (self.schedule == "cosine" and self.total_steps < 1):
            raise BadArgumentError(f"schedule must be constant or cosine (with total_steps ≥ 1), got {self.schedule!r}")
        if not (0 < self.t_min < self.t_max < 1):
            raise BadArgumentError(f"need 0 < t_min < t_max < 1, got {self.t_min}, {self.t_max}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def bind_labels(teacher_probs: TeacherProbs, guidance, labels: torch.Tensor | None):
    """(teacher_probs, guidance) with a batch's labels bound, in the label-free signatures of `losses.py` (the
    callables themselves when unconditional). The bound guidance receives each prefix once: the FCS loss's m repeats
    (rows r·B + b are copies of prefix b) are folded back."""
    if labels is None:
        return teacher_probs, guidance
    B = labels.shape[0]

    def bound_teacher_probs(prefix: torch.Tensor) -> torch.Tensor:
        return teacher_probs(prefix, labels)

    def bound_guidance(x: torch.Tensor, t: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        if prefix.shape[0] != B:
            unique = prefix[:B]
            if not torch.equal(prefix, unique.repeat(prefix.shape[0] // B, 1, 1)):
                raise ValueError("guidance prefixes are not m repeats of the batch")
            prefix = unique
        return guidance(x, t, prefix, labels)

    return bound_teacher_probs, bound_guidance


def _generate(generator, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return generator(noise) if labels is None else generator(noise, labels)


def guidance_step_loss(generator, guidance, eps: torch.Tensor, labels: torch.Tensor | None, *, t: torch.Tensor,
                       noise: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The FCS loss of one ψ update: generator samples q = G(ε) `[B, L, C]` made without gradient, t `[m·B, L]`,
    noise `[m·B, L, C]` (draw r of sample b is row r·B + b). Gradients reach ψ only."""
    with torch.no_grad():
        q = _generate(generator, eps, labels)
    _, bound = bind_labels(None, guidance, labels)
    return fcs_guidance_loss(bound, q, t=t, noise=noise)


def generator_step_loss(generator, guidance, teacher_probs: TeacherProbs, codebook: torch.Tensor, eps: torch.Tensor,
                        labels: torch.Tensor | None, *, t: torch.Tensor, noise: torch.Tensor, weighting: str = "none",
                        detach_inputs: bool = True) -> tuple[torch.Tensor, dict]:
    """The CSD loss of one G_θ update on q = G(ε) (ε `[B, L, C]`, t `[B, L]`, fresh noise `[B, L, C]`); the caller
    keeps ψ frozen (`frozen`), so gradients reach the generator only. metrics["csd"]: the loss value."""
    q = _generate(generator, eps, labels)
    bound_teacher, bound_guidance = bind_labels(teacher_probs, guidance, labels)
    loss, metrics = csd_generator_loss(q, bound_teacher, bound_guidance, codebook, t=t, noise=noise, weighting=weighting,
                                       detach_inputs=detach_inputs)
    return loss, {**metrics, "csd": float(loss.detach())}


@contextlib.contextmanager
def frozen(params):
    """requires_grad off for `params` inside the block (ψ during a generator update), restored after."""
    params = [p for p in params if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class DD2Trainer:
    """Holds the two networks, their Adam optimisers, the generator's EMA and the random stream.

    Args:
        sequence_shape: (L, C) of one noise / token sequence.
        codebook: `[V, C]` the teacher's code vectors (its device is the training device).
        num_classes: 0 for an unconditional teacher; else labels are drawn per batch (see the module docstring).
    Only parameters with `requires_grad` when the trainer is built are optimised (a frozen part stays frozen).
    """

    def __init__(self, generator: torch.nn.Module, guidance: torch.nn.Module, teacher_probs: TeacherProbs, codebook: torch.Tensor,
                 sequence_shape: tuple[int, int], cfg: DD2Config = DD2Config(), *, num_classes: int = 0):
        cfg.validate()
        self.generator, self.guidance, self.teacher_probs, self.codebook = generator, guidance, teacher_probs, codebook
        self.L, self.C = sequence_shape
        self.cfg = cfg
        self.num_classes = num_classes
        self.device = codebook.device
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.generator_params = [p for p in generator.parameters() if p.requires_grad]
        self.guidance_params = [p for p in guidance.parameters() if p.requires_grad]
        self.opt_generator = torch.optim.Adam(self.generator_params, lr=cfg.lr_generator, betas=cfg.betas)
        self.opt_guidance = torch.optim.Adam(self.guidance_params, lr=cfg.lr_guidance, betas=cfg.betas)
        self.ema = EMA(generator, cfg.ema_max_rate) if cfg.ema_max_rate > 0 else None
        self.step = 0  # generator updates done

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.rng).to(self.device)

    def _t(self, *shape: int) -> torch.Tensor:
        c = self.cfg
        return sample_t(shape, distribution=c.t_distribution, generator=self.rng, loc=c.t_loc, scale=c.t_scale,
                        t_min=c.t_min, t_max=c.t_max, device=self.device)

    def _set_lr(self) -> None:
        c = self.cfg
        scale = min(1.0, (self.step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        if c.schedule == "cosine" and self.step >= c.warmup_steps:
            frac = min(1.0, (self.step - c.warmup_steps) / max(1, c.total_steps - c.warmup_steps))
            scale = 0.5 * (1 + math.cos(math.pi * frac))
        for opt, lr in ((self.opt_generator, c.lr_generator), (self.opt_guidance, c.lr_guidance)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    def _apply(self, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        opt.step()

    def _labels(self, B: int) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        return torch.randint(self.num_classes, (B,), generator=self.rng).to(self.device)

    def _bound(self, labels: torch.Tensor | None):
        return bind_labels(self.teacher_probs, self.guidance, labels)

    def guidance_update(self) -> dict:
        """One FCS step of ψ on fresh, detached generator samples."""
        B, m = self.cfg.batch_size, self.cfg.noise_draws
        labels = self._labels(B)
        loss, metrics = guidance_step_loss(self.generator, self.guidance, self._randn(B, self.L, self.C), labels,
                                           t=self._t(m * B, self.L), noise=self._randn(m * B, self.L, self.C))
        self._apply(self.opt_guidance, self.guidance_params, loss)
        return metrics

    def generator_update(self) -> dict:
        """One CSD step of G_θ with ψ and the teacher frozen; then the EMA."""
        B = self.cfg.batch_size
        labels = self._labels(B)
        eps = self._randn(B, self.L, self.C)
        with frozen(self.guidance_params):
            loss, metrics = generator_step_loss(self.generator, self.guidance, self.teacher_probs, self.codebook, eps, labels,
                                                t=self._t(B, self.L), noise=self._randn(B, self.L, self.C),
                                                weighting=self.cfg.weighting, detach_inputs=self.cfg.detach_inputs)
            self._apply(self.opt_generator, self.generator_params, loss)
        if self.ema is not None:
            self.ema.update(self.generator, self.step)
        return metrics

    def train_step(self) -> dict:
        """K guidance updates, then one generator update. Returns the last metrics of each."""
        self._set_lr()
        metrics: dict = {}
        for _ in range(self.cfg.guidance_steps):
            metrics.update(self.guidance_update())
        metrics.update(self.generator_update())
        self.step += 1
        return metrics

    def state_dict(self) -> dict:
        return {"step": self.step, "generator": self.generator.state_dict(), "guidance": self.guidance.state_dict(),
                "opt_generator": self.opt_generator.state_dict(), "opt_guidance": self.opt_guidance.state_dict(),
                "ema": self.ema.state_dict() if self.ema else None, "rng": self.rng.get_state(), "config": self.cfg.to_dict()}

    def load_state_dict(self, sd: dict) -> None:
        self.step = int(sd["step"])
        self.generator.load_state_dict(sd["generator"])
        self.guidance.load_state_dict(sd["guidance"])
        self.opt_generator.load_state_dict(sd["opt_generator"])
        self.opt_guidance.load_state_dict(sd["opt_guidance"])
        if self.ema is not None and sd.get("ema") is not None:
            self.ema.load_state_dict(sd["ema"])
        self.rng.set_state(sd["rng"])
