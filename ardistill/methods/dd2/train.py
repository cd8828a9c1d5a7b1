"""Training a DD2 student from a `dd2-student` recipe, every stage through the shared loop
(`ardistill.training.loop.train_loop`: resumable, NaN stop, Ctrl-C / SIGTERM checkpoints, torchrun data parallel).

Stages, each in its own sub-folder of the output folder OUT, each resumed where it stopped:

1. `pool.pt`: `pool.num` class-balanced teacher samples (tokens `[N, L]`, labels `[N]`) at the distilled sampling
   settings (`gts.make_teacher_pool`; rank 0 makes it, written atomically). Their per-position distributions
   `[N, L, V]` are recomputed from the tokens (one teacher-forced pass, `pool.cache_probs`) or per batch.
   LlamaGen: `adapt-fit/`, `adapt/`: the continuous adaptation (`ardistill.methods.dd2.llamagen`).
2. `gts-head/`, `gts-full/`: GTS tuning (spec §3) of one network, the head alone (backbone frozen), then all of it.
3. `csd/`: generator G and guidance ψ, both copies of the tuned network, trained by alternating updates (spec §4):
   optimiser steps s with s mod (K + 1) < K update ψ by the FCS loss on detached generator samples; the others
   update G by the CSD loss with ψ frozen. One AdamW over both networks at one lr: an update gives gradients to one
   network only, and AdamW skips parameters without one, so each network's moments see only its own updates
   (decision 17, docs/dd2.md). The EMA averages G only, after generator updates, at the progressive rate counted in
   generator updates.
   Optional (`alignment`): the paper's performance alignment — `align/`: the EMA generator, ψ alone trained on it;
   `csd-2/`: more CSD.
4. OUT/student.safetensors + student.json: the EMA generator as a `DD2Student`.

Every batch is a pure function of (stage, seed, step, micro-step): labels, sample indices, noise levels t and noise ε
are drawn from a CPU generator seeded by `batch_seed`, batch-first (`[B, ...]`, the m noise draws as a second
dimension) so that the loop's per-rank slicing gives each rank its share and the run does not depend on the number of
processes (up to floating-point noise).

Shapes: B batch, m noise draws, L tokens, C code dimension, V codebook size.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from ardistill import distributed
from ardistill.errors import ArdistillError
from ardistill.io import atomic_torch_save
from ardistill.methods.dd2.alternating import frozen, generator_step_loss, guidance_step_loss
from ardistill.methods.dd2.family import family_adapter
from ardistill.methods.dd2.gts import TeacherPool, gts_loss, make_teacher_pool
from ardistill.methods.dd2.losses import sample_t
from ardistill.methods.dd2.recipe import DD2Adaptation, DD2Network, DD2Recipe, NoiseLevels
from ardistill.methods.dd2.student import DD2Student, DD2StudentConfig
from ardistill.models.dd2.from_dd import DDStudentGenerator
from ardistill.registry import is_builtin_model
from ardistill.training.loop import TrainConfig, batch_seed, train_loop

POOL_FILE = "pool.pt"


class GeneratorAndGuidance(nn.Module):
    """The two networks CSD trains, as one module for the shared loop (one optimiser, one checkpoint)."""

    def __init__(self, generator: nn.Module, guidance: nn.Module):
        super().__init__()
        self.generator, self.guidance = generator, guidance


def _noise_levels(levels: NoiseLevels, shape: tuple[int, ...], g: torch.Generator, device) -> torch.Tensor:
    return sample_t(shape, distribution=levels.t_distribution, generator=g, loc=levels.t_loc, scale=levels.t_scale,
                    t_min=levels.t_min, t_max=levels.t_max, device=device)


def _draws_first(x: torch.Tensor) -> torch.Tensor:
    """`[B, m, ...]` → `[m·B, ...]` with draw r of sample b at row r·B + b (the layout of the DD2 losses)."""
    return x.transpose(0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _batch_draws(x: torch.Tensor, single_dims: int) -> torch.Tensor:
    """A generator step's t (`single_dims` 2) or noise (3): `[B, ...]` as drawn for one draw, `[B, m, ...]` → `[m·B, ...]`."""
    return x if x.dim() == single_dims else _draws_first(x)


# ---------------------------------------------------------------------------------------------------------- pool
def pool_settings(recipe: DD2Recipe, family) -> dict:
    """What a pool depends on (checked when a run resumes on an existing one)."""
    return {"teacher": family.teacher.name, "num": recipe.pool.num, "seed": recipe.pool.seed,
            "batch_size": recipe.pool.batch_size, "sampling": {k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in family.settings.items()}}


