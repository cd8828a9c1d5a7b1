"""One benchmark run: load the models, build the methods, measure speed (and quality), return the document that
`report.write_run` writes. The CLI (`ardistill bench`) is a thin layer over `run_benchmark`."""

from __future__ import annotations

import datetime
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ardistill.bench.methods import BenchMethod
from ardistill.bench.report import SCHEMA, grid_caption
from ardistill.bench.speed import SpeedSettings, environment, run_speed
from ardistill.bench.toy_models import RANDOM_DD2_STUDENT, RANDOM_STUDENTS, write_random_dd2_student, write_random_student
from ardistill.errors import BadArgumentError
from ardistill.generators import ExecutionOptions, GeneratorBuilder, baselines_needing_marginals, parse_baselines

TOY_NUM_CLASSES = 12


@dataclass
class BenchConfig:
    teacher: str
    student: str | None = None
    dd_steps: tuple[int, ...] = (1, 2)
    shipped_students: tuple[str, ...] = ()  # built-in students benched beside, rows `<name>-{K}step` for K ≤ 2 of dd_steps
    drafter: str | None = None
    refiner: str | None = None
    draft_steps: tuple[int, ...] = ()
    baselines: tuple[str, ...] = ()  # naive few-step baselines of the teacher: "skip-K", "onestep"
    marginals_from: str | None = None  # DD trajectory folder whose tokens give the baselines' marginals
    speed: SpeedSettings = field(default_factory=SpeedSettings)
    fid: bool = False
    num_samples: int = 1000
    reference: str | None = None  # FID reference: a name in FID_REFERENCES or a path; None: the toy world's held-out stream
    inception_weights: str | None = None
    random_init: bool = False
    weights_dir: str | None = None
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    seed: int = 0
    fast: bool = False  # the fast sampling loops (see ardistill.sampling.fast)
    compile: str | None = None  # torch.compile mode of the per-step forward


def config_summary(cfg: BenchConfig) -> dict:
    """The JSON-able fields of `cfg` that reproduce its speed part (stored in baselines)."""
    return {"teacher": cfg.teacher, "student": cfg.student, "dd_steps": list(cfg.dd_steps),
            "shipped_students": list(cfg.shipped_students), "drafter": cfg.drafter,
            "refiner": cfg.refiner, "draft_steps": list(cfg.draft_steps), "baselines": list(cfg.baselines), "batch_sizes": list(cfg.speed.batch_sizes),
            "repeats": cfg.speed.repeats, "warmup": cfg.speed.warmup, "seed": cfg.seed, "random_init": cfg.random_init,
            "device": cfg.device, "dtype": str(cfg.dtype).removeprefix("torch."), "fast": cfg.fast, "compile": cfg.compile}


def config_from_summary(d: dict) -> BenchConfig:
    """The inverse of `config_summary` (speed part only)."""
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    speed = SpeedSettings(batch_sizes=tuple(d["batch_sizes"]), warmup=int(d["warmup"]), repeats=int(d["repeats"]), seed=int(d["seed"]))
    return BenchConfig(teacher=d["teacher"], student=d.get("student"), dd_steps=tuple(d.get("dd_steps", (1, 2))),
                       shipped_students=tuple(d.get("shipped_students", ())),
                       drafter=d.get("drafter"), refiner=d.get("refiner"), draft_steps=tuple(d.get("draft_steps", ())),
                       baselines=tuple(d.get("baselines", ())), speed=speed, random_init=bool(d.get("random_init")), device=d.get("device", "cpu"),
                       dtype=dtypes[d.get("dtype", "float32")], seed=int(d["seed"]), fast=bool(d.get("fast", False)), compile=d.get("compile"))


