"""DD2's main training iteration (spec §4): K updates of the guidance network ψ, then one of the generator G_θ.

Generic over modules and callables, never model names:
- `generator`: an `nn.Module` mapping a noise sequence ε `[B, L, C]` to clean tokens q `[B, L, C]` in one forward;
- `guidance`: an `nn.Module` with the `Guidance` signature of `losses.py`, (x, t, prefix) → x̂0;
- `teacher_probs`: the `TeacherProbs` callable of `losses.py` (frozen, no parameters trained here).

All randomness (ε, t, the fresh noise of both losses) is drawn on the CPU from one `torch.Generator` seeded by
`cfg.seed`, so a run is a function of the seed and the initial weights (bit-identical on CPU). The generator's EMA uses
the paper's progressive rate min(max, (k + 1)/(k + 10)) (`ardistill.training.loop.EMA` implements exactly that).
Checkpointing / resume / logging belong to the per-family pipeline (not built yet); `state_dict` is here for it.
"""

from __future__ import annotations

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


class DD2Trainer:
    """Holds the two networks, their Adam optimisers, the generator's EMA and the random stream.

    Args:
        sequence_shape: (L, C) of one noise / token sequence.
        codebook: `[V, C]` the teacher's code vectors (its device is the training device).
    """

    def __init__(self, generator: torch.nn.Module, guidance: torch.nn.Module, teacher_probs: TeacherProbs, codebook: torch.Tensor,
                 sequence_shape: tuple[int, int], cfg: DD2Config = DD2Config()):
        cfg.validate()
        self.generator, self.guidance, self.teacher_probs, self.codebook = generator, guidance, teacher_probs, codebook
        self.L, self.C = sequence_shape
        self.cfg = cfg
        self.device = codebook.device
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.opt_generator = torch.optim.Adam(generator.parameters(), lr=cfg.lr_generator, betas=cfg.betas)
        self.opt_guidance = torch.optim.Adam(guidance.parameters(), lr=cfg.lr_guidance, betas=cfg.betas)
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

    def _apply(self, opt: torch.optim.Optimizer, module: torch.nn.Module, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.cfg.grad_clip)
        opt.step()

    def guidance_update(self) -> dict:
        """One FCS step of ψ on fresh, detached generator samples."""
        B, m = self.cfg.batch_size, self.cfg.noise_draws
        with torch.no_grad():
            q = self.generator(self._randn(B, self.L, self.C))
        loss, metrics = fcs_guidance_loss(self.guidance, q, t=self._t(m * B, self.L), noise=self._randn(m * B, self.L, self.C))
        self._apply(self.opt_guidance, self.guidance, loss)
        return metrics

    def generator_update(self) -> dict:
        """One CSD step of G_θ with ψ and the teacher frozen; then the EMA."""
        B = self.cfg.batch_size
        q = self.generator(self._randn(B, self.L, self.C))
        self.guidance.requires_grad_(False)
        try:
            loss, metrics = csd_generator_loss(q, self.teacher_probs, self.guidance, self.codebook, t=self._t(B, self.L),
                                               noise=self._randn(B, self.L, self.C), weighting=self.cfg.weighting,
                                               detach_inputs=self.cfg.detach_inputs)
            self._apply(self.opt_generator, self.generator, loss)
        finally:
            self.guidance.requires_grad_(True)
        if self.ema is not None:
            self.ema.update(self.generator, self.step)
        metrics["csd"] = float(loss.detach())
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