def load_or_make_pool(family, recipe: DD2Recipe, path: Path, *, log=print, progress: bool = False) -> TeacherPool:
    """The teacher pool at `path`, made first (rank 0, atomic write) when missing. probs are filled when
    `pool.cache_probs`, else left empty (`[0]`) for per-batch computation."""
    settings = pool_settings(recipe, family)
    if distributed.is_main() and not path.is_file():
        t0 = time.perf_counter()
        log(f"teacher pool: {recipe.pool.num} samples of {family.teacher.name} → {path}")
        pool = make_teacher_pool(family, recipe.pool.num, seed=recipe.pool.seed, batch_size=recipe.pool.batch_size,
                                 keep_probs=False, progress=progress)
        atomic_torch_save({"labels": pool.labels, "tokens": pool.tokens, "settings": settings,
                           "seconds": time.perf_counter() - t0}, path)
    distributed.barrier()
    saved = torch.load(path, weights_only=True)
    if saved.get("settings") != settings:
        raise ArdistillError(f"{path} was made with other settings ({saved.get('settings')}); use another output folder")
    probs = torch.zeros(0)
    if recipe.pool.cache_probs:
        probs = torch.cat([family.sampling_probs(saved["labels"][i:i + recipe.pool.batch_size],
                                                 saved["tokens"][i:i + recipe.pool.batch_size]).cpu()
                           for i in range(0, saved["tokens"].shape[0], recipe.pool.batch_size)])
    return TeacherPool(saved["labels"], saved["tokens"], probs)


# ----------------------------------------------------------------------------------------------------------- GTS
class GTSBatches:
    """(step, micro) → {labels [B], tokens [B, L], probs [B, L, V] (when cached), t [B, m, L], noise [B, m, L, C]}."""

    def __init__(self, pool: TeacherPool, recipe: DD2Recipe, family, phase: str, grad_accum: int = 1):
        self.pool, self.gts, self.phase, self.grad_accum = pool, recipe.gts, phase, grad_accum
        self.L, self.C, self.device = family.tokens_per_image, family.code_dim, family.device

    def __call__(self, step: int, micro: int) -> dict:
        g = torch.Generator().manual_seed(batch_seed("dd2-gts", self.phase, self.gts.seed, step * self.grad_accum + micro))
        B, m = self.gts.batch_size, self.gts.noise_draws
        idx = torch.randint(self.pool.tokens.shape[0], (B,), generator=g)
        batch = {"labels": self.pool.labels[idx], "tokens": self.pool.tokens[idx],
                 "t": _noise_levels(self.gts, (B, m, self.L), g, "cpu"), "noise": torch.randn(B, m, self.L, self.C, generator=g)}
        if self.pool.probs.numel():
            batch["probs"] = self.pool.probs[idx]
        return {k: v.to(self.device) for k, v in batch.items()}


def gts_phase(net, family, pool: TeacherPool, recipe: DD2Recipe, phase: str, out_dir: Path, *, resume: bool,
              progress: bool):
    """One GTS phase ("head": the head alone, backbone features without gradient; "full": every parameter)."""
    g = recipe.gts
    steps, lr = (g.head_steps, g.lr_head) if phase == "head" else (g.full_steps, g.lr_full)
    cfg = TrainConfig(steps=steps, lr=lr, betas=(0.9, 0.95), warmup_steps=g.warmup_steps, schedule="constant",
                      grad_clip=0.0, ckpt_every=g.ckpt_every, log_every=g.log_every, seed=g.seed,
                      mixed_precision=g.mixed_precision)

    def loss_fn(batch: dict, step: int):
        probs = batch.get("probs")
        if probs is None:
            probs = family.sampling_probs(batch["labels"], batch["tokens"])
        return gts_loss(net, family, batch["labels"], batch["tokens"], probs, t=_draws_first(batch["t"]),
                        noise=_draws_first(batch["noise"]), backbone_grad=phase == "full")

    params = list(net.head.parameters()) if phase == "head" else [p for p in net.parameters() if p.requires_grad]
    return train_loop(model=net, loss_fn=loss_fn, get_batch=GTSBatches(pool, recipe, family, phase), cfg=cfg,
                      out_dir=out_dir, resume=resume, params=params, progress=progress,
                      description=f"DD2 GTS tuning ({phase})", extra_state={"recipe": recipe.source, "phase": phase})


