"""`ardistill train --recipe R`: train the student a DD (`recipes/dd/`, on a trajectory dataset) or DD2
(`recipes/dd2/`, from the teacher alone) recipe describes; the recipe's `kind` chooses."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import DeviceOption, RenamedOption, console


def train_command(
    recipe: str = typer.Option(..., "--recipe", help="Student recipe: DD (e.g. dd/var-toy-l) or DD2 (dd2/var-toy-l); a name "
                               "under recipes/ or a path.", show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Student folder (default: runs/<recipe name>/).", show_default=False),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the output folder from its last checkpoint."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Override the number of optimiser steps (DD: train.steps; "
                                        "DD2: generator updates, csd.steps)."),
    trajectories: Optional[Path] = typer.Option(None, "--trajectories", help="DD only: trajectory dataset folder (default: the "
                                                "recipe's).", show_default=False),
    device: str = DeviceOption,
    old_r: Optional[str] = RenamedOption("-r", "--recipe"),
) -> None:
    """Train a one-step student of a teacher, as its recipe says.

    DD (kind dd-student): a student initialised from its teacher learns the teacher's noise → token trajectories
    (make them first: `ardistill trajectories`, or let `ardistill distill` do everything). DD2 (kind dd2-student):
    teacher samples → GTS tuning → generator / guidance training by conditional score distillation; no trajectories.

    Checkpoints every `ckpt_every` steps and on Ctrl-C; a NaN loss stops with the last good checkpoint; --resume
    continues. The result (EMA weights) is OUT/student.safetensors + OUT/student.json, for
    `ardistill sample --student OUT --steps 1` and `ardistill.load_student(OUT)`. Under torchrun the batches are
    split over the ranks. Example: ardistill train --recipe dd2/var-toy-l --out runs/dd2-var-toy-l
    """
    from ardistill.api import load_teacher
    from ardistill.cli.common import resolve_device
    from ardistill.errors import BadArgumentError
    from ardistill.methods.dd.recipe import DDRecipe, dd_recipe_for_training, train_from_dd_recipe
    from ardistill.methods.dd2.recipe import DD2Recipe
    from ardistill.recipe_schema import load_typed_recipe

    typed = load_typed_recipe(recipe, DDRecipe, DD2Recipe)
    if isinstance(typed, DD2Recipe):
        from ardistill.methods.dd2.train import train_dd2_student

        if trajectories is not None:
            raise BadArgumentError("--trajectories is for DD recipes; a DD2 student is trained from its teacher alone")
        typed = typed.overridden({"csd.steps": steps})
        teacher = load_teacher(typed.teacher, device=str(resolve_device(device)))
        folder = Path(out or Path("runs") / typed.run_name)
        train_dd2_student(teacher, typed, folder, resume=resume, log=console.print)
    else:
        dd = dd_recipe_for_training(typed, steps=steps, trajectories=trajectories)
        teacher = load_teacher(dd.teacher, device=str(resolve_device(device)))
        folder = train_from_dd_recipe(dd, teacher=teacher, out=out, resume=resume)
    console.print(f"student written to {folder}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
