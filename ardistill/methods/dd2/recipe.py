"""`kind: dd2-student` recipes (recipes/dd2/*.yaml) → a trained DD2 student folder.

`DD2Recipe` is the schema (checked on load: unknown / missing keys and wrong types are one-line errors naming the
file and the dotted key, see ardistill/recipe_schema.py). `ardistill train --recipe dd2/<name>` and
`ardistill distill --method dd2` run it through `ardistill.methods.dd2.train.train_dd2_student`.

Step counts: `gts.head_steps` / `gts.full_steps` are optimiser steps of the two GTS phases; `csd.steps`,
`csd.warmup_steps`, `csd.ckpt_every`, `csd.log_every`, `alignment.csd_steps` and `eval.every` count *generator*
updates (each one preceded by `csd.guidance_steps` guidance updates); `alignment.guidance_steps` counts ψ updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ardistill.configs import FieldError
from ardistill.recipe_schema import Recipe, TeacherSampling, load_typed_recipe


@dataclass(kw_only=True)
class DD2Network:
    """The generator / guidance network: the teacher's backbone (copied) and an MLP diffusion head."""

    head_width: int = 128
    head_depth: int = 3
    code_scale: float | None = None  # network space = code vectors × code_scale; None: 1 / std of the codebook
    seed: int = 0  # draws the head's initial weights
    # the generator's input (docs/dd2.md decision 23): its head reads x = t·ε at noise level t = generator_t and
    # returns x̂0; its backbone reads generator_prefix_scale·ε (None: generator_t). 1 and 1: the paper's q = ε − v(ε, 1)
    generator_t: float = 1.0
    generator_prefix_scale: float | None = None
    # decision 24: start the generator from a trained DD student of the same teacher (a built-in name such as
    # dd-llamagen-toy, or a student folder) instead of the GTS-tuned network; ψ still starts from GTS. The student
    # runs at split point 0 and is read out as softmax(logits / generator_temperature) @ codebook ("expected") or by
    # its continuous head ("continuous"); see ardistill.models.dd2.from_dd. A DD2 student of this teacher (same head,
    # code scale and distilled sampling) is continued instead: its generator, its own input noise level and prefix
    # scale; ψ from GTS, so let it catch up first (csd.steps: 1, then alignment) — `dd2_student_generator`
    generator_init: str | None = None
    generator_output: Literal["expected", "continuous"] = "expected"
    generator_temperature: float = 1.0


@dataclass(kw_only=True)
class DD2Pool:
    """Teacher samples GTS tunes on: class-balanced labels, batch seeds seed·1_000_003 + first index."""

    num: int = 1024
    seed: int = 7
    batch_size: int = 64
    # keep every sample's per-position distribution [num, L, V] in memory (one teacher pass over the pool), instead of
    # one teacher-forced pass per GTS batch: faster for small teachers, num·L·V·4 bytes of memory
    cache_probs: bool = True


@dataclass(kw_only=True)
class DD2Adaptation:
    """LlamaGen only (its GPT reads token ids): the continuous adaptation before GTS (spec §2). The token embedding
    becomes an MLP on the code vector, fitted to the embedding rows (`fit_steps`, full batch over the codebook), then
    the whole GPT is fine-tuned to the teacher's next-token distributions on the pool's samples (`steps`)."""

    hidden: int = 0  # the MLP's hidden width; 0: 4 × the GPT width
    fit_steps: int = 1000
    fit_lr: float = 3e-3
    steps: int = 200
    lr: float = 1e-4
    batch_size: int = 32
    warmup_steps: int = 20
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0


@dataclass(kw_only=True)
class NoiseLevels:
    """t ~ sigmoid(N(t_loc, t_scale²)) clipped to [t_min, t_max] (logit-normal), or uniform on it."""

    t_distribution: Literal["logit_normal", "uniform"] = "logit_normal"
    t_loc: float = 0.0
    t_scale: float = 1.0
    t_min: float = 0.02
    t_max: float = 0.98