# ----------------------------------------------------------------------------------------------------------- CSD
class CSDBatches:
    """(step, micro) → {labels [B], eps [B, L, C], t, noise}: guidance steps t [B, m, L], noise [B, m, L, C];
    generator steps t [B, L], noise [B, L, C] (with `generator_noise_draws` m_G > 1: [B, m_G, L], [B, m_G, L, C]). Labels uniform over the classes (none for an unconditional teacher).
    `stream` names the random stream (each CSD segment has its own); `only_guidance`: every step a ψ update."""

    def __init__(self, recipe: DD2Recipe, family, grad_accum: int = 1, *, stream: str = "dd2-csd", only_guidance: bool = False):
        self.csd, self.grad_accum, self.stream, self.only_guidance = recipe.csd, grad_accum, stream, only_guidance
        self.L, self.C, self.num_classes, self.device = family.tokens_per_image, family.code_dim, family.num_classes, family.device

    def is_guidance_step(self, step: int) -> bool:
        return self.only_guidance or step % (self.csd.guidance_steps + 1) < self.csd.guidance_steps

    def __call__(self, step: int, micro: int) -> dict:
        g = torch.Generator().manual_seed(batch_seed(self.stream, self.csd.seed, step * self.grad_accum + micro))
        B = self.csd.batch_size
        m = self.csd.noise_draws if self.is_guidance_step(step) else self.csd.generator_noise_draws
        draws = (B, m) if self.is_guidance_step(step) or m > 1 else (B,)  # (B,): the layout of runs before decision 22
        batch = {"labels": torch.randint(max(1, self.num_classes), (B,), generator=g),
                 "eps": torch.randn(B, self.L, self.C, generator=g),
                 "t": _noise_levels(self.csd, (*draws, self.L), g, "cpu"),
                 "noise": torch.randn(*draws, self.L, self.C, generator=g)}
        return {k: v.to(self.device) for k, v in batch.items()}


def csd_train_config(recipe: DD2Recipe, steps: int | None = None) -> TrainConfig:
    """The loop's config: generator-update counts of the recipe (`steps`: this segment's, default csd.steps) × (K + 1)
    optimiser steps."""
    c = recipe.csd
    per = c.guidance_steps + 1
    return TrainConfig(steps=(c.steps if steps is None else steps) * per, lr=c.lr, weight_decay=0.0, betas=c.betas, warmup_steps=c.warmup_steps * per,
                       schedule=c.schedule, min_lr_ratio=c.min_lr_ratio, grad_clip=c.grad_clip, ema_decay=c.ema_decay,
                       ckpt_every=c.ckpt_every * per, log_every=c.log_every * per, seed=c.seed,
                       mixed_precision=c.mixed_precision)


def student_config(recipe: DD2Recipe, family, generator: nn.Module) -> DD2StudentConfig:
    """The card's typed part for `generator` (a DD2 network: its input noise level and prefix scale as it resolved
    them; a DD student generator: its read-out)."""
    n = recipe.network
    arch = {"generator_arch": "dd-student", "generator_output": generator.output,
            "generator_temperature": generator.temperature} if isinstance(generator, DDStudentGenerator) else \
        {"generator_t": generator.generator_t, "generator_prefix_scale": generator.generator_prefix_scale}
    return DD2StudentConfig(family=family.teacher.family, teacher=family.teacher.name, code_scale=family.code_scale,
                            head_width=n.head_width, head_depth=n.head_depth,
                            sampling={k: list(v) if isinstance(v, tuple) else v for k, v in family.settings.items()},
                            embedding_hidden=family.embedding_hidden, **arch)


def dd_student_generator(family, network: DD2Network) -> DDStudentGenerator:
    """The generator of decision 24: the DD student `network.generator_init` names (built-in name or folder; it
    must distil this teacher), loaded in fp32 and read out as the recipe says."""
    from ardistill.methods.dd.student import find_student, load_student

    teacher, name = family.teacher, network.generator_init
    try:
        source = find_student(name, teacher_name=teacher.name)  # a DD2 student folder is refused here
    except ArdistillError as e:
        raise ArdistillError(f"network.generator_init: {e}") from None
    if source.config.teacher != teacher.name:
        raise ArdistillError(f"network.generator_init: {name} distils {source.config.teacher}, not {teacher.name}")
    student = load_student(source, teacher=teacher, dtype=torch.float32)
    model = student.model.float().train().requires_grad_(True)
    return DDStudentGenerator(model, teacher.codebook, family.code_scale, output=network.generator_output,
                              temperature=network.generator_temperature)


