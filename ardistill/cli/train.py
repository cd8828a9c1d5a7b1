"""`ardistill train --recipe recipes/dd/<name>.yaml`: train a Distilled Decoding student on a trajectory dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import DeviceOption, RenamedOption, console


def train_command(
    recipe: str = typer.Option(..., "--recipe", help="DD student recipe (e.g. recipes/dd/var-toy-l.yaml or dd/var-toy-l).",
                               show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Student folder (default: runs/<recipe name>/).", show_default=False),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the output folder from its last checkpoint."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Override the number of optimiser steps."),
    trajectories: Optional[Path] = typer.Option(None, "--trajectories", help="Trajectory dataset folder (default: the recipe's).",
                                                show_default=False),
    device: str = DeviceOption,
    old_r: Optional[str] = RenamedOption("-r", "--recipe"),
) -> None:
    """Train a DD student (initialised from its teacher) on the teacher's noise → token trajectories.

    Checkpoints every `ckpt_every` steps and on Ctrl-C; a NaN loss stops with the last good checkpoint; --resume
    continues. The result (EMA weights) is OUT/student.safetensors + OUT/student.json, for
    `ardistill sample --student OUT --steps 1` and `ardistill.load_student(OUT)`.
    Example: ardistill train --recipe dd/var-toy-l --out runs/dd-var-toy-l
    """
    from ardistill.api import load_teacher
    from ardistill.cli.common import resolve_device
    from ardistill.methods.dd.recipe import dd_recipe_for_training, train_from_dd_recipe

    dd = dd_recipe_for_training(recipe, steps=steps, trajectories=trajectories)
    teacher = load_teacher(dd.teacher, device=str(resolve_device(device)))
    folder = train_from_dd_recipe(dd, teacher=teacher, out=out, resume=resume)
    console.print(f"student written to {folder}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