@dataclass(kw_only=True)
class DD2GTS(NoiseLevels):
    """GTS tuning (spec §3): the head alone, then the whole model; Adam, linear warm-up per phase, constant lr."""

    batch_size: int = 32
    noise_draws: int = 2  # (t, ε) draws per sample and position
    head_steps: int = 150
    full_steps: int = 90
    lr_head: float = 1e-3
    lr_full: float = 2e-4
    warmup_steps: int = 20
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"  # autocast of the network passes (the targets stay fp32)
    ckpt_every: int = 50
    log_every: int = 10
    seed: int = 0


@dataclass(kw_only=True)
class DD2CSD(NoiseLevels):
    """Alternating updates (spec §4): `guidance_steps` FCS updates of ψ, then one CSD update of the generator. One
    AdamW (no weight decay) over both networks at one lr; each update moves only the network whose loss it is."""

    steps: int = 500  # generator updates
    batch_size: int = 16
    guidance_steps: int = 2
    noise_draws: int = 2  # m: noise draws per generator sample in the FCS loss
    generator_noise_draws: int = 1  # (t, ε′) draws per generator sample in the CSD loss (docs/dd2.md decision 22)
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 10  # generator updates
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    min_lr_ratio: float = 0.05
    weighting: Literal["none", "dmd"] = "none"
    detach_inputs: bool = True
    grad_clip: float = 0.0  # 0 = off
    ema_decay: float = 0.9999  # of the generator, progressive rate min(decay, (k + 1)/(k + 10)); 0 = none
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"  # autocast of the network passes
    ckpt_every: int = 25  # generator updates
    log_every: int = 5  # generator updates
    seed: int = 0


@dataclass(kw_only=True)
class DD2Alignment:
    """The paper's "performance alignment": after `csd.steps`, the generator's EMA is copied into its weights and ψ
    alone trains `guidance_steps` FCS updates on it (catching up with the generator it scores), then CSD continues
    for `csd_steps` generator updates (batches from a stream of their own; a fresh optimiser state and EMA)."""

    guidance_steps: int = 0  # 0: no alignment
    csd_steps: int = 0


@dataclass(kw_only=True)
class DD2Eval:
    """Toy-FID and class accuracy of 1-step samples during CSD (built-in teachers only), by the evaluation protocol."""

    every: int = 0  # generator updates between evaluations; 0: only at the end
    num: int = 256  # ≥ 4 (precision / recall use 3 nearest neighbours)
    seed: int = 0