def dd2_student_generator(family, recipe: DD2Recipe, net: nn.Module) -> nn.Module:
    """A trained DD2 student's generator, to train further: `network.generator_init` names a DD2 student (built-in
    name or folder) of this teacher, whose card must agree with the recipe on what the generator is (head, code
    scale, distilled sampling); the generator is built from `net` (the GTS-tuned network, for its architecture) with
    the card's input noise level and prefix scale, then given the student's weights. ψ still starts from GTS, so a
    recipe that continues a student should let ψ catch up first (`alignment`). None when `generator_init` is not a
    DD2 student."""
    from ardistill.io import load_state_dict_file, load_strict
    from ardistill.methods.dd2.student import STUDENT_WEIGHTS, is_dd2_student_dir, read_dd2_card
    from ardistill.registry import PACKAGE_WEIGHTS

    n, teacher = recipe.network, family.teacher
    folder = Path(n.generator_init)
    if not folder.is_dir() and folder.name == n.generator_init:  # a plain name: a built-in student's folder
        folder = PACKAGE_WEIGHTS / n.generator_init
    if not is_dd2_student_dir(folder):
        return None
    config, _ = read_dd2_card(folder)
    where = f"network.generator_init: {n.generator_init}"
    if config.teacher != teacher.name:
        raise ArdistillError(f"{where} distils {config.teacher}, not {teacher.name}")
    if config.generator_arch != "dd2-net":
        raise ArdistillError(f"{where} is a DD2 student started from a DD student; continue it from its own recipe")
    if n.generator_output != "expected" or n.generator_temperature != 1:
        raise ArdistillError(f"{where} is a DD2 student; network.generator_output / generator_temperature read out DD "
                             "students (leave them out)")
    mine = {"head_width": n.head_width, "head_depth": n.head_depth, "code_scale": family.code_scale,
            "sampling": dict(family.settings), "embedding_hidden": family.embedding_hidden}
    theirs = {k: getattr(config, k) for k in mine}
    theirs["sampling"] = {k: tuple(v) if isinstance(v, list) else v for k, v in theirs["sampling"].items()}
    for key in mine:
        same = abs(mine[key] - theirs[key]) <= 1e-6 * abs(mine[key]) if key == "code_scale" else mine[key] == theirs[key]
        if not same:
            raise ArdistillError(f"{where} has {key} {theirs[key]}, this recipe {mine[key]}; they must agree")
    generator = family.generator_from(net, noise_level=config.generator_t, prefix_scale=config.generator_prefix_scale)
    weights = folder / STUDENT_WEIGHTS
    load_strict(generator, {k: v.float() for k, v in load_state_dict_file(weights).items()}, what=str(weights))
    return generator


def toy_eval_fn(family, recipe: DD2Recipe, config: DD2StudentConfig, *, generator_offset: int = 0):
    """(pair, step) → toy-FID, class accuracy, KID, precision / recall of `eval.num` 1-step samples of the generator
    (the EMA weights during training) by the evaluation protocol: what `ardistill bench --student OUT --dd-steps 1
    --fid --num-samples num --seed seed` gives for the saved student."""
    from ardistill.eval.protocol import student_generator, toy_quality

    teacher, per = family.teacher, recipe.csd.guidance_steps + 1

    def run(pair: GeneratorAndGuidance, step: int) -> dict:
        student = DD2Student(pair.generator, teacher, config)
        q = toy_quality(student_generator(student), recipe.eval.num, seed=recipe.eval.seed, image_size=teacher.image_size,
                        num_classes=teacher.num_classes, device=teacher.device, across_ranks=False)
        return {"generator_steps": generator_offset + step // per, "fid": q["fid"], "class_acc": q["class_accuracy"], "kid_mean": q["kid_mean"],
                "precision": q["precision"], "recall": q["recall"]}

    return run