class Progress:
    """What a long run reports: `start(label, total)`, `advance(n)`, `done()`; the default does nothing."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def done(self) -> None: ...


def generator_builder(cfg: BenchConfig) -> GeneratorBuilder:
    """The one builder of the run's generators: the run's execution options, applied the same way to every kind."""
    return GeneratorBuilder(execution=ExecutionOptions(device=cfg.device, dtype=cfg.dtype, fast=cfg.fast, compile=cfg.compile),
                            weights_dir=cfg.weights_dir, random_init=cfg.random_init)


def check_config(cfg: BenchConfig, builder: GeneratorBuilder) -> None:
    """Refuse (one line) what the run's methods cannot do, before any model is loaded: an execution option a kind does
    not take (a DD student has no `--fast` loop, onestep runs no network), CoDe without both models or N."""
    if (cfg.drafter is None) != (cfg.refiner is None):
        raise BadArgumentError("CoDe needs both --drafter and --refiner")
    if cfg.drafter and not cfg.draft_steps:
        raise BadArgumentError("--drafter/--refiner need --draft-steps N[,N...]")
    builder.check("teacher")
    if cfg.student or cfg.shipped_students:
        builder.check("dd")
    if cfg.drafter:
        builder.check("code")
    for name in cfg.baselines:
        builder.check("onestep" if name == "onestep" else "skip")


def load_models(cfg: BenchConfig, builder: GeneratorBuilder | None = None):
    """(teacher, {name: model}) with every model the run needs loaded once, with the run's execution options."""
    from ardistill.bench.toy_models import ensure_benchable

    builder = builder or generator_builder(cfg)
    names = [cfg.teacher] + [n for n in (cfg.drafter, cfg.refiner) if n]
    models = {}
    for name in dict.fromkeys(names):
        if cfg.random_init:
            ensure_benchable(name)
        models[name] = builder.load_teacher(name)
    return models[cfg.teacher], models


def build_all_methods(cfg: BenchConfig, teacher, models: dict, builder: GeneratorBuilder | None = None) -> tuple[list[BenchMethod], list[dict]]:
    """The teacher first (every speed-up is against it), then DD students, then CoDe pairs, then naive baselines, all
    built by one `GeneratorBuilder` (the run's execution options).

    Returns (methods, skipped): a baseline that needs token marginals is skipped, not fatal, when `marginals_from`
    has too few samples of some class (a small smoke-test run); skipped = [{"name", "reason"}] for the report."""
    builder = builder or generator_builder(cfg)
    check_config(cfg, builder)
    methods = [builder.teacher(teacher)]
    if cfg.student in RANDOM_STUDENTS:
        if not cfg.random_init:
            raise BadArgumentError(f"--student {cfg.student} needs --random-init (its numbers are speed only)")
        write = write_random_dd2_student if cfg.student == RANDOM_DD2_STUDENT else write_random_student
        with tempfile.TemporaryDirectory(prefix="ardistill-student-") as tmp:
            students = builder.dd(write(teacher, tmp), teacher=teacher, steps=cfg.dd_steps)
        for m in students:
            m.settings["student"] = cfg.student
        methods += students
    elif cfg.student:
        methods += builder.dd(cfg.student, teacher=teacher, steps=cfg.dd_steps)
    shipped_steps = [k for k in cfg.dd_steps if k <= 2]  # every student samples in 1 and 2 steps (DD: only those)
    for name in cfg.shipped_students if shipped_steps else ():
        methods += builder.dd(name, teacher=teacher, steps=shipped_steps, row=name)
    if cfg.drafter:
        methods += builder.code(models[cfg.drafter], models[cfg.refiner], draft_steps=cfg.draft_steps)
    skipped = []
    if cfg.baselines:
        names = list(cfg.baselines)
        parse_baselines(teacher, names)
        needing = baselines_needing_marginals(teacher, names)
        marginals = None
        if cfg.marginals_from and needing:
            from ardistill.methods.dd.baselines import TokenMarginals, TooFewSamplesError

            try:
                marginals = TokenMarginals.from_trajectories(cfg.marginals_from, teacher)
            except TooFewSamplesError as e:
                skipped = [{"name": n, "reason": f"{e} (trajectories {cfg.marginals_from})"} for n in needing]
                names = [n for n in names if n not in needing]
        if names:
            methods += builder.baselines(teacher, names, marginals=marginals, seed=cfg.seed)
    return methods, skipped


