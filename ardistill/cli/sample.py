"""`ardistill sample`: images (and optionally tokens) from a teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import (CompileOption, DeviceOption, DtypeOption, FastOption, RenamedOption, UpscaleOption, WeightsDirOption, console, out_path,
                                  parse_int_list, parse_number_list)


def sample_command(
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Registered model name (see `ardistill models`) or a checkpoint path.", show_default=False),
    student: Optional[str] = typer.Option(None, "--student", help="Sample with a DD student instead: a folder from `ardistill train` or a name like dd-var-d16 (its teacher decodes; --teacher overrides it).", show_default=False),
    steps: int = typer.Option(1, "--steps", min=1, help="DD student steps: 1 or 2 (only with --student)."),
    drafter: Optional[str] = typer.Option(None, "--drafter", help="CoDe: the large VAR that drafts scales < N (with --refiner, --draft-steps).", show_default=False),
    refiner: Optional[str] = typer.Option(None, "--refiner", help="CoDe: the small VAR (same tokenizer) that makes scales ≥ N.", show_default=False),
    draft_steps: Optional[int] = typer.Option(None, "--draft-steps", min=0, help="CoDe: scales made by the drafter (0 = refiner alone, K = drafter alone)."),
    finetuned: Optional[Path] = typer.Option(None, "--finetuned", help="CoDe: a folder from `ardistill code finetune` (its pair and weights).", show_default=False),
    classes: Optional[str] = typer.Option(None, "--class", "-c", help="Class id, or a comma-separated list cycled over the images (default: 0, 1, 2, … cycled over the model's classes)."),
    num: int = typer.Option(8, "--num-images", "-n", min=1, help="Number of images."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler's random generator: same seed, same images."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Classifier-free guidance scale (default: the model's)."),
    top_k: Optional[str] = typer.Option(None, "--top-k", help="Keep the k most likely tokens (0 = off); VAR: one value or one per scale."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Nucleus sampling: keep the smallest set with this much probability."),
    temperature: Optional[str] = typer.Option(None, "--temperature", help="Softmax temperature; VAR: one value or one per scale."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Images per forward batch."),
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help="PNG grid to write."),
    save_tokens: bool = typer.Option(False, "--save-tokens", help="Also write OUT.tokens.safetensors with tokens [N, L] and labels [N]."),
    nrow: Optional[int] = typer.Option(None, "--nrow", min=1, help="Images per grid row (default: ≈√N)."),
    upscale: Optional[int] = UpscaleOption,
    weights_dir: Optional[str] = WeightsDirOption,
    vae: Optional[Path] = typer.Option(None, "--vae", help="Tokenizer checkpoint (default: the registered file)."),
    random_init: bool = typer.Option(False, "--random-init", help="Use randomly initialised weights (no files needed; for smoke tests)."),
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    fast: bool = FastOption,
    compile: str = CompileOption,
    old_t: Optional[str] = RenamedOption("-t", "--teacher"),
    old_num: Optional[str] = RenamedOption("--num", "--num-images"),
) -> None:
    """Sample images with a teacher's sampler and write them as a PNG grid.

    The default is the exact fp32 reference path; --fast, --dtype bf16 and --compile auto make it faster.

    Example: ardistill sample --teacher var-d16 --class 207 --num-images 8 --seed 0 --cfg 1.5 --top-k 900 --top-p 0.95 --out grid.png
    """
    import torch

    from ardistill.api import load_teacher
    from ardistill.cli.common import resolve_device
    from ardistill.images import save_grid
    from ardistill.io import atomic_save_safetensors
    from ardistill.errors import ArdistillError
    from ardistill.teachers.base import check_labels

    out = out_path(out)
    tokens_path = out.with_suffix(".tokens.safetensors")
    if save_tokens:
        out_path(tokens_path)
    if student is not None:
        _sample_student(student, teacher, steps, classes, num, seed, batch_size, out, tokens_path if save_tokens else None,
                        nrow, upscale, weights_dir, resolve_device(device))
        return
    if drafter is not None or refiner is not None or finetuned is not None:
        from ardistill.cli.code import load_pair_sampler

        model = load_pair_sampler(drafter, refiner, draft_steps, finetuned=finetuned, weights_dir=weights_dir,
                                  device=resolve_device(device), random_init=random_init)
    elif teacher is None:
        raise ArdistillError("pass --teacher NAME (or --student DIR for a DD student)")
    else:
        model = load_teacher(teacher, vae=vae, weights_dir=weights_dir, device=resolve_device(device), random_init=random_init,
                             dtype=dtype, fast=fast, compile=compile)
    ids = parse_int_list(classes, "--class") if classes else list(range(model.num_classes))
    labels = check_labels([ids[i % len(ids)] for i in range(num)], model.num_classes)
    kwargs = dict(cfg=cfg, top_k=parse_number_list(top_k, "--top-k", int), top_p=top_p,
                  temperature=parse_number_list(temperature, "--temperature"))
    all_tokens, all_images = [], []
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"sampling {num} images with {model.name}", total=num)
        for start in range(0, num, batch_size):
            lab = labels[start : start + batch_size]
            # One seed per batch, derived from the user's seed: batch b always gets seed + b.
            toks = model.sample(lab.to(model.device), seed=seed + start // batch_size, **kwargs)
            all_tokens.append(toks.cpu())
            all_images.append(model.decode(toks).float().cpu())
            progress.advance(task, len(lab))
    images = torch.cat(all_images)
    factor = save_grid(images, out, nrow=nrow, upscale=upscale)
    console.print(f"wrote {out} ({num} images, {images.shape[-1]}×{images.shape[-2]}{_shown(factor)}, {model.name})")
    if save_tokens:
        atomic_save_safetensors({"tokens": torch.cat(all_tokens), "labels": labels}, tokens_path,
                                metadata={"teacher": model.name, "seed": str(seed), "batch_size": str(batch_size)})
        console.print(f"wrote {tokens_path}")


def _shown(factor: int) -> str:
    return f" shown {factor}× (--upscale 1: native size)" if factor > 1 else ""


def _sample_student(student_ref, teacher_ref, steps, classes, num, seed, batch_size, out, tokens_path, nrow, upscale, weights_dir,
                    device) -> None:
    """DD student sampling: continuous outputs decoded as the release does; batch b uses noise seed `seed + b`."""
    import torch

    from ardistill.api import load_student
    from ardistill.images import save_grid
    from ardistill.io import atomic_save_safetensors
    from ardistill.methods.dd.student import nearest_codes
    from ardistill.teachers.base import check_labels

    st = load_student(student_ref, teacher=teacher_ref, weights_dir=weights_dir, device=device)
    st.schedule(steps)  # a bad --steps is an error before any work
    ids = parse_int_list(classes, "--class") if classes else list(range(st.num_classes))
    labels = check_labels([ids[i % len(ids)] for i in range(num)], st.num_classes)
    images, tokens = [], []
    for start in range(0, num, batch_size):
        e = st.sample(labels[start:start + batch_size], steps=steps, seed=seed + start // batch_size, return_embeddings=True)
        tokens.append(nearest_codes(e, st.codebook).cpu())
        images.append(st.teacher.decode_embeddings(e).float().cpu())
    images = torch.cat(images)
    factor = save_grid(images, out, nrow=nrow, upscale=upscale)
    console.print(f"wrote {out} ({num} images{_shown(factor)}, {steps}-step DD student {st.name} of {st.teacher.name})")
    if tokens_path is not None:
        atomic_save_safetensors({"tokens": torch.cat(tokens), "labels": labels}, tokens_path,
                                metadata={"student": st.name, "teacher": st.teacher.name, "steps": str(steps), "seed": str(seed)})
        console.print(f"wrote {tokens_path}")


def register(app: typer.Typer) -> None:
    app.command("sample")(sample_command)