def _csd_loss(pair: GeneratorAndGuidance, family, recipe: DD2Recipe, batches: CSDBatches):
    """(batch, step) → (loss, metrics) of one alternating step: FCS on ψ, or CSD on G with ψ frozen."""
    c = recipe.csd
    guidance_params = [p for p in pair.guidance.parameters() if p.requires_grad]
    conditional = family.num_classes > 0
    last_fcs = {"fcs": float("nan")}

    def loss_fn(batch: dict, step: int):
        labels = batch["labels"] if conditional else None
        if batches.is_guidance_step(step):
            loss, metrics = guidance_step_loss(pair.generator, pair.guidance, batch["eps"], labels,
                                               t=_draws_first(batch["t"]), noise=_draws_first(batch["noise"]))
            last_fcs["fcs"] = float(loss.detach())
            return loss, {"fcs": last_fcs["fcs"]}
        # ψ frozen while the graph is built: the backward after this function then reaches the generator only
        with frozen(guidance_params):
            loss, metrics = generator_step_loss(pair.generator, pair.guidance, family.teacher_probs, family.codebook,
                                                batch["eps"], labels, t=_batch_draws(batch["t"], 2), noise=_batch_draws(batch["noise"], 3),
                                                weighting=c.weighting, detach_inputs=c.detach_inputs)
        return loss, {"csd": metrics["csd"], "fcs": last_fcs["fcs"]}

    return loss_fn