def quality_reference(cfg: BenchConfig, teacher):
    """The loaded FID reference of the run (None: the toy world's built-in evaluation), refused in one line when it
    cannot score the teacher's images; the Inception weights and the sample count are checked here too."""
    from ardistill.bench.quality import inception_weights
    from ardistill.bench.references import FID_REFERENCES, check_reference_fits, open_reference

    if cfg.reference is not None and not cfg.fid:
        raise BadArgumentError("--fid-ref needs --fid")
    if not cfg.fid:
        return None
    if cfg.reference is None:
        if teacher.num_classes != TOY_NUM_CLASSES:
            raise BadArgumentError(f"{teacher.name} is not a toy-world model; --fid needs --fid-ref (adm-imagenet256, "
                                   "dd-imagenet256 or a path)")
        return None
    model = dict(model=teacher.name, image_size=teacher.image_size, num_classes=teacher.num_classes)
    if cfg.reference in FID_REFERENCES:  # refused before any download
        check_reference_fits(FID_REFERENCES[cfg.reference], **model)
    reference = open_reference(cfg.reference, weights_dir=cfg.weights_dir)
    check_reference_fits(reference, **model)
    if cfg.num_samples % teacher.num_classes:
        raise BadArgumentError(f"--num-samples must be a multiple of {teacher.num_classes} for class-balanced samples "
                               "(ImageNet: 50000 = 50 per class)")
    inception_weights(cfg.inception_weights)
    return reference


def run_benchmark(cfg: BenchConfig, *, progress: Progress | None = None,
                  on_grid: Callable[[str, torch.Tensor, str], str] | None = None) -> dict:
    """Measure every method; returns the bench.json document (schema "ardistill.bench/1").

    `on_grid(method name, images [n, 3, H, W], caption)` stores a sample grid and returns its file name; the caption
    names the method, its AR steps and its (toy-)FID (`grid_caption`), so the grids are made after the quality part.
    """
    from ardistill.bench.quality import CHUNK, GeneratedImages, imagenet_quality, toy_quality
    from ardistill.eval.protocol import describe as describe_protocol

    progress = progress or Progress()
    from ardistill.devices import resolve_device

    device = resolve_device(cfg.device)  # "auto" too; an unavailable device is a one-line error
    builder = generator_builder(cfg)
    check_config(cfg, builder)  # an option a method does not take is refused before anything is loaded
    teacher, models = load_models(cfg, builder)
    methods, skipped = build_all_methods(cfg, teacher, models, builder)
    reference = quality_reference(cfg, teacher)  # checked before the speed part: a wrong reference fails fast
    for b in cfg.speed.batch_sizes:
        if b < 1:
            raise BadArgumentError(f"batch sizes must be ≥ 1, got {b}")
    progress.start(f"speed of {len(methods)} methods (repeats × batch sizes)", len(cfg.speed.batch_sizes) * cfg.speed.repeats)
    rows = run_speed(methods, num_classes=teacher.num_classes, device=device, dtype=cfg.dtype, settings=cfg.speed,
                     on_repeat=progress.advance, compile=cfg.compile, fast=cfg.fast)
    progress.done()
    grids, quality = {}, {}
    if cfg.fid:
        toy = reference is None
        for m in methods:
            progress.start(f"quality {m.name}", cfg.num_samples)
            tick = lambda images, _labels: progress.advance(images.shape[0])  # noqa: E731
            if toy:
                quality[m.name] = toy_quality(m, cfg.num_samples, num_classes=teacher.num_classes, image_size=teacher.image_size,
                                              seed=cfg.seed, device=device, on_chunk=tick)
            else:
                quality[m.name] = imagenet_quality(m, cfg.num_samples, num_classes=teacher.num_classes, reference=reference,
                                                   weights=cfg.inception_weights, seed=cfg.seed, device=device, on_chunk=tick)
            progress.done()
    if on_grid is not None:
        for m in methods:
            images, _ = GeneratedImages(m, CHUNK, num_classes=teacher.num_classes, seed=cfg.seed, device=device).chunk(0)
            grids[m.name] = on_grid(m.name, images, grid_caption(m.name, rows, quality))
    note = ("Random-init weights (built-in weights not present or --random-init): speed numbers are valid, quality "
            "numbers are not." if cfg.random_init else "")
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["ardistill", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("ardistill", "__main__.py") else "",
        "teacher": teacher.name,
        "random_init": cfg.random_init,
        "note": note,
        "environment": environment(device, cfg.dtype, compile=cfg.compile, fast=cfg.fast),
        "repeats": cfg.speed.repeats, "warmup": cfg.speed.warmup, "seed": cfg.seed,
        "methods": [{"name": m.name, "kind": m.kind, "x_value": m.x_value, "settings": m.settings} for m in methods],
        "skipped": skipped,
        "speed": rows,
        "quality": quality,
        "quality_protocol": describe_protocol(cfg.num_samples, cfg.seed) if cfg.fid else None,
        "grids": grids,
    }
