"""`ardistill sample`: images (and optionally tokens) from any generator: a teacher, a DD student, a CoDe pair, a baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import (CompileOption, DeviceOption, DtypeOption, FastOption, RenamedOption, UpscaleOption, WeightsDirOption, console, out_path,
                                  parse_int_list, parse_number_list)


def sample_command(
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Registered model name (see `ardistill models`) or a checkpoint path.", show_default=False),
    student: Optional[str] = typer.Option(None, "--student", help="Sample with a DD student instead: a folder from `ardistill train` or a name like dd-var-d16 (its teacher decodes; --teacher overrides it).", show_default=False),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Student steps (only with --student; default 1): DD 1 or 2; DD2 1 … the teacher's AR steps (one generator pass, then the teacher's last K − 1 AR steps).", show_default=False),
    teacher_start: Optional[int] = typer.Option(None, "--teacher-start", min=0, help="Teacher-involved DD sampling (with --student): the student makes AR steps < S, the teacher its steps S … t₂ − 1 (with --cfg/--top-k/...), then one student step at t₂.", show_default=False),
    split: Optional[int] = typer.Option(None, "--split", min=0, help="Teacher-involved DD sampling: positions before this AR step are argmax codes in the last student step (default: the student's split, at least t₂).", show_default=False),
    drafter: Optional[str] = typer.Option(None, "--drafter", help="CoDe: the large VAR that drafts scales < N (with --refiner, --draft-steps).", show_default=False),
    refiner: Optional[str] = typer.Option(None, "--refiner", help="CoDe: the small VAR (same tokenizer) that makes scales ≥ N.", show_default=False),
    draft_steps: Optional[int] = typer.Option(None, "--draft-steps", min=0, help="CoDe: scales made by the drafter (0 = refiner alone, K = drafter alone)."),
    finetuned: Optional[Path] = typer.Option(None, "--finetuned", help="CoDe: a folder from `ardistill code finetune` (its pair and weights).", show_default=False),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="A naive few-step baseline of --teacher: skip-K (its last K AR steps in one parallel step) or onestep (independent tokens from the teacher's per-class marginals, estimated from 100 of its samples per class).", show_default=False),
    classes: Optional[str] = typer.Option(None, "--class", "-c", help="Class id, or a comma-separated list cycled over the images (default: 0, 1, 2, … cycled over the model's classes)."),
    num: int = typer.Option(8, "--num-images", "-n", min=1, help="Number of images."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler's random generator: same seed, same images."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Classifier-free guidance scale (default: the model's); refused where nothing samples with guidance (1/2-step DD students, onestep)."),
    top_k: Optional[str] = typer.Option(None, "--top-k", help="Keep the k most likely tokens (0 = off); VAR: one value or one per scale."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Nucleus sampling: keep the smallest set with this much probability."),
    temperature: Optional[str] = typer.Option(None, "--temperature", help="Softmax temperature; VAR: one value or one per scale."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Images per forward batch."),
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help="PNG grid to write."),
    save_tokens: bool = typer.Option(False, "--save-tokens", help="Also write OUT.tokens.safetensors with tokens [N, L] and labels [N] (DD students: the nearest codes of the decoded vectors)."),
    nrow: Optional[int] = typer.Option(None, "--nrow", min=1, help="Images per grid row (default: ≈√N)."),
    upscale: Optional[int] = UpscaleOption,
    weights_dir: Optional[str] = WeightsDirOption,
    vae: Optional[Path] = typer.Option(None, "--vae", help="Tokenizer checkpoint of --teacher (default: the registered file)."),
    random_init: bool = typer.Option(False, "--random-init", help="Use randomly initialised weights (no files needed; for smoke tests)."),
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    fast: bool = FastOption,
    compile: str = CompileOption,
    old_t: Optional[str] = RenamedOption("-t", "--teacher"),
    old_num: Optional[str] = RenamedOption("--num", "--num-images"),
) -> None:
    """Sample images with a teacher, a DD student, a CoDe pair or a naive baseline and write them as a PNG grid.

    Every generator is built by `ardistill.generators.GeneratorBuilder`: --dtype/--fast/--compile and --cfg/--top-k/
    --top-p/--temperature apply the same way to every kind, or are refused in one line where a kind does not take them.
    The default is the exact fp32 reference path; --fast, --dtype bf16 and --compile auto make it faster.

    Example: ardistill sample --teacher var-d16 --class 207 --num-images 8 --seed 0 --cfg 1.5 --top-k 900 --top-p 0.95 --out grid.png
    """
    import json

    import torch

    from ardistill.errors import ArdistillError, BadArgumentError
    from ardistill.generators import ExecutionOptions, GeneratorBuilder, SamplingOptions
    from ardistill.images import save_grid
    from ardistill.io import atomic_save_safetensors
    from ardistill.teachers.base import check_labels

    out = out_path(out)
    tokens_path = out.with_suffix(".tokens.safetensors")
    if save_tokens:
        out_path(tokens_path)
    builder = GeneratorBuilder(
        execution=ExecutionOptions(device=device, dtype=dtype, fast=fast, compile=compile),
        sampling=SamplingOptions(cfg=cfg, top_k=parse_number_list(top_k, "--top-k", int), top_p=top_p,
                                 temperature=parse_number_list(temperature, "--temperature")),
        weights_dir=weights_dir, random_init=random_init)
    code = drafter is not None or refiner is not None or finetuned is not None

    def only_with(given: dict, where: str) -> None:
        for flag, value in given.items():
            if value is not None:
                raise BadArgumentError(f"{flag} applies only {where}")

    if student is None:
        only_with({"--steps": steps, "--teacher-start": teacher_start, "--split": split}, "with --student")
    if student is None and not code:
        only_with({"--draft-steps": draft_steps}, "to a CoDe pair (--drafter/--refiner)")
    if student is not None:
        only_with({"--drafter": drafter, "--refiner": refiner, "--finetuned": finetuned, "--draft-steps": draft_steps,
                   "--baseline": baseline, "--vae": vae}, "without --student")
        if teacher_start is not None:
            only_with({"--steps": steps}, "to 1/2-step DD sampling (teacher-involved sampling has its own schedule)")
            gen = builder.dd_teacher_involved(student, teacher_start=teacher_start, split=split, teacher=teacher)
        else:
            only_with({"--split": split}, "with --teacher-start (teacher-involved sampling)")
            (gen,) = builder.dd(student, teacher=teacher, steps=(steps or 1,))
    elif code:
        only_with({"--teacher": teacher, "--baseline": baseline, "--vae": vae}, "without --drafter/--refiner")
        if draft_steps is None:
            raise ArdistillError("pass --draft-steps N (the number of scales the drafter makes) with --drafter/--refiner")
        (gen,) = builder.code(drafter, refiner, draft_steps=(draft_steps,), finetuned=finetuned)
    elif teacher is None:
        raise ArdistillError("pass --teacher NAME (or --student DIR for a DD student)")
    elif baseline is not None:
        builder.check("onestep" if baseline == "onestep" else "skip")  # before the teacher is loaded
        (gen,) = builder.baselines(builder.load_teacher(teacher, vae=vae), [baseline], seed=seed)
    else:
        gen = builder.teacher(teacher, vae=vae)
    ids = parse_int_list(classes, "--class") if classes else list(range(gen.num_classes))
    labels = check_labels([ids[i % len(ids)] for i in range(num)], gen.num_classes)
    all_tokens, all_images = [], []
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"sampling {num} images with {gen.description}", total=num)
        for start in range(0, num, batch_size):
            lab = labels[start : start + batch_size]
            # One seed per batch, derived from the user's seed: batch b always gets seed + b.
            output = gen.generate_tokens(lab.to(builder.device), seed + start // batch_size)
            if save_tokens:
                all_tokens.append(gen.tokens(output).cpu())
            all_images.append(gen.decode(output).float().cpu())
            progress.advance(task, len(lab))
    images = torch.cat(all_images)
    factor = save_grid(images, out, nrow=nrow, upscale=upscale)
    weights = gen.weight_dtypes()
    shown = ", ".join(f"{role} {dt}" for role, dt in weights.items())
    console.print(f"wrote {out} ({num} images, {images.shape[-1]}×{images.shape[-2]}{_shown(factor)}, {gen.description}; "
                  f"weights: {shown})", markup=False)
    if save_tokens:
        atomic_save_safetensors({"tokens": torch.cat(all_tokens), "labels": labels}, tokens_path,
                                metadata={"generator": gen.name, "kind": gen.kind, "description": gen.description,
                                          "settings": json.dumps(gen.settings, default=str), "weights": json.dumps(weights),
                                          "seed": str(seed), "batch_size": str(batch_size)})
        console.print(f"wrote {tokens_path}", markup=False)


def _shown(factor: int) -> str:
    return f" shown {factor}× (--upscale 1: native size)" if factor > 1 else ""


def register(app: typer.Typer) -> None:
    app.command("sample")(sample_command)