def csd_stage(pair: GeneratorAndGuidance, family, recipe: DD2Recipe, config: DD2StudentConfig, out_dir: Path, *,
              resume: bool, progress: bool, steps: int | None = None, stream: str = "dd2-csd", generator_offset: int = 0):
    """One CSD segment of `steps` generator updates (default csd.steps); on return the generator holds its EMA."""
    c = recipe.csd
    steps = c.steps if steps is None else steps
    per = c.guidance_steps + 1
    batches = CSDBatches(recipe, family, stream=stream)
    eval_fn = toy_eval_fn(family, recipe, config, generator_offset=generator_offset) if is_builtin_model(family.teacher.name) else None
    return train_loop(model=pair, loss_fn=_csd_loss(pair, family, recipe, batches), get_batch=batches,
                      cfg=csd_train_config(recipe, steps), out_dir=out_dir, resume=resume, eval_fn=eval_fn,
                      eval_every=recipe.eval.every * per, progress=progress,
                      description=f"DD2 CSD ({steps} generator steps)",
                      extra_state={"recipe": recipe.source, "generator_steps": steps},
                      ema_module=pair.generator, ema_step=lambda s: s // per if s % per == 0 else None)


def alignment_stage(pair: GeneratorAndGuidance, family, recipe: DD2Recipe, out_dir: Path, *, resume: bool, progress: bool):
    """Performance alignment: ψ alone, `alignment.guidance_steps` FCS updates on the (EMA) generator's samples."""
    c = recipe.csd
    batches = CSDBatches(recipe, family, stream="dd2-align", only_guidance=True)
    cfg = TrainConfig(steps=recipe.alignment.guidance_steps, lr=c.lr, weight_decay=0.0, betas=c.betas, schedule="constant",
                      grad_clip=c.grad_clip, ckpt_every=c.ckpt_every * (c.guidance_steps + 1),
                      log_every=c.log_every * (c.guidance_steps + 1), seed=c.seed, mixed_precision=c.mixed_precision)
    return train_loop(model=pair, loss_fn=_csd_loss(pair, family, recipe, batches), get_batch=batches, cfg=cfg,
                      out_dir=out_dir, resume=resume, params=[p for p in pair.guidance.parameters() if p.requires_grad],
                      progress=progress, description="DD2 performance alignment (guidance only)",
                      extra_state={"recipe": recipe.source})


def adapted_teacher_quality(family, recipe: DD2Recipe) -> dict:
    """{"adapted_fid", "adapted_class_acc"}: the adapted teacher (LlamaGen) by the evaluation protocol, `eval.num`
    images at `eval.seed`, sampled at the distilled settings, to compare with the teacher's own numbers."""
    from ardistill.eval.protocol import GeneratorFns, toy_quality

    adapted = family.adapted_teacher()
    sample = GeneratorFns(lambda labels, seed: adapted.sample(labels, seed=seed, **family.settings), adapted.decode)
    q = toy_quality(sample, recipe.eval.num, seed=recipe.eval.seed, image_size=adapted.image_size,
                    num_classes=adapted.num_classes, device=adapted.device, across_ranks=False)
    return {"adapted_fid": q["fid"], "adapted_class_acc": q["class_accuracy"], "eval_num": recipe.eval.num}


# ---------------------------------------------------------------------------------------------------- the whole
def train_dd2_student(teacher, recipe: DD2Recipe, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
                      log=print) -> DD2Student:
    """Run (or, with `resume`, continue) every stage of `recipe` on the loaded `teacher` (the recipe's teacher, loaded
    by the caller); writes OUT/student.safetensors + student.json and returns the student (EMA generator)."""
    if teacher.name != recipe.teacher:
        raise ArdistillError(f"{recipe.source or 'the recipe'} distils {recipe.teacher!r}, not {teacher.name!r}")
    out = Path(out_dir)
    if not resume and (out / POOL_FILE).is_file():
        raise ArdistillError(f"{out} holds a DD2 run already; pass --resume to continue it or choose another output folder")
    distributed.barrier()  # every rank has looked before rank 0 makes the pool
    out.mkdir(parents=True, exist_ok=True)
    family = family_adapter(teacher, code_scale=recipe.network.code_scale, **recipe.sampling.to_dict())
    if not family.needs_adaptation and recipe.adaptation != DD2Adaptation():
        raise ArdistillError(f"{recipe.source or 'the recipe'}: adaptation: {teacher.family} teachers read code vectors "
                             "already; the section is for LlamaGen teachers (remove it)")
    t0 = time.perf_counter()
    pool = load_or_make_pool(family, recipe, out / POOL_FILE, log=log, progress=progress)
    pool_seconds = float(torch.load(out / POOL_FILE, weights_only=True).get("seconds", 0.0))
    adaptation = {}
    if family.needs_adaptation:
        folder = out / "adapt"
        adaptation = family.adapt(pool.tokens, pool.labels, recipe.adaptation, folder, resume=resume, progress=progress)
        if is_builtin_model(teacher.name) and distributed.is_main():
            adaptation.update(adapted_teacher_quality(family, recipe))
    net = family.new_network(head_width=recipe.network.head_width, head_depth=recipe.network.head_depth,
                             seed=recipe.network.seed)
    gts_seconds, gts_losses = 0.0, {}
    for phase in ("head", "full"):
        if (recipe.gts.head_steps if phase == "head" else recipe.gts.full_steps) == 0:
            continue
        folder = out / f"gts-{phase}"
        result = gts_phase(net, family, pool, recipe, phase, folder, resume=resume or (folder / "checkpoint.pt").is_file(),
                           progress=progress)
        gts_seconds += result.seconds
        gts_losses[phase] = result.losses
    del pool
    n = recipe.network
    generator = (dd2_student_generator(family, recipe, net) or dd_student_generator(family, n)) if n.generator_init else \
        family.generator_from(net, noise_level=n.generator_t, prefix_scale=n.generator_prefix_scale)
    pair = GeneratorAndGuidance(generator, family.guidance_from(net))
    del net
    config = student_config(recipe, family, pair.generator)
    def again(folder: str) -> bool:
        return resume or (out / folder / "checkpoint.pt").is_file()

    result = csd_stage(pair, family, recipe, config, out / "csd", resume=again("csd"), progress=progress)
    csd_seconds, evals, last_loss = result.seconds, list(result.evals), result.last_loss
    a = recipe.alignment
    if a.guidance_steps:
        csd_seconds += alignment_stage(pair, family, recipe, out / "align", resume=again("align"), progress=progress).seconds
    if a.csd_steps:
        result = csd_stage(pair, family, recipe, config, out / "csd-2", resume=again("csd-2"), progress=progress,
                           steps=a.csd_steps, stream="dd2-csd-2", generator_offset=recipe.csd.steps)
        csd_seconds += result.seconds
        evals += result.evals
        last_loss = result.last_loss
    student = DD2Student(pair.generator, teacher, config, name=out.name)
    if distributed.is_main():
        student.save(out, extra={"recipe": recipe.source, "name": recipe.run_name,
                                 "generator_steps": recipe.csd.steps + a.csd_steps, "alignment_steps": a.guidance_steps,
                                 "generator_init": n.generator_init,
                                 "last_loss": last_loss, "evals": evals, "seconds": {
                                     "pool": pool_seconds, "adaptation": adaptation.get("seconds", 0.0), "gts": gts_seconds,
                                     "csd": csd_seconds,
                                     "total": pool_seconds + adaptation.get("seconds", 0.0) + gts_seconds + csd_seconds},
                                 "gts_losses": gts_losses, "adaptation": adaptation,
                                 "this_process_seconds": time.perf_counter() - t0})
    distributed.barrier()
    return student


__all__ = ["GeneratorAndGuidance", "GTSBatches", "CSDBatches", "csd_train_config", "load_or_make_pool", "gts_phase",
           "csd_stage", "alignment_stage", "student_config", "dd_student_generator", "dd2_student_generator", "train_dd2_student", "POOL_FILE"]
