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


def register(app: typer.Typer) -> None:
    app.add_typer(teacher_app, name="teacher")