@dataclass(kw_only=True)
class DD2Recipe(Recipe):
    """A DD2 student: teacher pool → GTS tuning → alternating CSD / FCS training → the EMA generator."""

    kind: Literal["dd2-student"] = "dd2-student"
    teacher: str  # registered teacher name
    sampling: TeacherSampling = field(default_factory=TeacherSampling)  # the teacher distribution distilled
    network: DD2Network = field(default_factory=DD2Network)
    pool: DD2Pool = field(default_factory=DD2Pool)
    adaptation: DD2Adaptation = field(default_factory=DD2Adaptation)  # LlamaGen teachers only
    gts: DD2GTS = field(default_factory=DD2GTS)
    csd: DD2CSD = field(default_factory=DD2CSD)
    alignment: DD2Alignment = field(default_factory=DD2Alignment)
    eval: DD2Eval = field(default_factory=DD2Eval)
    baselines: tuple[str, ...] = ()  # naive few-step baselines benched beside the student by `distill`

    def check(self) -> None:
        n, g, c, e = self.network, self.gts, self.csd, self.eval
        minimum = {  # dotted key: (value, least allowed)
            "network.head_width": (n.head_width, 1), "network.head_depth": (n.head_depth, 1), "pool.num": (self.pool.num, 1),
            "pool.batch_size": (self.pool.batch_size, 1), "gts.batch_size": (g.batch_size, 1),
            "gts.noise_draws": (g.noise_draws, 1), "gts.head_steps": (g.head_steps, 0), "gts.full_steps": (g.full_steps, 0),
            "gts.warmup_steps": (g.warmup_steps, 0), "gts.ckpt_every": (g.ckpt_every, 1), "gts.log_every": (g.log_every, 1),
            "csd.steps": (c.steps, 1), "csd.batch_size": (c.batch_size, 1), "csd.guidance_steps": (c.guidance_steps, 0),
            "csd.noise_draws": (c.noise_draws, 1), "csd.generator_noise_draws": (c.generator_noise_draws, 1),
            "csd.warmup_steps": (c.warmup_steps, 0), "csd.grad_clip": (c.grad_clip, 0),
            "csd.ema_decay": (c.ema_decay, 0), "csd.ckpt_every": (c.ckpt_every, 1), "csd.log_every": (c.log_every, 1),
            "eval.every": (e.every, 0), "eval.num": (e.num, 4), "eval.seed": (e.seed, 0),
            "alignment.guidance_steps": (self.alignment.guidance_steps, 0),
            "alignment.csd_steps": (self.alignment.csd_steps, 0),
            "adaptation.hidden": (self.adaptation.hidden, 0), "adaptation.fit_steps": (self.adaptation.fit_steps, 0),
            "adaptation.steps": (self.adaptation.steps, 0), "adaptation.batch_size": (self.adaptation.batch_size, 1),
            "adaptation.warmup_steps": (self.adaptation.warmup_steps, 0),
            "adaptation.ckpt_every": (self.adaptation.ckpt_every, 1), "adaptation.log_every": (self.adaptation.log_every, 1),
        }
        for key, (value, least) in minimum.items():
            if value < least:
                raise FieldError(key, f"must be ≥ {least}, got {value}")
        if c.ema_decay >= 1:
            raise FieldError("csd.ema_decay", f"must be < 1, got {c.ema_decay}")
        for name, levels in (("gts", self.gts), ("csd", self.csd)):
            if not 0 < levels.t_min < levels.t_max < 1:
                raise FieldError(f"{name}.t_min", f"need 0 < t_min < t_max < 1, got {levels.t_min}, {levels.t_max}")
        for key, lr in (("gts.lr_head", self.gts.lr_head), ("gts.lr_full", self.gts.lr_full), ("csd.lr", self.csd.lr),
                        ("adaptation.fit_lr", self.adaptation.fit_lr), ("adaptation.lr", self.adaptation.lr)):
            if not lr > 0:
                raise FieldError(key, f"must be > 0, got {lr}")
        if not 0 < n.generator_t <= 1:
            raise FieldError("network.generator_t", f"must be in (0, 1], got {n.generator_t}")
        if n.generator_prefix_scale is not None and not n.generator_prefix_scale >= 0:
            raise FieldError("network.generator_prefix_scale", f"must be ≥ 0 (or left out), got {n.generator_prefix_scale}")
        if n.generator_init is not None:
            if n.generator_t != 1 or n.generator_prefix_scale is not None:
                key = "network.generator_t" if n.generator_t != 1 else "network.generator_prefix_scale"
                raise FieldError(key, "sets the DD2 network generator's input; a generator_init student reads ε as "
                                      "it was trained to (leave it out)")
            if not n.generator_temperature > 0:
                raise FieldError("network.generator_temperature", f"must be > 0, got {n.generator_temperature}")
            if n.generator_output == "continuous" and n.generator_temperature != 1:
                raise FieldError("network.generator_temperature", "is the softmax temperature of the expected read-out; "
                                                                   "the continuous head has none (leave it out)")
        elif n.generator_output != "expected" or n.generator_temperature != 1:
            key = "network.generator_output" if n.generator_output != "expected" else "network.generator_temperature"
            raise FieldError(key, "reads out a DD student generator; set network.generator_init too (or leave it out)")
        if self.network.code_scale is not None and not self.network.code_scale > 0:
            raise FieldError("network.code_scale", f"must be > 0 (or left out), got {self.network.code_scale}")


def load_dd2_recipe(recipe: str | Path | DD2Recipe) -> DD2Recipe:
    """A DD2 recipe by name or path (checked), or one already loaded."""
    return recipe if isinstance(recipe, DD2Recipe) else load_typed_recipe(recipe, DD2Recipe)


__all__ = ["DD2Recipe", "DD2Network", "DD2Pool", "DD2Adaptation", "DD2Alignment", "DD2GTS", "DD2CSD", "DD2Eval", "NoiseLevels", "load_dd2_recipe"]
