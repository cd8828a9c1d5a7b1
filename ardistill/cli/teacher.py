"""`ardistill teacher ...`: train the built-in teachers from their recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import console

teacher_app = typer.Typer(help="Train the small built-in teachers (tokenizer + transformer) on the procedural world.",
                          no_args_is_help=True)


@teacher_app.command("train")
def train_command(
    recipe: str = typer.Option(..., "--recipe", "-r", help="Recipe YAML (e.g. recipes/toy/var-toy-l.yaml or toy/var-toy-l).",
                               show_default=False),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Folder of training runs; this run goes to RUNS/<recipe name>/."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its last checkpoint."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Override the number of optimiser steps (of the tokenizer too, when this run trains it)."),
    num_images: Optional[int] = typer.Option(None, "--num-images", min=1, help="Override the number of training images (transformer recipes)."),
    export: bool = typer.Option(False, "--export", help="Install the trained teacher as a built-in model (ardistill/weights/<name>/)."),
    weights_root: Optional[Path] = typer.Option(None, "--weights-root", help="Where --export writes [default: the package's weights folder]."),
) -> None:
    """Train a teacher (its tokenizer first, if that is not trained yet) from a recipe.

    CPU-friendly, deterministic given the recipe's seed, checkpointed every `ckpt_every` steps and on Ctrl-C;
    run again with --resume to continue. Example: ardistill teacher train --recipe toy/var-toy-l --export
    """
    from ardistill.registry import PACKAGE_WEIGHTS
    from ardistill.training.teacher_recipes import train_from_recipe

    out = train_from_recipe(recipe, runs=runs, resume=resume, steps=steps,
                            export_to=(weights_root or PACKAGE_WEIGHTS) if export else None, num_images=num_images)
    console.print(f"finished: {out}")


@teacher_app.command("eval")
def eval_command(
    teacher: str = typer.Argument(..., help="A built-in teacher (var-toy-l, var-toy-s, llamagen-toy) or a checkpoint path.", show_default=False),
    num: int = typer.Option(1000, "--num", "-n", min=10, help="Class-balanced samples (and as many reconstructions and held-out reference images)."),
    seed: int = typer.Option(0, "--seed", help="Sampler seed (batch b uses seed·1000003 + its first index)."),
    batch_size: int = typer.Option(50, "--batch-size", min=1, help="Images per sampling batch."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Guidance scale [default: the model's]."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Top-k [default: the model's]."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Top-p [default: the model's]."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Temperature [default: the model's]."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write a PNG grid of the first 64 samples and OUT.json with the numbers."),
) -> None:
    """Measure a teacher on the procedural world: class accuracy and toy-FID of its samples, next to those of its
    tokenizer's reconstructions of held-out real images (the best a generator on these tokens can do)."""
    from rich.table import Table

    from ardistill.api import load_teacher
    from ardistill.cli.common import out_path
    from ardistill.eval.quality import teacher_quality
    from ardistill.images import save_grid
    from ardistill.io import atomic_write_json

    if out is not None:
        out = out_path(out)
    model = load_teacher(teacher)
    sampling = {k: v for k, v in dict(cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature).items() if v is not None}
    q = teacher_quality(model, num=num, seed=seed, batch_size=batch_size, **sampling)
    table = Table(title=f"{model.name}: {num} samples vs {num} held-out real images")
    for col in ("images", "class accuracy", "toy-FID", "KID", "precision", "recall"):
        table.add_column(col, justify="right" if col != "images" else "left")
    for what in ("samples", "reconstructions"):
        m = q[what]
        table.add_row(what, f"{100 * m['class_accuracy']:.1f}%", f"{m['fid']:.2f}", f"{m['kid_mean']:.3f}",
                      f"{m['precision']:.3f}", f"{m['recall']:.3f}")
    console.print(table)
    console.print(f"sampling: {1000 * q['seconds_per_image']:.1f} ms per image (incl. decode), settings {model.default_sampling.to_dict() | sampling}")
    if out is not None:
        save_grid(q["images"][:64], out, nrow=8)
        report = {k: v for k, v in q.items() if k != "images"}
        report.update(teacher=model.name, seed=seed, batch_size=batch_size, sampling=model.default_sampling.to_dict() | sampling)
        atomic_write_json(out.with_suffix(".json"), report)
        console.print(f"wrote {out} and {out.with_suffix('.json')}")


def register(app: typer.Typer) -> None:
    app.add_typer(teacher_app, name="teacher")
